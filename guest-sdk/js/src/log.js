// Log lines through the host, which shows them with the task's name.
//
// Prefer these to `console.*`: they carry a level, and the host keeps them
// apart from the task's stdout and stderr. By default `console.log` and
// `console.info` write to stdout and `console.warn`, `console.error` and
// `console.debug` to stderr (StarlingMonkey's behaviour), which the host
// captures as plain output; `captureConsole()` routes them here instead.

import * as host from './host.js';

/** The host's log levels, from the most to the least verbose. */
export const LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error']);

/**
 * Emit one log line at `level`; the other arguments are joined with spaces,
 * as `console.log` does (strings as they are, errors with their name and
 * message, other values as JSON).
 */
export function log(level, ...args) {
  if (!LEVELS.includes(level)) {
    throw new TypeError(`unknown log level \`${level}\`: use one of ${LEVELS.join(', ')}`);
  }
  host.log(level, args.map(describe).join(' '));
}

export const trace = (...args) => log('trace', ...args);
export const debug = (...args) => log('debug', ...args);
export const info = (...args) => log('info', ...args);
export const warn = (...args) => log('warn', ...args);
export const error = (...args) => log('error', ...args);

const CONSOLE_LEVELS = {
  trace: 'trace',
  debug: 'debug',
  log: 'info',
  info: 'info',
  warn: 'warn',
  error: 'error',
};

/**
 * Route `console.trace/debug/log/info/warn/error` to the host log at the
 * matching level (`log` is `info`). Returns a function that puts the
 * original methods back.
 */
export function captureConsole() {
  const saved = {};
  for (const [method, level] of Object.entries(CONSOLE_LEVELS)) {
    saved[method] = console[method];
    console[method] = (...args) => log(level, ...args);
  }
  return function restore() {
    Object.assign(console, saved);
  };
}

/**
 * One value as log text: strings as they are, `Name: message` for errors,
 * the value's own text for objects that have one (a `Secret`, a `URL`, a
 * `Date`), JSON for other data.
 */
export function describe(value) {
  if (typeof value === 'string') {
    return value;
  }
  if (value instanceof Error) {
    return `${value.name}: ${value.message}`;
  }
  if (value === null || typeof value !== 'object') {
    return String(value);
  }
  if (!Array.isArray(value) && value.toString !== Object.prototype.toString) {
    return String(value);
  }
  try {
    return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? String(v) : v));
  } catch {
    // A cycle: fall back to what `String` says.
    return String(value);
  }
}
