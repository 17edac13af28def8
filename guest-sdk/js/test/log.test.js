// Log lines go to the host at their level; console capture is opt-in.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { fake, sdk } from './support/sdk.js';

beforeEach(() => fake.reset());

test('each level reaches the host, arguments joined like console.log', () => {
  sdk.trace('t');
  sdk.debug('d', 1);
  sdk.info('i', { a: [1, 'x'] });
  sdk.warn('w', null, undefined, 10n);
  sdk.error(new RangeError('bad'));
  sdk.log('info', 'direct');
  assert.deepEqual(fake.state.logs, [
    ['trace', 't'],
    ['debug', 'd 1'],
    ['info', 'i {"a":[1,"x"]}'],
    ['warn', 'w null undefined 10'],
    ['error', 'RangeError: bad'],
    ['info', 'direct'],
  ]);
  assert.deepEqual(sdk.LEVELS, ['trace', 'debug', 'info', 'warn', 'error']);
});

test('an unknown level is a TypeError, not a silent line', () => {
  assert.throws(() => sdk.log('fatal', 'x'), TypeError);
  assert.deepEqual(fake.state.logs, []);
});

test('captureConsole routes console to the host until restored', () => {
  const original = console.log;
  const restore = sdk.captureConsole();
  try {
    console.trace('ct');
    console.debug('cd');
    console.log('cl', 1);
    console.info('ci');
    console.warn('cw');
    console.error('ce');
  } finally {
    restore();
  }
  assert.equal(console.log, original);
  assert.deepEqual(fake.state.logs, [
    ['trace', 'ct'],
    ['debug', 'cd'],
    ['info', 'cl 1'],
    ['info', 'ci'],
    ['warn', 'cw'],
    ['error', 'ce'],
  ]);
});

test('values with a cycle still log', () => {
  const a = {};
  a.self = a;
  sdk.info(a);
  assert.equal(fake.state.logs[0][1], '[object Object]');
});
