// Type declarations for `cairn.js`, the Cairn task SDK for JavaScript.

/** A task's work: return (or resolve) on success, throw to fail. */
export type Main = () => void | Promise<void>;

/** The WIT `failure` a component's `run` throws (componentize-js convention). */
export type WitFailure = { tag: 'transient' | 'permanent'; val: string };

/**
 * The component's `run` export, doing `main`'s work:
 * `export const run = task(main);`
 *
 * Returning is success; a thrown `Transient` is a failure the host may retry;
 * a `Permanent` a failure for good; anything else thrown is a permanent
 * failure `Name: message`, its stack logged at `error` level.
 */
export function task(main: Main): () => Promise<void>;

// ---- errors -------------------------------------------------------------

/** Why the host refused a call. */
export class HostError extends Error {}

/** The workflow or policy does not grant this; `what` names the request. */
export class Denied extends HostError {
  constructor(what: string, options?: ErrorOptions);
  readonly what: string;
}

/** Nothing by this name was declared for the task. */
export class NotFound extends HostError {
  constructor(what: string, options?: ErrorOptions);
  readonly what: string;
}

/** Larger than one call may pass or the output may hold. */
export class TooLarge extends HostError {
  constructor(limit: number | bigint, options?: ErrorOptions);
  /** The limit in bytes. */
  readonly limit: number;
}

/** The call was malformed (a bad name, an output written twice). */
export class Invalid extends HostError {
  constructor(what: string, options?: ErrorOptions);
  readonly what: string;
}

/** Why a task failed, and whether running it again may help. */
export class Failure extends Error {
  /** Whether the host may retry the task after this failure. */
  get transient(): boolean;
}

/** A failure that running the task again may fix: the host may retry it. */
export class Transient extends Failure {
  get transient(): true;
}

/** A failure that running the task again cannot fix (bad data, a denial). */
export class Permanent extends Failure {
  get transient(): false;
}

// ---- inputs and outputs -------------------------------------------------

/** Names of the inputs this task was given, in the order declared. */
export function inputs(): string[];

/**
 * The bytes of the input called `name`.
 * @throws {NotFound} no such input was given
 * @throws {TooLarge} it exceeds what one call may pass
 * @throws {Denied} policy forbids it
 */
export function readInput(name: string): Uint8Array;

/**
 * The input called `name` as UTF-8 text; with a `fallback`, a missing input
 * (`NotFound`, and only that) gives the fallback.
 * @throws {HostError} as `readInput`
 * @throws {Permanent} the input is not UTF-8
 */
export function readText(name: string, fallback?: string): string;

/**
 * The input called `name`, parsed as JSON.
 * @throws {HostError} as `readInput`
 * @throws {Permanent} the input is not UTF-8 JSON
 */
export function readJson<T = unknown>(name: string): T;

/**
 * Write the output called `name` (a string is written as UTF-8). Each output
 * is written once, whole.
 * @throws {Invalid} the name is malformed or already written
 * @throws {TooLarge} `data` exceeds the output limit
 * @throws {Denied} the output was not declared
 */
export function writeOutput(name: string, data: string | ArrayBufferView | ArrayBuffer): void;

/** Write the output called `name` as the JSON text of `value`. */
export function writeJson(name: string, value: unknown): void;

// ---- secrets ------------------------------------------------------------

/**
 * A secret's value. `String(s)`, `JSON.stringify(s)` and the SDK's logging
 * give `Secret(<redacted>)`; `expose()` gives the value.
 */
export class Secret {
  constructor(value: string);
  /** The value itself: keep it out of logs and outputs. */
  expose(): string;
  toString(): 'Secret(<redacted>)';
  toJSON(): 'Secret(<redacted>)';
}

/**
 * Read the secret called `name`.
 * @throws {NotFound} the task did not declare it
 * @throws {Denied} policy forbids this task to read it
 */
export function secret(name: string): Secret;

// ---- logging ------------------------------------------------------------

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** The host's log levels, from the most to the least verbose. */
export const LEVELS: readonly Level[];

/** Emit one log line at `level`; arguments are joined as by `console.log`. */
export function log(level: Level, ...args: unknown[]): void;
export function trace(...args: unknown[]): void;
export function debug(...args: unknown[]): void;
export function info(...args: unknown[]): void;
export function warn(...args: unknown[]): void;
export function error(...args: unknown[]): void;

/**
 * Route `console.trace/debug/log/info/warn/error` to the host log (`log` is
 * `info`). Returns a function that restores the console.
 */
export function captureConsole(): () => void;

// ---- HTTP ---------------------------------------------------------------

export type HeadersInit = Headers | Record<string, string> | [string, string][];

export interface RequestOptions {
  headers?: HeadersInit;
  /** The request body. */
  body?: string | Uint8Array | ArrayBuffer | null;
  /** A value sent as JSON, with `content-type: application/json`. */
  json?: unknown;
  /** Sent as `Authorization: Bearer TOKEN`. */
  bearer?: string | Secret | null;
  /** Milliseconds; the host never grants longer than its own limit. */
  timeout?: number;
  /** Redirects to follow (5 by default); 0 returns redirects as responses. */
  maxRedirects?: number;
}

/** A whole response: the body is read before the request resolves. */
export class Response {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
  /** The URL that answered, after redirects. */
  readonly url: string;
  /** Whether the status is 2xx. */
  get ok(): boolean;
  /** The value of header `name` (case-insensitive), or `null`. */
  header(name: string): string | null;
  /** The body as UTF-8 text; throws `TypeError` if it is not UTF-8. */
  text(): string;
  json<T = unknown>(): T;
  /** This response if its status is 2xx; otherwise throws `StatusError`. */
  raiseForStatus(): this;
}

/** Why a request did not produce a usable response. */
export class HttpError extends Error {
  readonly url: string;
  /** Whether trying again later may succeed. */
  get transient(): boolean;
}

/**
 * The host refused to send the request (the endpoint is not declared in the
 * task's `network`, policy denies it, or the request budget is spent).
 * `instanceof` holds for `HttpDenied`, `Denied`, `HostError` and `HttpError`.
 *
 * With componentize-js 0.23, `fetch` does not pass the refusal's code on, so
 * a refusal arrives as an `HttpFailed` (see the README); this class is used
 * whenever the error names the code.
 */
export class HttpDenied extends Denied {
  readonly method: string;
  readonly url: string;
  get transient(): false;
}

/** The URL cannot be sent (not `http(s)://host[:port]/...`). */
export class InvalidUrl extends HttpError {}

/** More redirects than allowed; `url` is the last location. */
export class TooManyRedirects extends HttpError {}

/** The status is not 2xx; transient for 5xx and 429. */
export class StatusError extends HttpError {
  readonly status: number;
  readonly response: Response;
}

/** Sending or receiving failed; transient for timeouts and connection errors. */
export class HttpFailed extends HttpError {
  readonly reason: string;
}

type Send = (url: string | URL, options?: RequestOptions) => Promise<Response>;

/**
 * Outgoing HTTP over `fetch` (and so `wasi:http`): every request and every
 * redirect hop is checked by the host.
 * @throws {HttpDenied | InvalidUrl | TooManyRedirects | HttpFailed}
 */
export const http: Readonly<{
  request(method: string, url: string | URL, options?: RequestOptions): Promise<Response>;
  get: Send;
  post: Send;
  put: Send;
  patch: Send;
  head: Send;
  delete: Send;
}>;
