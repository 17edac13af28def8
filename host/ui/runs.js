// The runs page: every run the user may list, filtered by workflow,
// status and trigger, a page at a time, kept up to date by polling.

import { api, badge, duration, every, fill, h, mark, problem, when, announce } from './app.js';

const STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'refused', 'cancelled', 'error'];
const TRIGGERS = ['api', 'schedule', 'webhook', 'backfill', 'cli'];
const PAGE = 100;
const REFRESH_MS = 3000;

function select(name, label, options, value) {
  return h('div', { class: 'field' },
    h('label', { for: `f-${name}` }, label),
    h('select', { id: `f-${name}`, name },
      h('option', { value: '' }, 'any'),
      options.map((o) => h('option', { value: o, selected: o === value }, o))));
}

export async function render(main, _params) {
  document.title = 'Runs · Cairn';
  const query = new URLSearchParams(location.search);
  const filters = {
    workflow: query.get('workflow') ?? '',
    status: query.get('status') ?? '',
    trigger: query.get('trigger') ?? '',
  };
  // The cursors of the pages before this one (for "Previous").
  const before = [];
  let after = query.get('after') ?? '';
  let shown = '';

  const workflows = await api('/v1/workflows').then((w) => w.workflows.map((x) => x.name)).catch(() => []);
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    select('workflow', 'Workflow', workflows, filters.workflow),
    select('status', 'Status', STATUSES, filters.status),
    select('trigger', 'Trigger', TRIGGERS, filters.trigger));
  const count = h('p', { class: 'muted', id: 'runs-count' });
  const body = h('tbody');
  const table = h('table', { class: 'runs', 'aria-describedby': 'runs-count' },
    h('caption', { class: 'sr-only' }, 'Runs, newest first'),
    h('thead', {}, h('tr', {},
      ['Run', 'Workflow', 'Status', 'Trigger', 'By', 'Started', 'Took'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const previous = h('button', { type: 'button', class: 'quiet', disabled: true }, '← Newer');
  const next = h('button', { type: 'button', class: 'quiet', disabled: true }, 'Older →');
  const place = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Runs' }, table);
  const status = h('div', { class: 'status-line' });
  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Runs'), status),
    form, count, place,
    h('nav', { class: 'pager', 'aria-label': 'Pages of runs' }, previous, next));

  const url = () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (after) q.set('after', after);
    return `/v1/runs?${q}`;
  };

  let nextCursor = null;
  const load = async () => {
    const asked = url();
    let listed;
    try {
      listed = await api(asked);
    } catch (e) {
      if (asked === url()) fill(place, problem(e));
      return;
    }
    // An answer to filters changed since is not shown.
    if (asked !== url()) return;
    const text = JSON.stringify(listed);
    // What this table shows (the browser test waits on it).
    table.dataset.query = asked;
    if (text === shown) return;
    shown = text;
    fill(place, table);
    fill(body, listed.runs.length === 0
      ? h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No runs match. Runs you may not list are not shown.'))
      : listed.runs.map(row));
    nextCursor = listed.next ? new URL(listed.next).searchParams.get('after') : null;
    next.disabled = !nextCursor;
    previous.disabled = before.length === 0 && !after;
    count.textContent = `${listed.runs.length} run(s) on this page${listed.next ? ', more older' : ''}.`;
    fill(status, h('span', { class: 'muted' }, 'Updated ', new Date().toLocaleTimeString()));
  };

  const reload = () => {
    shown = '';
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (after) q.set('after', after);
    history.replaceState(null, '', `/ui/runs${q.size ? `?${q}` : ''}`);
    return load();
  };

  form.addEventListener('change', (event) => {
    filters[event.target.name] = event.target.value;
    after = '';
    before.length = 0;
    reload().then(() => announce(count.textContent));
  });
  form.addEventListener('submit', (event) => event.preventDefault());
  next.addEventListener('click', () => {
    before.push(after);
    after = nextCursor ?? '';
    reload().then(() => announce(count.textContent));
  });
  previous.addEventListener('click', () => {
    after = before.pop() ?? '';
    reload().then(() => announce(count.textContent));
  });

  await reload();
  mark('first-render');
  every(REFRESH_MS, load);
}

function row(run) {
  return h('tr', {},
    h('td', {}, h('a', { href: `/ui/runs/${encodeURIComponent(run.id)}`, class: 'mono' }, run.id)),
    h('td', {}, run.workflow),
    h('td', {}, badge(run.status)),
    h('td', {}, run.trigger ?? ''),
    h('td', {}, run.user),
    h('td', {}, when(run.started)),
    h('td', { class: 'num' }, duration(run.duration_ms)));
}
