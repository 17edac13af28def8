// The JS SDK's conformance task: one component, a scenario per `STEP`
// (from the task's environment), for end-to-end tests against `cairn exec`.
// It uses only the SDK's public API, plus `wasi:cli/environment` for `STEP`.

import { getEnvironment } from 'wasi:cli/environment@0.2.0';

import {
  Denied,
  HttpDenied,
  HttpError,
  Permanent,
  Transient,
  captureConsole,
  http,
  info,
  inputs,
  readText,
  secret,
  task,
  trace,
  writeOutput,
} from '../cairn.js';

const steps = {
  echo() {
    const names = inputs();
    for (const name of names) {
      writeOutput(name, readText(name).toUpperCase());
    }
    info(`js echo ${names.length} inputs`);
  },

  secret() {
    const s = secret('token');
    info(String(s));
    info(JSON.stringify({ s }));
    console.log(s, { s }, [s]); // StarlingMonkey's own formatting, to stdout
    writeOutput('len', String(s.expose().length));
  },

  denied() {
    try {
      writeOutput('nope', 'should not be written');
    } catch (e) {
      if (!(e instanceof Denied)) {
        throw e;
      }
      writeOutput('caught', 'denied');
      return;
    }
    throw new Permanent('writing an undeclared output was not denied');
  },

  missing() {
    writeOutput('value', readText('absent', 'dflt'));
  },

  transient() {
    throw new Transient('try later');
  },

  permanent() {
    throw new Permanent('bad data');
  },

  crash() {
    throw new TypeError('boom');
  },

  async http(env) {
    const response = await http.get(env.URL, {
      bearer: env.AUTH,
      maxRedirects: env.MAX_REDIRECTS === undefined ? undefined : Number(env.MAX_REDIRECTS),
      timeout: env.TIMEOUT === undefined ? undefined : Number(env.TIMEOUT),
    });
    writeOutput('body', response.body);
    writeOutput('status', String(response.status));
  },

  // `caught` is the class of the error: `HttpDenied` when the SDK can tell
  // a refusal from other failures. With componentize-js 0.23 it cannot
  // (StarlingMonkey's fetch reports both as the same `TypeError`), so this
  // is `HttpFailed` today; the host's audit log has the denial either way.
  async 'http-denied'(env) {
    try {
      await http.get(env.URL);
    } catch (e) {
      if (e instanceof HttpDenied && !(e instanceof Denied && e instanceof HttpError)) {
        throw new Permanent('HttpDenied must also be a Denied and an HttpError');
      }
      if (e instanceof HttpError) {
        writeOutput('caught', e.name);
        return;
      }
      throw e;
    }
    throw new Permanent(`GET ${env.URL} was not refused`);
  },

  logging() {
    const restore = captureConsole();
    try {
      console.debug('js console debug');
      console.log('js console log');
      console.info('js console info');
      console.warn('js console warn');
      console.error('js console error', { n: 1 });
    } finally {
      restore();
    }
    trace('js trace');
  },
};

async function main() {
  const env = Object.fromEntries(getEnvironment());
  const step = steps[env.STEP];
  if (step === undefined) {
    throw new Permanent(`unknown STEP \`${env.STEP}\`: use one of ${Object.keys(steps).join(', ')}`);
  }
  await step(env);
}

export const run = task(main);
