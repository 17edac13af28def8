// How `task(main)` maps what `main` does to the WIT `result<_, failure>`.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { fake, sdk } from './support/sdk.js';

const { Denied, NotFound, Permanent, Transient, task } = sdk;

beforeEach(() => fake.reset());

/** What `run` settles with: `'ok'` or the thrown failure. */
async function outcome(main) {
  try {
    await task(main)();
    return 'ok';
  } catch (failure) {
    return failure;
  }
}

test('returning, sync or async, is success', async () => {
  assert.equal(await outcome(() => {}), 'ok');
  assert.equal(await outcome(async () => 42), 'ok');
  assert.deepEqual(fake.state.logs, []);
});

test('Transient and Permanent become their failures, unlogged', async () => {
  assert.deepEqual(await outcome(() => { throw new Transient('try later'); }), {
    tag: 'transient',
    val: 'try later',
  });
  assert.deepEqual(await outcome(async () => { throw new Permanent('bad data'); }), {
    tag: 'permanent',
    val: 'bad data',
  });
  assert.deepEqual(fake.state.logs, []);
});

test('any other error is permanent, "Name: message", its stack logged', async () => {
  const failure = await outcome(() => { throw new TypeError('boom'); });
  assert.deepEqual(failure, { tag: 'permanent', val: 'TypeError: boom' });
  assert.equal(fake.state.logs.length, 1);
  const [level, message] = fake.state.logs[0];
  assert.equal(level, 'error');
  assert.match(message, /^TypeError: boom\n/);
  assert.match(message, /task\.test\.js/, 'the stack is in the log line');
});

test('a host refusal that escapes main is a permanent failure', async () => {
  assert.deepEqual(await outcome(() => sdk.readInput('absent')), {
    tag: 'permanent',
    val: 'NotFound: `absent` was not declared for this task',
  });
  assert.deepEqual(await outcome(() => { throw new Denied('output `x`'); }), {
    tag: 'permanent',
    val: 'Denied: denied: output `x`',
  });
});

test('a transient HTTP error is still permanent unless the task says so', async () => {
  const failed = new sdk.HttpFailed('http://h/', 'timeout');
  assert.equal(failed.transient, true);
  assert.equal((await outcome(() => { throw failed; })).tag, 'permanent');
  const rethrown = await outcome(() => {
    throw new Transient(failed.message, { cause: failed });
  });
  assert.deepEqual(rethrown, { tag: 'transient', val: 'request to http://h/ failed: timeout' });
});

test('thrown non-errors fail the task with their text', async () => {
  assert.deepEqual(await outcome(() => { throw 'plain string'; }), {
    tag: 'permanent',
    val: 'plain string',
  });
  assert.deepEqual(await outcome(() => Promise.reject({ code: 7 })), {
    tag: 'permanent',
    val: '{"code":7}',
  });
  assert.deepEqual(await outcome(() => { throw undefined; }), {
    tag: 'permanent',
    val: 'undefined',
  });
});

test('failures carry their kind', () => {
  assert.equal(new Transient('x').transient, true);
  assert.equal(new Permanent('x').transient, false);
  assert.ok(new Transient('x') instanceof sdk.Failure);
  assert.equal(String(new Transient('x')), 'Transient: x');
  assert.throws(() => task('not a function'), TypeError);
});
