// Write Cairn tasks in JavaScript.
//
// A Cairn task is a WebAssembly component of the `cairn:task` world (see
// `wit/task.wit`). This module wraps that world in a small API mirroring the
// Rust SDK (`guest-sdk/src`): write a `main` function, export
// `run = task(main)`, and build with componentize-js:
//
//     import { task, readText, writeOutput, info } from './cairn.js';
//
//     async function main() {
//       const who = readText('name', 'world');
//       info(`greeting ${who}`);
//       writeOutput('greeting', `Hello, ${who}!\n`);
//     }
//
//     export const run = task(main);
//
// Every host call can be refused (not declared, denied by policy, too
// large): refusals are thrown as `HostError`s, which the task may catch or
// let fail the task. This module owns the guest side of the contract only;
// it never decides what a task may do. That is the host's job.

import { del, get, head, patch, post, put, request } from './src/http.js';

export { task } from './src/task.js';
export {
  Denied,
  Failure,
  HostError,
  Invalid,
  NotFound,
  Permanent,
  TooLarge,
  Transient,
} from './src/errors.js';
export { inputs, readInput, readJson, readText, writeJson, writeOutput } from './src/io.js';
export { Secret, secret } from './src/secret.js';
export { LEVELS, captureConsole, debug, error, info, log, trace, warn } from './src/log.js';
export {
  HttpDenied,
  HttpError,
  HttpFailed,
  InvalidUrl,
  Response,
  StatusError,
  TooManyRedirects,
} from './src/http.js';

/**
 * Outgoing HTTP: `await http.get(url, options)`, `http.post`, `http.put`,
 * `http.patch`, `http.head`, `http.delete`, `http.request(method, url,
 * options)`.
 */
export const http = Object.freeze({ request, get, post, put, patch, head, delete: del });
