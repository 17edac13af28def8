// HTTP over a fake `fetch`: redirects each hop a new request, credentials
// kept only on the same endpoint, and every failure classified.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { fake, internals, sdk, text } from './support/sdk.js';

const { http, Denied, HostError, HttpDenied, HttpError, HttpFailed, InvalidUrl } = sdk;
const { StatusError, TooManyRedirects } = sdk;

const realFetch = globalThis.fetch;
let sent;

/** Serve each request with `route(url, init)`, recording what was sent. */
function serve(route) {
  sent = [];
  globalThis.fetch = async (url, init) => {
    assert.equal(init.redirect, 'manual', 'the SDK follows redirects itself');
    const request = {
      url,
      method: init.method,
      headers: Object.fromEntries(new Headers(init.headers)),
      body: init.body ?? null,
    };
    sent.push(request);
    return route(request, init);
  };
}

const redirect = (status, location) =>
  new globalThis.Response(null, { status, headers: { location } });
const ok = (body = 'ok', headers = {}) => new globalThis.Response(body, { status: 200, headers });

beforeEach(() => fake.reset());
afterEach(() => {
  globalThis.fetch = realFetch;
});

test('a GET reads the whole response', async () => {
  serve(() => ok('{"n":1}', { 'content-type': 'application/json', 'x-thing': 'v' }));
  const response = await http.get('http://api.example:8080/v1?q=1');
  assert.ok(response instanceof sdk.Response);
  assert.equal(response.status, 200);
  assert.equal(response.ok, true);
  assert.ok(response.body instanceof Uint8Array);
  assert.equal(response.text(), '{"n":1}');
  assert.deepEqual(response.json(), { n: 1 });
  assert.equal(response.header('X-Thing'), 'v');
  assert.equal(response.header('missing'), null);
  assert.equal(response.url, 'http://api.example:8080/v1?q=1');
  assert.equal(response.raiseForStatus(), response);
  assert.deepEqual(sent.map((r) => r.method), ['GET']);
});

test('json, body, headers and bearer (a Secret too) are sent', async () => {
  serve(() => ok());
  fake.state.secrets.set('tok', 'T0K');
  await http.post('http://h/x', { json: { a: 1 }, headers: { 'X-A': 'b' } });
  await http.put('http://h/x', { body: 'raw', bearer: sdk.secret('tok') });
  await http.request('patch', 'http://h/x', { body: new Uint8Array([1]), bearer: 'plain' });
  await http.delete('http://h/x');
  assert.deepEqual(sent[0].headers, { 'content-type': 'application/json', 'x-a': 'b' });
  assert.equal(sent[0].body, '{"a":1}');
  assert.equal(sent[1].headers.authorization, 'Bearer T0K');
  assert.equal(sent[1].body, 'raw');
  assert.equal(sent[2].method, 'PATCH');
  assert.equal(sent[2].headers.authorization, 'Bearer plain');
  assert.equal(sent[3].method, 'DELETE');
});

test('a Secret as a header value is refused, not sent redacted', async () => {
  serve(() => ok());
  fake.state.secrets.set('tok', 'T0K');
  const s = sdk.secret('tok');
  await assert.rejects(http.get('http://h/', { headers: { 'x-key': s } }), TypeError);
  await assert.rejects(http.get('http://h/', { headers: [['x-key', s]] }), TypeError);
  await http.get('http://h/', { headers: { 'x-key': s.expose() } });
  assert.equal(sent.length, 1);
  assert.equal(sent[0].headers['x-key'], 'T0K');
});

test('redirects are followed hop by hop, relative locations resolved', async () => {
  serve(({ url }) => {
    if (url === 'http://h/a/b') return redirect(302, 'c');
    if (url === 'http://h/a/c') return redirect(301, '/d?x=1');
    return ok(`at ${url}`);
  });
  const response = await http.get('http://h/a/b', { headers: { authorization: 'Bearer t' } });
  assert.deepEqual(sent.map((r) => r.url), ['http://h/a/b', 'http://h/a/c', 'http://h/d?x=1']);
  assert.equal(response.url, 'http://h/d?x=1');
  assert.equal(text(response.body), 'at http://h/d?x=1');
  assert.ok(sent.every((r) => r.headers.authorization === 'Bearer t'), 'same endpoint keeps it');
});

