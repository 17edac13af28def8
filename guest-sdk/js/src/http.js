// Outgoing HTTP over the runtime's `fetch`, with Cairn's redirect rules.
//
// StarlingMonkey's `fetch` goes out through `wasi:http`, so the host checks
// every request it sends against the workflow's `network` and policy. This
// module follows redirects itself (`redirect: 'manual'`), each hop a new
// request the host checks like the first, and drops credentials when a hop
// leaves the endpoint (host and port), as the Rust SDK does. Bodies are read
// whole; the host bounds their size and the time of each request. `fetch`
// does not pass on wasi:http error codes (see `classify`), so a refusal by
// the host cannot always be told from a failed connection.

import { Denied } from './errors.js';
import { Secret } from './secret.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const DEFAULT_MAX_REDIRECTS = 5;

/** Why a request did not produce a usable response. */
export class HttpError extends Error {
  constructor(message, url, options) {
    super(message, options);
    this.url = url;
  }

  /** Whether trying again later may succeed. */
  get transient() {
    return false;
  }

  // `HttpDenied` is a `Denied` (a host refusal) first; it counts as an
  // `HttpError` too, so that `catch (e) { if (e instanceof HttpError) }`
  // sees every failed request.
  static [Symbol.hasInstance](value) {
    if (this === HttpError && value instanceof HttpDenied) {
      return true;
    }
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/**
 * The host refused to send the request: the endpoint is not declared in the
 * task's `network`, policy denies it, or the task used up its request budget.
 * Also an `HttpError` and a `Denied`.
 */
export class HttpDenied extends Denied {
  constructor(method, url, options) {
    super(`${method} ${url}`, options);
    this.message =
      `request ${method} ${url} denied by the host (not declared in \`network\`, ` +
      `or denied by policy; the run's audit log says which)`;
    this.method = method;
    this.url = url;
  }

  get transient() {
    return false;
  }
}

/** The URL cannot be sent (not `http(s)://host[:port]/...`). */
export class InvalidUrl extends HttpError {
  constructor(url, options) {
    super(`\`${url}\` is not an http(s) URL`, url, options);
  }
}

/** More redirects than allowed; `url` is the last location. */
export class TooManyRedirects extends HttpError {
  constructor(url, options) {
    super(`too many redirects, the last to ${url}`, url, options);
  }
}

/** The response's status is not 2xx (`Response.raiseForStatus`). */
export class StatusError extends HttpError {
  constructor(response, options) {
    super(`${response.url} answered ${response.status}`, response.url, options);
    this.status = response.status;
    this.response = response;
  }

  /** 5xx and 429 may succeed later. */
  get transient() {
    return this.status >= 500 || this.status === 429;
  }
}

/** Sending or receiving failed (connection refused, timeout...). */
export class HttpFailed extends HttpError {
  constructor(url, reason, options) {
    super(`request to ${url} failed: ${reason}`, url, options);
    this.reason = reason;
  }

  /** Timeouts and connection problems may succeed later. */
  get transient() {
    return /timeout|timed out|connection ?refused|connection ?terminated|connection ?reset/i.test(
      this.reason,
    );
  }
}

// Names set explicitly so that they survive minifying bundlers.
for (const [cls, name] of [
  [HttpError, 'HttpError'],
  [HttpDenied, 'HttpDenied'],
  [InvalidUrl, 'InvalidUrl'],
  [TooManyRedirects, 'TooManyRedirects'],
  [StatusError, 'StatusError'],
  [HttpFailed, 'HttpFailed'],
]) {
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true });
}

/** A whole response: the body is read before the request resolves. */
export class Response {
  constructor({ status, headers, body, url }) {
    /** The status code. */
    this.status = status;
    /** The response headers (a `Headers`). */
    this.headers = headers;
    /** The whole body. */
    this.body = body;
    /** The URL that answered, after redirects. */
    this.url = url;
  }

  /** Whether the status is 2xx. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The value of header `name` (case-insensitive), or `null`. */
  header(name) {
    return this.headers.get(name);
  }

  /** The body as UTF-8 text; throws `TypeError` if it is not UTF-8. */
  text() {
    return new TextDecoder('utf-8', { fatal: true }).decode(this.body);
  }

  /** The body parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }

  /** This response if its status is 2xx; otherwise throws `StatusError`. */
  raiseForStatus() {
    if (!this.ok) {
      throw new StatusError(this);
    }
    return this;
  }
}

/**
 * Send a request and read the whole response, following redirects.
 *
 * Options: `headers` (an object, pairs or a `Headers`), `body` (a string or
 * bytes), `json` (a value sent as JSON, with its content type), `bearer`
 * (a token or `Secret`, sent as `Authorization: Bearer ...`), `timeout` (in
 * milliseconds; the host never grants longer than its own limit) and
 * `maxRedirects` (5 by default; 0 returns redirects as responses).
 *
 * Rejects with `HttpDenied`, `InvalidUrl`, `TooManyRedirects` or
 * `HttpFailed`; a response with any status resolves.
 */
