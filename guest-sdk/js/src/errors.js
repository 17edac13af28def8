// Errors a task sees and throws.
//
// `HostError` and its subclasses are refusals from the host (the `error`
// variant of `wit/task.wit`); every host call that fails throws one of them.
// `Failure` and its subclasses are what a task throws to say how it failed:
// `Transient` (the host may retry) or `Permanent`. This module only converts
// between the WIT values and these classes; it never decides anything.

/** Why the host refused a call. */
export class HostError extends Error {}

/** The workflow or policy does not grant this; `what` names the request. */
export class Denied extends HostError {
  constructor(what, options) {
    super(`denied: ${what}`, options);
    this.what = what;
  }
}

/** Nothing by this name was declared for the task. */
export class NotFound extends HostError {
  constructor(what, options) {
    super(`\`${what}\` was not declared for this task`, options);
    this.what = what;
  }
}

/** Larger than one call may pass or the output may hold; `limit` in bytes. */
export class TooLarge extends HostError {
  constructor(limit, options) {
    super(`too large: at most ${limit} bytes may pass`, options);
    // The WIT payload is a u64 (a BigInt in JS); limits are far below 2^53.
    this.limit = Number(limit);
  }
}

/** The call was malformed (a bad name, an output written twice). */
export class Invalid extends HostError {
  constructor(what, options) {
    super(String(what), options);
    this.what = what;
  }
}

/**
 * The `HostError` for a value thrown by a host binding: componentize-js
 * throws a `ComponentError` whose `payload` is the WIT variant
 * `{ tag, val }`. Anything else is not a refusal and is returned unchanged.
 */
export function fromHost(thrown) {
  const payload = thrown?.payload;
  switch (payload?.tag) {
    case 'denied':
      return new Denied(payload.val);
    case 'not-found':
      return new NotFound(payload.val);
    case 'too-large':
      return new TooLarge(payload.val);
    case 'invalid':
      return new Invalid(payload.val);
    default:
      return thrown;
  }
}

/** Call a host binding, turning its refusals into `HostError`s. */
export function call(binding, ...args) {
  try {
    return binding(...args);
  } catch (thrown) {
    throw fromHost(thrown);
  }
}

/** Why a task failed, and whether running it again may help. */
export class Failure extends Error {
  /** Whether the host may retry the task after this failure. */
  get transient() {
    return false;
  }
}

/** A failure that running the task again may fix: the host may retry it. */
export class Transient extends Failure {
  get transient() {
    return true;
  }
}

/** A failure that running the task again cannot fix (bad data, a denial). */
export class Permanent extends Failure {}

// Names set explicitly, not taken from `constructor.name`, so that they
// survive minifying bundlers; `String(error)` is then `Denied: ...`.
for (const [cls, name] of [
  [HostError, 'HostError'],
  [Denied, 'Denied'],
  [NotFound, 'NotFound'],
  [TooLarge, 'TooLarge'],
  [Invalid, 'Invalid'],
  [Failure, 'Failure'],
  [Transient, 'Transient'],
  [Permanent, 'Permanent'],
]) {
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true });
}