test('credentials are dropped when a redirect leaves the host:port', async () => {
  for (const [from, to, kept] of [
    ['http://a:1/x', 'http://a:1/y', true],
    ['http://a/x', 'http://a:80/y', true],
    ['http://A:1/x', 'http://a:1/y', true],
    ['http://a:1/x', 'http://a:2/y', false],
    ['http://a:1/x', 'http://b:1/y', false],
    ['http://a/x', 'https://a/y', false],
    ['https://a/x', '//evil.example/y', false],
  ]) {
    serve(({ url }) => (url === from || sent.length === 1 ? redirect(307, to) : ok()));
    await http.get(from, { headers: { authorization: 'Bearer t', cookie: 'c=1', 'x-keep': '1' } });
    const second = sent[1].headers;
    assert.equal(second.authorization === 'Bearer t', kept, `${from} -> ${to}`);
    assert.equal(second.cookie === 'c=1', kept, `${from} -> ${to} (cookie)`);
    assert.equal(second['x-keep'], '1', 'other headers follow');
  }
});

test('303, and 301/302 after a POST, turn into a GET without a body', async () => {
  for (const [method, status, expected] of [
    ['POST', 303, 'GET'],
    ['PUT', 303, 'GET'],
    ['POST', 302, 'GET'],
    ['POST', 301, 'GET'],
    ['POST', 307, 'POST'],
    ['POST', 308, 'POST'],
    ['PUT', 302, 'PUT'],
  ]) {
    serve(() => (sent.length === 1 ? redirect(status, '/next') : ok()));
    await http.request(method, 'http://h/x', { json: { a: 1 } });
    const second = sent[1];
    assert.equal(second.method, expected, `${method} ${status}`);
    const rewritten = expected === 'GET';
    assert.equal(second.body, rewritten ? null : '{"a":1}');
    assert.equal(second.headers['content-type'], rewritten ? undefined : 'application/json');
  }
});

test('more than maxRedirects hops is TooManyRedirects', async () => {
  serve(({ url }) => redirect(302, `${url}x`));
  const error = await rejection(http.get('http://h/'));
  assert.ok(error instanceof TooManyRedirects && error instanceof HttpError);
  assert.equal(error.url, 'http://h/xxxxxx');
  assert.equal(sent.length, 6, 'the first request and 5 redirects');
  assert.equal(error.transient, false);

  serve(({ url }) => redirect(302, `${url}x`));
  assert.ok((await rejection(http.get('http://h/', { maxRedirects: 2 }))) instanceof TooManyRedirects);
  assert.equal(sent.length, 3);
});

test('maxRedirects 0 returns the redirect itself', async () => {
  serve(() => redirect(302, '/elsewhere'));
  const response = await http.get('http://h/', { maxRedirects: 0 });
  assert.equal(response.status, 302);
  assert.equal(response.header('location'), '/elsewhere');
  assert.equal(sent.length, 1);
});

test('a 3xx without Location, or a 304, is a response', async () => {
  serve(() => new globalThis.Response(null, { status: 304 }));
  assert.equal((await http.get('http://h/')).status, 304);
  serve(() => new globalThis.Response(null, { status: 302 }));
  assert.equal((await http.get('http://h/')).status, 302);
});

test('URLs that are not http(s) are InvalidUrl, before any request', async () => {
  serve(() => ok());
  for (const url of ['ftp://h/x', 'not a url', 'file:///etc/passwd', 'http://']) {
    const error = await rejection(http.get(url));
    assert.ok(error instanceof InvalidUrl, url);
    assert.ok(!(error instanceof Denied));
  }
  assert.equal(sent.length, 0);
  serve(() => redirect(302, 'ftp://h/x'));
  assert.ok((await rejection(http.get('http://h/'))) instanceof InvalidUrl, 'a redirect to ftp');
});

