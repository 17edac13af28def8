// Loads the SDK against the fake host: registers the resolution hook, then
// imports `cairn.js` (dynamically, so that the hook is in place first).

import { register } from 'node:module';

register('./hooks.js', import.meta.url);

export const sdk = await import('../../cairn.js');
export const internals = {
  http: await import('../../src/http.js'),
  log: await import('../../src/log.js'),
};
export const fake = await import('./fake-host.js');

export const bytes = (text) => new TextEncoder().encode(text);
export const text = (data) => new TextDecoder().decode(data);
