// The task's entry point: adapts `main` to the component's exported `run`.
//
// `run` returns `result<_, failure>`. With componentize-js, returning (or
// resolving) is `ok`, and throwing a `{ tag, val }` value is `err(val)`; an
// async `run` is awaited, the event loop running until it settles. Any other
// thrown value would make the component trap, so `task` catches everything.

import { Failure } from './errors.js';
import { describe, log } from './log.js';

/**
 * The component's `run` export, doing `main`'s work:
 * `export const run = task(main);`
 *
 * `main` may be async. If it returns, the task succeeded. If it throws a
 * `Transient`, the task failed and the host may retry it; a `Permanent`, the
 * task failed for good. Anything else thrown (a `HostError`, an `HttpError`,
 * a `TypeError`...) is a permanent failure with the message
 * `Name: message`, and its stack is logged at `error` level first.
 */
export function task(main) {
  if (typeof main !== 'function') {
    throw new TypeError('task(main) needs the function that does the work');
  }
  return async function run() {
    try {
      await main();
    } catch (thrown) {
      throw failure(thrown);
    }
  };
}

/** The WIT `failure` for a value thrown out of `main`. */
export function failure(thrown) {
  if (thrown instanceof Failure) {
    return { tag: thrown.transient ? 'transient' : 'permanent', val: thrown.message };
  }
  const message = describe(thrown);
  try {
    log('error', withStack(message, thrown));
  } catch {
    // Logging is best effort: the failure itself must still reach the host.
  }
  return { tag: 'permanent', val: message };
}

// SpiderMonkey's `stack` holds only the frames; V8's starts with the message.
function withStack(message, thrown) {
  const stack = thrown instanceof Error && typeof thrown.stack === 'string' ? thrown.stack.trimEnd() : '';
  if (!stack) {
    return message;
  }
  return stack.startsWith(message) ? stack : `${message}\n${stack}`;
}
