// Inputs, outputs and secrets: every host refusal becomes its `HostError`.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { bytes, fake, sdk, text } from './support/sdk.js';

const { Denied, HostError, Invalid, NotFound, Permanent, TooLarge } = sdk;

beforeEach(() => fake.reset());

test('each WIT error becomes its class, with its payload', () => {
  fake.state.refusals.set('readInput:d', { tag: 'denied', val: 'input `d` by policy' });
  fake.state.refusals.set('readInput:big', { tag: 'too-large', val: 1048576n });
  fake.state.refusals.set('writeOutput:bad name', { tag: 'invalid', val: 'invalid output name' });

  const denied = catching(() => sdk.readInput('d'));
  assert.ok(denied instanceof Denied && denied instanceof HostError && denied instanceof Error);
  assert.equal(denied.what, 'input `d` by policy');
  assert.equal(String(denied), 'Denied: denied: input `d` by policy');

  const missing = catching(() => sdk.readInput('gone'));
  assert.ok(missing instanceof NotFound);
  assert.equal(missing.message, '`gone` was not declared for this task');

  const large = catching(() => sdk.readInput('big'));
  assert.ok(large instanceof TooLarge);
  assert.equal(large.limit, 1048576);
  assert.equal(large.message, 'too large: at most 1048576 bytes may pass');

  const invalid = catching(() => sdk.writeOutput('bad name', 'x'));
  assert.ok(invalid instanceof Invalid);
  assert.equal(invalid.message, 'invalid output name');
});

test('host failures that are not refusals pass through unchanged', () => {
  const error = catching(() => sdk.writeOutput('o', new Uint8Array(0)));
  assert.equal(error, undefined);
  fake.state.refusals.set('secret:s', { tag: 'unknown-tag', val: 1 });
  const odd = catching(() => sdk.secret('s'));
  assert.ok(!(odd instanceof HostError));
  assert.deepEqual(odd.payload, { tag: 'unknown-tag', val: 1 });
});

test('inputs: names, bytes, text, JSON', () => {
  fake.state.inputs.set('a', bytes('héllo'));
  fake.state.inputs.set('j', bytes('{"n":[1,2]}'));
  assert.deepEqual(sdk.inputs(), ['a', 'j']);
  assert.deepEqual(sdk.readInput('a'), bytes('héllo'));
  assert.equal(sdk.readText('a'), 'héllo');
  assert.deepEqual(sdk.readJson('j'), { n: [1, 2] });
});

test('readText falls back only when the input is not found', () => {
  fake.state.refusals.set('readInput:d', { tag: 'denied', val: 'input `d`' });
  fake.state.refusals.set('readInput:big', { tag: 'too-large', val: 10n });
  assert.equal(sdk.readText('absent', 'dflt'), 'dflt');
  assert.equal(sdk.readText('absent', ''), '', 'an empty fallback is a fallback');
  assert.ok(catching(() => sdk.readText('absent')) instanceof NotFound, 'no fallback: thrown');
  assert.ok(catching(() => sdk.readText('d', 'dflt')) instanceof Denied);
  assert.ok(catching(() => sdk.readText('big', 'dflt')) instanceof TooLarge);
});

test('bad text or JSON is a permanent failure naming the input', () => {
  fake.state.inputs.set('bin', new Uint8Array([0xff, 0xfe]));
  fake.state.inputs.set('notjson', bytes('{oops'));
  const bin = catching(() => sdk.readText('bin'));
  assert.ok(bin instanceof Permanent);
  assert.equal(bin.message, 'input `bin` is not UTF-8');
  const json = catching(() => sdk.readJson('notjson'));
  assert.ok(json instanceof Permanent);
  assert.match(json.message, /^input `notjson` is not JSON: /);
});

test('outputs: strings as UTF-8, bytes as they are, JSON', () => {
  sdk.writeOutput('s', 'héllo');
  sdk.writeOutput('b', new Uint8Array([1, 2, 3]));
  sdk.writeOutput('v', new Uint16Array([0x0201]));
  sdk.writeJson('j', { ok: true });
  assert.equal(text(fake.state.outputs.get('s')), 'héllo');
  assert.deepEqual([...fake.state.outputs.get('b')], [1, 2, 3]);
  assert.deepEqual([...fake.state.outputs.get('v')], [1, 2]);
  assert.equal(text(fake.state.outputs.get('j')), '{"ok":true}');
  assert.ok(catching(() => sdk.writeOutput('s', 'again')) instanceof Invalid);
  assert.throws(() => sdk.writeOutput('n', 42), TypeError);
  assert.throws(() => sdk.writeJson('u', undefined), TypeError);
});

function catching(f) {
  try {
    f();
  } catch (error) {
    return error;
  }
  return undefined;
}
