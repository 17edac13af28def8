// Secrets never show their value, however they are turned into text.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { format, inspect } from 'node:util';

import { fake, sdk } from './support/sdk.js';

const { NotFound, Denied, Secret } = sdk;
const REDACTED = 'Secret(<redacted>)';

beforeEach(() => fake.reset());

test('a secret is redacted in every text form', () => {
  fake.state.secrets.set('token', 's3cr3t-value');
  const s = sdk.secret('token');
  assert.ok(s instanceof Secret);
  assert.equal(s.expose(), 's3cr3t-value');
  const forms = [
    String(s),
    `${s}`,
    s + '',
    s.toString(),
    JSON.stringify(s),
    JSON.stringify({ s }),
    inspect(s),
    inspect({ nested: { s } }),
    format('%s %o %O %j', s, s, s, s),
    Object.keys(s).join(','),
    JSON.stringify(Object.entries(s)),
  ];
  for (const form of forms) {
    assert.ok(!form.includes('s3cr3t'), `leaked in: ${form}`);
  }
  assert.equal(String(s), REDACTED);
  assert.equal(JSON.stringify({ s }), `{"s":"${REDACTED}"}`);
  assert.equal(inspect(s), REDACTED);
});

test('the SDK log redacts secrets too', () => {
  fake.state.secrets.set('token', 's3cr3t-value');
  const s = sdk.secret('token');
  sdk.info('token is', s, { s });
  assert.deepEqual(fake.state.logs, [['info', `token is ${REDACTED} {"s":"${REDACTED}"}`]]);
});

test('undeclared or denied secrets are refusals', () => {
  fake.state.refusals.set('secret:prod', { tag: 'denied', val: 'secret `prod` by policy' });
  assert.throws(() => sdk.secret('nope'), NotFound);
  assert.throws(() => sdk.secret('prod'), Denied);
});