export async function request(method, url, options = {}) {
  const max = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  let current = { method: method.toUpperCase(), url: String(url), ...prepare(options) };
  for (let hops = 0; ; hops += 1) {
    const response = await sendOnce(current, options.timeout);
    const location = REDIRECTS.has(response.status) ? response.header('location') : null;
    if (location === null || max === 0) {
      return response;
    }
    if (hops >= max) {
      throw new TooManyRedirects(resolve(current.url, location));
    }
    current = redirected(current, response.status, resolve(current.url, location));
  }
}

export const get = (url, options) => request('GET', url, options);
export const post = (url, options) => request('POST', url, options);
export const put = (url, options) => request('PUT', url, options);
export const patch = (url, options) => request('PATCH', url, options);
export const head = (url, options) => request('HEAD', url, options);
export const del = (url, options) => request('DELETE', url, options);

function prepare(options) {
  const given = options.headers ?? {};
  const pairs = given instanceof Headers ? [] : Array.isArray(given) ? given : Object.entries(given);
  for (const [name, value] of pairs) {
    if (value instanceof Secret) {
      // It would be sent as `Secret(<redacted>)`: say so instead.
      throw new TypeError(
        `header \`${name}\`: a Secret is never turned into text implicitly; ` +
          'pass `secret.expose()`, or use the `bearer` option',
      );
    }
  }
  const headers = new Headers(given);
  let body = options.body ?? null;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    if (!headers.has('content-type')) {
      headers.set('content-type', 'application/json');
    }
  }
  if (options.bearer !== undefined && options.bearer !== null) {
    const token = options.bearer instanceof Secret ? options.bearer.expose() : options.bearer;
    headers.set('authorization', `Bearer ${token}`);
  }
  return { headers, body };
}

/**
 * The next hop after a redirect: 303, and 301/302 after a POST, become a GET
 * without a body (as browsers and most clients do); credentials do not
 * follow a redirect to another endpoint.
 */
export function redirected(previous, status, next) {
  const headers = new Headers(previous.headers);
  let { method, body } = previous;
  if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
    method = 'GET';
    body = null;
    headers.delete('content-type');
    headers.delete('content-length');
  }
  if (endpoint(next) !== endpoint(previous.url)) {
    headers.delete('authorization');
    headers.delete('cookie');
  }
  return { method, url: next, headers, body };
}

/** `host:port` of a URL, with the scheme's default port made explicit. */
export function endpoint(url) {
  const parsed = parseUrl(url);
  if (parsed === null) {
    return null;
  }
  const port = parsed.port || (parsed.protocol === 'https:' ? '443' : '80');
  return `${parsed.hostname.toLowerCase()}:${port}`;
}

/** Where a `Location` points, from the URL that answered. */
export function resolve(base, location) {
  try {
    return new URL(location, base).href;
  } catch {
    return location;
  }
}

function parseUrl(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') {
    return null;
  }
  return parsed;
}

async function sendOnce({ method, url, headers, body }, timeout) {
  if (parseUrl(url) === null) {
    throw new InvalidUrl(url);
  }
  const controller = new AbortController();
  const timer = timeout === undefined ? null : setTimeout(() => controller.abort(), timeout);
  try {
    const response = await globalThis.fetch(url, {
      method,
      headers,
      body,
      redirect: 'manual',
      signal: controller.signal,
    });
    return new Response({
      status: response.status,
      headers: response.headers,
      body: new Uint8Array(await response.arrayBuffer()),
      url,
    });
  } catch (thrown) {
    throw classify(thrown, method, url, controller.signal.aborted ? timeout : undefined);
  } finally {
    if (timer !== null) {
      clearTimeout(timer);
    }
  }
}

// What StarlingMonkey's `fetch` (componentize-js 0.23) rejects with for
// every `wasi:http` error code: the host's refusal (`HTTP-request-denied`)
// and a refused connection alike. The code itself is not exposed.
const OPAQUE_NETWORK_ERROR = 'NetworkError when attempting to fetch resource';

/**
 * The `HttpError` for what `fetch` threw. A message naming the wasi:http
 * code is classified by it; StarlingMonkey's opaque `NetworkError` cannot
 * be, so it is an `HttpFailed` that says so (and is not transient: it may
 * be a refusal, which a retry cannot fix).
 */
export function classify(thrown, method, url, timedOut) {
  if (timedOut !== undefined) {
    return new HttpFailed(url, `timeout after ${timedOut} ms`, { cause: thrown });
  }
  const reason = thrown instanceof Error ? thrown.message : String(thrown);
  if (/HttpRequestDenied|HTTP-request-denied/i.test(reason)) {
    return new HttpDenied(method, url, { cause: thrown });
  }
  if (/HttpRequestUriInvalid|HTTP-request-URI-invalid/i.test(reason)) {
    return new InvalidUrl(url, { cause: thrown });
  }
  if (reason.startsWith(OPAQUE_NETWORK_ERROR)) {
    const why =
      `${reason} (the host refused the request, or the connection failed: ` +
      `fetch does not say which; the run's audit log does)`;
    return new HttpFailed(url, why, { cause: thrown });
  }
  return new HttpFailed(url, reason, { cause: thrown });
}
