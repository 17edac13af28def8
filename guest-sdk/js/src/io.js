// The task's named inputs and outputs, as the workflow declares them.
//
// Inputs are read whole, outputs written once and whole; each call goes to
// the host, which refuses what was not declared or is too large.

import * as host from './host.js';

import { NotFound, Permanent, call } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Names of the inputs this task was given, in the order declared. */
export function inputs() {
  return Array.from(host.inputs());
}

/**
 * The bytes of the input called `name`.
 *
 * Throws `NotFound` if no such input was given, `TooLarge` if it exceeds
 * what one call may pass, `Denied` if policy forbids it.
 */
export function readInput(name) {
  const bytes = call(host.readInput, name);
  return bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
}

/**
 * The input called `name` as UTF-8 text. With a `fallback`, a missing input
 * (`NotFound`) gives the fallback; every other refusal is still thrown.
 *
 * Throws as `readInput`, or `Permanent` if the input is not UTF-8.
 */
export function readText(name, fallback) {
  let bytes;
  try {
    bytes = readInput(name);
  } catch (thrown) {
    if (thrown instanceof NotFound && fallback !== undefined) {
      return fallback;
    }
    throw thrown;
  }
  try {
    return utf8.decode(bytes);
  } catch (cause) {
    throw new Permanent(`input \`${name}\` is not UTF-8`, { cause });
  }
}

/**
 * The input called `name`, parsed as JSON.
 *
 * Throws as `readText`, or `Permanent` if the input is not JSON.
 */
export function readJson(name) {
  const text = readText(name);
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new Permanent(`input \`${name}\` is not JSON: ${cause.message}`, { cause });
  }
}

/**
 * Write the output called `name`: bytes, or a string (as UTF-8). Each output
 * is written once, whole.
 *
 * Throws `Invalid` if the name is malformed or already written, `TooLarge`
 * if `data` exceeds the output limit, `Denied` if the output was not
 * declared.
 */
export function writeOutput(name, data) {
  call(host.writeOutput, name, bytesOf(data));
}

/** Write the output called `name` as the JSON text of `value`. */
export function writeJson(name, value) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`output \`${name}\`: ${typeof value} has no JSON form`);
  }
  writeOutput(name, text);
}

function bytesOf(data) {
  if (typeof data === 'string') {
    return encoder.encode(data);
  }
  if (data instanceof Uint8Array) {
    return data;
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  throw new TypeError('output data must be a string, a Uint8Array or an ArrayBuffer');
}
