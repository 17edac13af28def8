// The harness for the browser tests of `cairn serve`'s web UI.
//
// A test script imports this module, registers tests with `test()` and
// calls `run()`. Each test drives Debian's Chromium (/usr/bin/chromium)
// through playwright-core, checks pages with axe-core, and can save
// screenshots and print measured figures for the Rust side
// (tests/e2e/ui.rs) to read. Nothing here downloads anything: the two npm
// packages are pinned in tests/ui/package-lock.json and installed by
// .ci/run into target/toolchains/ui/node_modules, and the browser is the
// distribution's.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** The repository's root (this file is tests/ui/lib.mjs). */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Where playwright-core and axe-core are installed. */
export const nodeModules =
  process.env.CAIRN_UI_NODE_MODULES || path.join(repoRoot, 'target/toolchains/ui/node_modules');

const require = createRequire(import.meta.url);
function load(name) {
  try {
    return require(path.join(nodeModules, name));
  } catch (err) {
    throw new Error(
      `cannot load ${name} from ${nodeModules} (${err.message.split('\n')[0]}); install it with: ` +
        'mkdir -p target/toolchains/ui && cp tests/ui/package*.json target/toolchains/ui/ && ' +
        'npm ci --prefix target/toolchains/ui',
    );
  }
}
const { chromium } = load('playwright-core');
const axe = load('axe-core');

// --- Browsers ---------------------------------------------------------------

const ARGS = [
  // Nothing leaves the machine: every host name but the loopback ones
  // fails to resolve, inside Chromium. Flags alone do not stop Chromium
  // 156 asking Google's servers (sign-in, updates, autofill) for things;
  // a lone --disable-features would override Playwright's own list.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost, EXCLUDE ::1',
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-quic',
  '--disable-sync',
];

/** Browsers not closed yet: `run()` closes those a test leaves open. */
const open = new Set();

/**
 * A new Chromium with a profile of its own: its own cookies and storage,
 * so that several users can be signed in at once, one browser each.
 * The profile is a fresh temporary directory, removed by `close()`.
 * Every page it opens is `watch`ed from its first request on.
 *
 * @param {{ viewport?: { width: number, height: number }, args?: string[] }} [options]
 *   `args`: more Chromium flags, after the harness's own.
 * @returns {Promise<{ context: import('playwright-core').BrowserContext,
 *                     page: import('playwright-core').Page,
 *                     close: () => Promise<void>, profile: string }>}
 */
export async function openBrowser({ viewport = { width: 1280, height: 800 }, args = [] } = {}) {
  const profile = mkdtempSync(path.join(tmpdir(), 'cairn-ui-profile-'));
  let context;
  try {
    // `launch` refuses --user-data-dir; a persistent context is given one.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CAIRN_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [...ARGS, ...args],
      viewport,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(15_000);
  context.on('page', watch);
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page);

  let closing;
  const browser = {
    context,
    page,
    close() {
      closing ??= (async () => {
        open.delete(browser);
        try {
          await context.close();
        } finally {
          rmSync(profile, { recursive: true, force: true });
        }
      })();
      return closing;
    },
    profile,
  };
  open.add(browser);
  return browser;
}

// Playwright kills its browsers when Node exits; their profiles go too.
process.on('exit', () => {
  for (const { profile } of open) rmSync(profile, { recursive: true, force: true });
});

// --- What a page did wrong ----------------------------------------------------

const watched = new WeakMap();

/**
 * What `page` did that a test should see none of: `errors` gets every
 * console error (a CSP violation is one) and uncaught exception,
 * `foreignRequests` every request (and WebSocket) to an origin other than
 * the page's own. Pages from `openBrowser` are watched from the start;
 * calling `watch` again returns the same record.
 *
 * @param {import('playwright-core').Page} page
 * @returns {{ errors: string[], foreignRequests: string[] }}
 */
export function watch(page) {
  let seen = watched.get(page);
  if (seen) return seen;
  seen = { errors: [], foreignRequests: [] };
  watched.set(page, seen);

  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const { url, lineNumber } = msg.location();
    seen.errors.push(`console error: ${msg.text()}${url ? ` (${url}:${lineNumber})` : ''}`);
  });
  page.on('pageerror', (err) => seen.errors.push(`uncaught: ${err.stack || err.message}`));

  // The page's own origin is that of its main frame's latest navigation
  // (each redirect is a request of its own, the last one wins): the test
  // chose it. URLs without an origin (data:, allowed for images) are
  // nobody's.
  let own = originOf(page.url());
  const record = (what, url) => {
    const origin = originOf(url);
    if (origin !== null && origin !== own) seen.foreignRequests.push(`${what} ${url}`);
  };
  page.on('request', (req) => {
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) own = originOf(req.url());
    else record(req.method(), req.url());
  });
  page.on('websocket', (ws) => record('WebSocket', ws.url().replace(/^ws/, 'http')));
  return seen;
}

