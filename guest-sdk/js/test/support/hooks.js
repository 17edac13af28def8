// A Node module-resolution hook for the unit tests: `cairn:task/host@0.1.0`
// (a component import under componentize-js) resolves to the fake host.

const FAKE_HOST = new URL('./fake-host.js', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'cairn:task/host@0.1.0') {
    return { url: FAKE_HOST, shortCircuit: true };
  }
  return next(specifier, context);
}