test('statuses: raiseForStatus, transient for 5xx and 429', async () => {
  for (const [status, transient] of [
    [404, false],
    [400, false],
    [429, true],
    [500, true],
    [503, true],
  ]) {
    serve(() => new globalThis.Response('no', { status }));
    const response = await http.get('http://h/s');
    assert.equal(response.ok, false);
    const error = catching(() => response.raiseForStatus());
    assert.ok(error instanceof StatusError && error instanceof HttpError);
    assert.equal(error.status, status);
    assert.equal(error.response, response);
    assert.equal(error.transient, transient, String(status));
    assert.equal(error.message, `http://h/s answered ${status}`);
  }
});

test('a refused request is HttpDenied: a Denied, a HostError and an HttpError', async () => {
  serve(() => {
    throw new TypeError('HTTP-request-denied');
  });
  const error = await rejection(http.post('http://undeclared:9/x'));
  assert.ok(error instanceof HttpDenied);
  assert.ok(error instanceof Denied);
  assert.ok(error instanceof HostError);
  assert.ok(error instanceof HttpError);
  assert.ok(!(error instanceof InvalidUrl));
  assert.equal(error.transient, false);
  assert.equal(error.url, 'http://undeclared:9/x');
  assert.equal(error.method, 'POST');
  assert.match(error.message, /^request POST http:\/\/undeclared:9\/x denied by the host/);
  assert.equal(String(error).split(':')[0], 'HttpDenied');
  assert.ok(!(new Denied('x') instanceof HttpError), 'plain denials are not HTTP errors');
});

test('other fetch failures are HttpFailed, transient when a retry may help', async () => {
  for (const [reason, transient] of [
    ['ConnectionRefused', true],
    ['connection timeout', true],
    ['ConnectionTerminated', true],
    ['DNS error', false],
    ['HttpResponseBodySize', false],
  ]) {
    serve(() => {
      throw new TypeError(reason);
    });
    const error = await rejection(http.get('http://h/'));
    assert.ok(error instanceof HttpFailed, reason);
    assert.equal(error.transient, transient, reason);
    assert.equal(error.reason, reason);
    assert.equal(error.message, `request to http://h/ failed: ${reason}`);
    assert.ok(!(error instanceof Denied));
  }
});

test("StarlingMonkey's opaque NetworkError is an HttpFailed that says it may be a refusal", async () => {
  serve(() => {
    throw new TypeError('NetworkError when attempting to fetch resource');
  });
  const error = await rejection(http.get('http://h/'));
  assert.ok(error instanceof HttpFailed && !(error instanceof Denied));
  assert.equal(error.transient, false, 'a refusal must not be retried');
  assert.match(error.message, /the host refused the request, or the connection failed/);
  assert.ok(error.cause instanceof TypeError);
});

test('the timeout option aborts the request: a transient HttpFailed', async () => {
  serve((_, init) => new Promise((_, reject) => {
    init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
  }));
  const error = await rejection(http.get('http://slow/', { timeout: 20 }));
  assert.ok(error instanceof HttpFailed);
  assert.equal(error.reason, 'timeout after 20 ms');
  assert.equal(error.transient, true);
});

test('endpoint and resolve follow the URL standard', () => {
  const { endpoint, resolve } = internals.http;
  assert.equal(endpoint('HTTPS://API.example.com/x'), 'api.example.com:443');
  assert.equal(endpoint('http://h:8080'), 'h:8080');
  assert.equal(endpoint('ftp://h/'), null);
  assert.equal(resolve('http://a:1/x/y?q', 'http://b:2/z'), 'http://b:2/z');
  assert.equal(resolve('http://a:1/x/y?q', '/z'), 'http://a:1/z');
  assert.equal(resolve('http://a:1/x/y?q', '//b:2/z'), 'http://b:2/z');
  assert.equal(resolve('http://a:1/x/y?q', 'z'), 'http://a:1/x/z');
});

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

function catching(f) {
  try {
    f();
  } catch (error) {
    return error;
  }
  return undefined;
}
