// The web UI in Debian's Chromium against a real `cairn serve`, started
// (with its workflows, tokens and runs) by tests/e2e/ui.rs, which passes:
//   CAIRN_UI_URL     the service, http://127.0.0.1:PORT
//   CAIRN_UI_TOKENS  {"alice": …, "bob": …, "carol": …}
//   CAIRN_UI_RUNS    {"flaky": run id, "pair": …, "slow": …, "leaky": …, "hidden": …, "wide": …}
// Each test signs in, works the pages as a user would (mouse and
// keyboard), checks accessibility with axe-core, saves a screenshot to
// target/ui-screenshots/, and checks that the page logged no error
// (a CSP violation is one) and asked no other origin for anything.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { checkA11y, env, figure, openBrowser, run, screenshot, test, watch } from './lib.mjs';

const base = env('CAIRN_UI_URL');
const tokens = JSON.parse(env('CAIRN_UI_TOKENS'));
const runs = JSON.parse(env('CAIRN_UI_RUNS'));

/** A browser of its own for `who`, signed in through the form. */
async function signedIn(who, options) {
  const browser = await openBrowser(options);
  const { page } = browser;
  await page.goto(`${base}/ui/runs`);
  await page.waitForURL(/\/ui\/sign-in/);
  await page.getByLabel('API token').fill(tokens[who]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/ui\/runs$/);
  return browser;
}

/**
 * Nothing went wrong in `page`: no errors (but those `expected` matches:
 * the browser logs each refused request), nothing sent elsewhere.
 */
function clean(page, expected) {
  const seen = watch(page);
  const errors = seen.errors.filter((e) => !(expected && expected.test(e)));
  assert.deepEqual(errors, [], 'the page logged errors');
  assert.deepEqual(seen.foreignRequests, [], 'the page asked another origin');
}

async function timings(page) {
  await page.waitForFunction(() => window.cairnTimings && window.cairnTimings.interactive !== undefined);
  return page.evaluate(() => ({ ...window.cairnTimings }));
}

test('sign-in refuses a bad token, then a good one gives an HttpOnly session cookie', async () => {
  const browser = await openBrowser();
  const { page, context } = browser;
  await page.goto(`${base}/ui/runs/${runs.flaky}`);
  await page.waitForURL(/\/ui\/sign-in\?next=/);
  await checkA11y(page, 'sign-in');
  await screenshot(page, 'sign-in');
  await page.getByLabel('API token').fill('cairn_000000000000_not-a-real-token-at-all-no-no-no-no-no-no');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /Not signed in: .*cairn token create/);
  await page.getByLabel('API token').fill(tokens.alice);
  await page.keyboard.press('Enter');
  // Back to the page first asked for.
  await page.waitForURL(new RegExp(`/ui/runs/${runs.flaky}$`));
  const [cookie] = await context.cookies();
  assert.equal(cookie.name, 'cairn_session');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session');
  const html = await page.content();
  assert.ok(!html.includes(tokens.alice), 'the token is in no page');
  clean(page, /status of 401 .*\/ui\/sign-in/);
});

test('the runs list: the failed run, filters, pages, and live updates', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  const t = await timings(page);
  figure('runs list first render', t['first-render'].toFixed(0), 'ms');
  figure('runs list interactive', t.interactive.toFixed(0), 'ms');
  const rows = page.locator('table.runs tbody tr');
  assert.equal(await rows.count(), 100, 'a page of 100 runs');
  const failed = page.locator('table.runs tbody tr', { has: page.getByRole('link', { name: runs.flaky }) });
  await failed.waitFor();
  assert.match(await failed.textContent(), /failed/);
  await checkA11y(page, 'runs');
  await screenshot(page, 'runs');

  await page.getByLabel('Status').selectOption('failed');
  await page.locator('table.runs[data-query*="status=failed"]').waitFor();
  assert.equal(await rows.count(), 1);
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Workflow').selectOption('tiny');
  await page.getByLabel('Trigger').selectOption('api');
  await page.locator('table.runs[data-query*="workflow=tiny"][data-query*="trigger=api"]').waitFor();
  assert.equal(await rows.count(), 100);
  assert.ok((await rows.allTextContents()).every((r) => r.includes('tiny')), 'only tiny runs');
  const first = await rows.first().textContent();
  await page.getByRole('button', { name: 'Older →' }).click();
  await page.waitForFunction((was) => document.querySelector('table.runs tbody tr')?.textContent !== was, first);
  assert.equal(await page.getByRole('button', { name: '← Newer' }).isEnabled(), true);
  await page.getByRole('button', { name: '← Newer' }).click();
  await page.waitForFunction((was) => document.querySelector('table.runs tbody tr')?.textContent === was, first);

  // A run started elsewhere shows up without a reload.
  const started = await fetch(`${base}/v1/workflows/tiny/runs`, {
    method: 'POST', headers: { Authorization: `Bearer ${tokens.alice}` },
  }).then((r) => r.json());
  await page.getByRole('link', { name: started.run }).waitFor({ timeout: 15000 });
  clean(page);
});

