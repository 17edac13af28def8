// Secrets, read through the host only, and kept out of text by default.

import * as host from './host.js';

import { call } from './errors.js';

const REDACTED = 'Secret(<redacted>)';
const inspect = Symbol.for('nodejs.util.inspect.custom');

/**
 * A secret's value. `String(s)`, `` `${s}` ``, `JSON.stringify(s)` and
 * Node's `util.inspect(s)` give `Secret(<redacted>)` (StarlingMonkey's
 * `console.log(s)` prints `Secret {}`: the value is a private field);
 * `expose()` gives the value, where it is really needed.
 */
export class Secret {
  #value;

  constructor(value) {
    this.#value = String(value);
  }

  /**
   * The secret's value. Keep it out of logs and outputs: the host masks the
   * values it knows in what the task prints, but cannot catch every
   * transformation of them.
   */
  expose() {
    return this.#value;
  }

  toString() {
    return REDACTED;
  }

  toJSON() {
    return REDACTED;
  }

  [Symbol.toPrimitive]() {
    return REDACTED;
  }

  [inspect]() {
    return REDACTED;
  }

  get [Symbol.toStringTag]() {
    return 'Secret';
  }
}

/**
 * Read the secret called `name`.
 *
 * Throws `NotFound` if the task did not declare it, `Denied` if policy
 * forbids this task to read it.
 */
export function secret(name) {
  return new Secret(call(host.secret, name));
}
