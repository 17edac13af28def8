// Cairn's web UI: what every page shares, and which page this is.
//
// The pages are clients of the API (/v1), called with the session cookie;
// every request is a Cedar decision on the server, so a page shows only
// what policy lets its user read. Nothing here builds HTML from strings:
// elements are made with h() and text is always set as text.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? '';
const csrf = meta('cairn-csrf');
export const user = meta('cairn-user');

/** An error the API answered with: HTTP status, code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Call the API. A state-changing call carries the session's CSRF token.
 * An ended session goes back to sign-in, then returns here.
 */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['X-Cairn-CSRF'] = csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (response.status === 401) {
    location.assign(`/ui/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, 'unauthenticated', 'Your session ended; sign in again.');
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(response.status, error.code ?? 'error', error.message ?? `HTTP ${response.status}`);
  }
  return json;
}

/**
 * Make an element: h('a', { href, class: 'x', on: { click } }, 'text', child…).
 * Strings become text nodes; null and false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'class') {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what `el` holds with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Words and symbols for each state, so none is told by colour alone. */
export const STATES = {
  succeeded: '✓', failed: '✗', running: '⟳', queued: '…', pending: '…', waiting: '⏸',
  retrying: '↻', skipped: '⊘', cancelled: '■', refused: '⛔', error: '!', 'not run': '–',
  paused: '⏸', active: '▶',
};

/** A state shown as symbol and word. */
export function badge(state) {
  const known = Object.hasOwn(STATES, state);
  return h('span', { class: `badge state-${known ? state.replace(' ', '-') : 'unknown'}` },
    h('span', { 'aria-hidden': 'true' }, known ? STATES[state] : '?'), ' ', state);
}

/** RFC 3339 as the reader's local date and time (the UTC text in a title). */
export function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', {}, iso);
  return h('time', { datetime: iso, title: iso }, date.toLocaleString());
}

/** Milliseconds as a short duration. */
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Say `text` to screen readers (and show it in the status line). */
export function announce(text) {
  const live = document.getElementById('announce');
  if (live) live.textContent = text;
}

/** A problem shown in place of a page or a panel. */
export function problem(error) {
  const what = error instanceof ApiError && error.status === 403
    ? 'Not allowed: no policy lets you see this, or there is nothing here.'
    : error.message;
  return h('p', { class: 'problem', role: 'alert' }, what);
}

/** A section with a heading (for the page outline and skip links). */
export function section(id, title, ...children) {
  return h('section', { 'aria-labelledby': `${id}-h`, id }, h('h2', { id: `${id}-h` }, title), ...children);
}

/** Run `task` every `ms` while the page is visible; returns a stop function. */
export function every(ms, task) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      try {
        await task();
      } catch (e) {
        console.warn('refresh failed:', e.message);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** Timings the browser test reads: first render and interactive. */
export const timings = {};
window.cairnTimings = timings;

export function mark(name) {
  timings[name] = performance.now();
  performance.mark(`cairn-${name}`);
}

async function signOut() {
  try {
    await api('/ui/sign-out', { method: 'POST' });
  } finally {
    location.assign('/ui/sign-in');
  }
}

/** Which page this is, by path. */
function route(path) {
  let m;
  if (path === '/ui/runs') return ['runs', () => import('./runs.js'), {}];
  if ((m = path.match(/^\/ui\/runs\/([^/]+)$/))) return ['runs', () => import('./run.js'), { run: decodeURIComponent(m[1]) }];
  if ((m = path.match(/^\/ui\/runs\/([^/]+)\/audit$/))) return ['audit', () => import('./audit.js'), { run: decodeURIComponent(m[1]) }];
  if (path === '/ui/schedules') return ['schedules', () => import('./schedules.js'), {}];
  if (path === '/ui/audit') return ['audit', () => import('./audit.js'), {}];
  return [null, null, {}];
}

async function start() {
  document.getElementById('sign-out')?.addEventListener('click', signOut);
  const main = document.getElementById('main');
  document.body.append(h('div', { id: 'announce', class: 'sr-only', role: 'status', 'aria-live': 'polite' }));
  const [nav, load, params] = route(location.pathname);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === nav) link.setAttribute('aria-current', 'page');
  }
  if (!load) {
    document.title = 'No such page · Cairn';
    fill(main, h('h1', {}, 'No such page'), h('p', {}, 'Try ', h('a', { href: '/ui/runs' }, 'the runs'), '.'));
    return;
  }
  try {
    const page = await load();
    await page.render(main, params);
  } catch (e) {
    fill(main, h('h1', {}, 'Something went wrong'), problem(e));
  }
  mark('interactive');
}

start();