test('a failed run: its graph, the task that failed, its retry and its log', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  await page.goto(`${base}/ui/runs/${runs.flaky}`);
  const load = page.locator('[role="button"][aria-label^="task load:"]');
  await load.waitFor();
  assert.match(await load.getAttribute('aria-label'), /failed/);
  assert.match(await page.locator('[aria-label^="task report:"]').getAttribute('aria-label'), /skipped/);
  await load.click();
  const detail = page.locator('#detail');
  await detail.getByText('anyone-runs').first().waitFor();
  assert.match(await detail.textContent(), /upstream unavailable/);
  const timeline = page.locator('#timeline-section');
  assert.match(await timeline.textContent(), /retry after attempt 1/);
  assert.match(await timeline.textContent(), /attempt 2/);
  await detail.getByRole('link', { name: 'Show its logs' }).click();
  await page.locator('#logs-section article').first().waitFor();
  assert.match(await page.locator('#logs-section').textContent(), /load attempt 2: transient|load attempt 1/);
  await checkA11y(page, 'run-failed');
  await screenshot(page, 'run-failed');
  clean(page);
});

test('a denial shows the request, the decision and the deciding policy', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  await page.goto(`${base}/ui/runs/${runs.leaky}`);
  const edge = page.locator('[role="button"][aria-label^="data edge extract → publish"]');
  await edge.waitFor({ state: 'attached' });
  assert.match(await edge.getAttribute('aria-label'), /denied by policy/);
  // By keyboard: focus the edge, press Enter.
  await edge.focus();
  await page.keyboard.press('Enter');
  const detail = page.locator('#detail');
  await detail.getByText('pii-stays-in').waitFor();
  assert.match(await detail.textContent(), /deny/);
  assert.match(await detail.textContent(), /customers/);
  await detail.getByText('Request').first().click();
  assert.match(await detail.locator('pre').first().textContent(), /"action": "flow"/);
  await checkA11y(page, 'run-denied');
  await screenshot(page, 'run-denied');
  clean(page);
});

test('another user approves a waiting gate; the run goes on', async () => {
  const browser = await signedIn('bob');
  const { page } = browser;
  await page.goto(`${base}/ui/runs/${runs.pair}`);
  const gate = page.locator('[role="button"][aria-label^="task gate:"]');
  await gate.waitFor();
  assert.match(await gate.getAttribute('aria-label'), /waiting/);
  await gate.click();
  await checkA11y(page, 'run-waiting');
  await screenshot(page, 'run-waiting');
  await page.getByLabel(/Comment/).fill('looks right');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.waitForFunction(() => /Approved|Rejected/.test(document.getElementById('announce')?.textContent ?? '')
    || document.querySelector('#detail .problem'));
  assert.match(await page.locator('#announce').textContent(), /Approved: 1 of 1 approval/,
    await page.locator('#detail').textContent());
  await page.locator('#run-status').getByText('succeeded').waitFor({ timeout: 30000 });
  assert.match(await page.locator('[aria-label^="task b:"]').getAttribute('aria-label'), /succeeded/);
  await screenshot(page, 'run');
  clean(page);
});

test('outputs download where policy allows, and the bundle; verify now', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  await page.goto(`${base}/ui/runs/${runs.hidden}`);
  const link = page.getByRole('link', { name: /Download echo of only/ });
  await link.waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(await readFile(await download.path(), 'utf8'), 'only()');

  await page.getByRole('link', { name: 'Audit records' }).click();
  await page.waitForURL(/\/audit$/);
  await page.getByRole('heading', { name: 'Latest signed checkpoint' }).waitFor();
  await page.getByRole('button', { name: 'Verify now' }).click();
  await page.locator('#verify-result').getByText('The log verifies.').waitFor({ timeout: 60000 });
  await page.getByLabel('Kind').selectOption('task-finished');
  assert.equal(await page.locator('table.records tbody tr').count(), 1);
  const [bundle] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /bundle/ }).click(),
  ]);
  const tar = await readFile(await bundle.path());
  assert.ok(tar.length > 1024, 'a bundle');
  assert.ok(tar.includes(Buffer.from('SHA256SUMS')), 'the bundle lists its files');
  await checkA11y(page, 'audit');
  await screenshot(page, 'audit');
  clean(page);
});