/** `url`'s origin, or null if it has none (about:blank, data:). */
function originOf(url) {
  try {
    const { origin } = new URL(url);
    return origin === 'null' ? null : origin;
  } catch {
    return null;
  }
}

// --- Accessibility -----------------------------------------------------------

/**
 * Runs axe-core on `page` as it is now. Throws, naming `label`, if any
 * violation is `serious` or `critical`; returns all violations otherwise.
 *
 * The pages' CSP (`script-src 'self'`, no 'unsafe-eval') blocks a <script>
 * carrying axe, and the test must not loosen it. So axe's source is
 * handed to page.evaluate: it runs over the DevTools protocol, and code
 * evaluated that way is not subject to the page's CSP. The policy stays
 * exactly as served (no bypassCSP), and a violation by the page itself
 * still shows in `watch(page).errors`. axe lives in the page's main world
 * (window.axe) from then on, until the page navigates.
 *
 * @param {import('playwright-core').Page} page
 * @param {string} [label] what was checked, for the error (default: the URL)
 * @returns {Promise<object[]>} axe's violations
 */
export async function checkA11y(page, label = page.url()) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(axe.source);
  }
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations;
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length > 0) {
    const lines = bad.map(
      (v) =>
        `  ${v.id} (${v.impact}): ${v.help}\n` +
        v.nodes.map((n) => `    at ${n.target.join(' ')}`).join('\n'),
    );
    throw new Error(`accessibility of ${label}: ${bad.length} serious or critical\n${lines.join('\n')}`);
  }
  return violations;
}

// --- Screenshots, figures, environment ----------------------------------------

/**
 * A PNG of `page` (the whole page, unless `fullPage` is false: the
 * viewport) at target/ui-screenshots/<name>.png.
 * @returns {Promise<string>} its path
 */
export async function screenshot(page, name, { fullPage = true } = {}) {
  const dir = path.join(repoRoot, 'target/ui-screenshots');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/[^\w.-]/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** Prints `figure: <name> = <value> <unit>`, which the Rust side reads. */
export function figure(name, value, unit = '') {
  console.log(`figure: ${name} = ${value} ${unit}`.trimEnd());
}

/** The environment variable `name`, which must be set. */
export function env(name) {
  const value = process.env[name];
  if (value === undefined) throw new Error(`environment variable ${name} is not set`);
  return value;
}

// --- Runner --------------------------------------------------------------------

const tests = [];

/**
 * Registers a test; `run()` runs them in order.
 * @param {string} name
 * @param {() => Promise<void> | void} fn
 * @param {{ timeout?: number }} [options] ms before the test fails (default 120 s)
 */
export function test(name, fn, { timeout = 120_000 } = {}) {
  tests.push({ name, fn, timeout });
}

/**
 * Runs the registered tests in order, TAP-like: `ok N - name (X ms)` or
 * `not ok N - name` with the error. A failure does not stop the rest.
 * Browsers a test left open are closed after it. Ends with
 * `ui: P passed, F failed` and sets process.exitCode = 1 on a failure.
 */
export async function run() {
  let failed = 0;
  console.log(`1..${tests.length}`);
  for (const [i, { name, fn, timeout }] of tests.entries()) {
    const n = i + 1;
    const start = performance.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms`)), timeout);
        }),
      ]);
      console.log(`ok ${n} - ${name} (${Math.round(performance.now() - start)} ms)`);
    } catch (err) {
      failed++;
      console.log(`not ok ${n} - ${name}`);
      // V8's stack starts with the message: then the stack alone is enough.
      const message = err instanceof Error ? err.message : String(err);
      const stack = (err instanceof Error && err.stack) || '';
      console.log(indent(stack.includes(message) ? stack : `${message}\n${stack}`.trimEnd()));
    } finally {
      clearTimeout(timer);
      await Promise.allSettled([...open].map((b) => b.close()));
    }
  }
  console.log(`ui: ${tests.length - failed} passed, ${failed} failed`);
  if (failed > 0) process.exitCode = 1;
}

const indent = (text) => text.replace(/^/gm, '  # ');
