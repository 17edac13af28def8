// A fake `cairn:task/host@0.1.0` for the unit tests. It behaves as the
// componentize-js bindings do: results come back as values, refusals are
// thrown as errors whose `payload` is the WIT `error` variant `{ tag, val }`
// (`too-large` carries a BigInt, as a u64 does).

export const state = {
  inputs: new Map(),
  outputs: new Map(),
  secrets: new Map(),
  logs: [],
  /** `'call:name'` → the `{ tag, val }` the host refuses that call with. */
  refusals: new Map(),
};

export function reset() {
  state.inputs.clear();
  state.outputs.clear();
  state.secrets.clear();
  state.logs.length = 0;
  state.refusals.clear();
}

class ComponentError extends Error {
  constructor(payload) {
    super(`${String(payload.val)} (see error.payload)`);
    this.payload = payload;
  }
}

function refuse(call, name) {
  const payload = state.refusals.get(`${call}:${name}`);
  if (payload !== undefined) {
    throw new ComponentError(payload);
  }
}

export function inputs() {
  return [...state.inputs.keys()];
}

export function readInput(name) {
  refuse('readInput', name);
  if (!state.inputs.has(name)) {
    throw new ComponentError({ tag: 'not-found', val: name });
  }
  return state.inputs.get(name);
}

export function writeOutput(name, data) {
  refuse('writeOutput', name);
  if (state.outputs.has(name)) {
    throw new ComponentError({ tag: 'invalid', val: `output \`${name}\` was already written` });
  }
  if (!(data instanceof Uint8Array)) {
    throw new TypeError('list<u8> expects a Uint8Array');
  }
  state.outputs.set(name, data);
}

export function secret(name) {
  refuse('secret', name);
  if (!state.secrets.has(name)) {
    throw new ComponentError({ tag: 'not-found', val: name });
  }
  return state.secrets.get(name);
}

export function log(level, message) {
  state.logs.push([level, message]);
}