test('cancel a running run', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  page.on('dialog', (dialog) => dialog.accept());
  await page.goto(`${base}/ui/runs/${runs.slow}`);
  await page.getByRole('button', { name: 'Cancel run' }).click();
  await page.locator('#run-status').getByText('cancelled').waitFor({ timeout: 30000 });
  clean(page);
  // A script without the page's CSRF header changes nothing.
  const forged = await page.evaluate(async (id) => {
    const r = await fetch(`/v1/runs/${id}/cancel`, { method: 'POST' });
    return { status: r.status, body: await r.json() };
  }, runs.slow);
  assert.equal(forged.status, 403);
  assert.equal(forged.body.error.code, 'csrf');
  clean(page, /status of 403 .*\/cancel/);
});

test('schedules: the next ten ticks in their zone, pause and resume', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  await page.getByRole('link', { name: 'Schedules' }).click();
  await page.waitForURL(/\/ui\/schedules$/);
  const card = page.locator('article.schedule', { hasText: 'nightly' });
  await card.waitFor();
  assert.equal(await card.locator('tbody tr').count(), 10);
  assert.match(await card.locator('tbody tr').first().textContent(), /03:00/);
  assert.match(await card.textContent(), /Europe\/Paris/);
  await card.getByRole('button', { name: 'Pause' }).click();
  await card.getByRole('button', { name: 'Resume' }).waitFor();
  await checkA11y(page, 'schedules');
  await screenshot(page, 'schedules');
  await card.getByRole('button', { name: 'Resume' }).click();
  await card.getByRole('button', { name: 'Pause' }).waitFor();
  clean(page);
});

test('a user without read_run for a workflow sees none of its runs', async () => {
  const browser = await signedIn('carol');
  const { page } = browser;
  await page.locator('table.runs tbody tr').first().waitFor();
  const text = await page.locator('table.runs').textContent();
  assert.ok(text.includes(runs.pair), 'carol sees the pair run');
  for (const name of ['hidden', 'flaky', 'leaky', 'slow', 'wide']) {
    assert.ok(!text.includes(runs[name]), `carol must not see the ${name} run`);
  }
  const options = await page.getByLabel('Workflow').locator('option').allTextContents();
  assert.deepEqual(options, ['any', 'pair']);
  await page.goto(`${base}/ui/runs/${runs.hidden}`);
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /Not allowed/);
  await checkA11y(page, 'runs-carol');
  // The page's failed fetch (403) is the only console error allowed.
  const seen = watch(page);
  assert.ok(seen.errors.every((e) => /403/.test(e)), seen.errors.join('\n'));
  assert.deepEqual(seen.foreignRequests, []);
});

test('a run of 1,001 tasks draws, and a narrow screen reflows', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  const started = Date.now();
  await page.goto(`${base}/ui/runs/${runs.wide}`);
  const t = await timings(page);
  figure('1,001-task run page first render', t['first-render'].toFixed(0), 'ms');
  figure('1,001-task run page interactive', t.interactive.toFixed(0), 'ms');
  figure('1,001-task run page loaded (wall)', Date.now() - started, 'ms');
  assert.equal(await page.locator('svg [role="button"][aria-label^="task "]').count(), 1001);
  await page.locator('[aria-label^="task each[999]:"]').click();
  await page.locator('#detail').getByText('each[999]').first().waitFor();
  await screenshot(page, 'run-wide', { fullPage: false });
  clean(page);
  await browser.close();

  const narrow = await signedIn('alice', { viewport: { width: 390, height: 844 } });
  await narrow.page.goto(`${base}/ui/runs/${runs.flaky}`);
  await narrow.page.locator('[aria-label^="task load:"]').waitFor();
  const overflow = await narrow.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow} px wider than a narrow screen`);
  await checkA11y(narrow.page, 'run-narrow');
  await screenshot(narrow.page, 'run-narrow');
  clean(narrow.page);
});

test('keyboard only: skip link, navigation, a node by Tab and Enter', async () => {
  const browser = await signedIn('alice');
  const { page } = browser;
  await page.goto(`${base}/ui/runs/${runs.flaky}`);
  await page.locator('[aria-label^="task load:"]').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  // Tab on until a task of the graph has focus, then open it.
  let label = '';
  for (let i = 0; i < 40 && !label.startsWith('task '); i += 1) {
    await page.keyboard.press('Tab');
    label = await page.evaluate(() => document.activeElement.getAttribute('aria-label') ?? '');
  }
  assert.ok(label.startsWith('task '), 'a task is reachable by Tab');
  await page.keyboard.press('Enter');
  await page.locator('#detail h3').waitFor();
  assert.match(await page.locator('#detail h3').textContent(), /Task /);
  clean(page);
});

await run();
