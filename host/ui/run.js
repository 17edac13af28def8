// A run's page: its graph with each task's state and the policy decisions
// behind each node and edge; the timeline of attempts, retries and waits;
// each attempt's log lines, stdout and stderr; its outputs with digests;
// cancel, approve and reject.

import {
  api, announce, badge, duration, every, fill, h, mark, problem, section, when, user,
} from './app.js';
import { drawGraph } from './graph.js';

const ACTIVE = new Set(['queued', 'running', 'waiting']);
const REFRESH_MS = 2000;

export async function render(main, { run: id }) {
  document.title = `Run ${id} · Cairn`;
  const base = `/v1/runs/${encodeURIComponent(id)}`;
  const [run, view] = await Promise.all([api(base), api(`${base}/graph`)]);
  let state = { run, view };
  let drawn = null;
  let selected = null;

  const head = h('div', { class: 'page-head' });
  const graphBox = h('div', { class: 'graph-box', id: 'graph' });
  const detail = h('div', { class: 'detail', id: 'detail', 'aria-live': 'polite' },
    h('p', { class: 'muted' }, 'Select a task or an edge (click, or Tab to it and press Enter) to see the decisions behind it.'));
  const timeline = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Timeline' });
  const logs = h('div', { class: 'logs' });
  const outputs = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Outputs' });
  fill(main,
    head,
    section('graph-section', 'Graph',
      h('div', { class: 'graph-layout' }, graphBox, detail)),
    section('timeline-section', 'Timeline', timeline),
    section('logs-section', 'Logs', logs),
    section('outputs-section', 'Outputs', outputs));

  const onSelect = (what) => {
    selected = what;
    showDetail();
  };

  const showHead = () => {
    const r = state.run;
    const actions = [];
    if (r.status === 'queued' || r.status === 'running') {
      actions.push(h('button', { type: 'button', class: 'danger', id: 'cancel', on: { click: cancel } }, 'Cancel run'));
    }
    actions.push(h('a', { href: `/ui/runs/${encodeURIComponent(id)}/audit`, class: 'button quiet' }, 'Audit records'));
    fill(head,
      h('div', {},
        h('h1', {}, 'Run ', h('span', { class: 'mono' }, id)),
        h('dl', { class: 'facts' },
          h('div', {}, h('dt', {}, 'Workflow'), h('dd', {}, r.workflow)),
          h('div', {}, h('dt', {}, 'Status'), h('dd', { id: 'run-status' }, badge(r.status))),
          h('div', {}, h('dt', {}, 'Started by'), h('dd', {}, r.user, r.trigger ? ` (${r.trigger})` : '')),
          h('div', {}, h('dt', {}, 'Started'), h('dd', {}, when(r.started))),
          h('div', {}, h('dt', {}, 'Took'), h('dd', {}, duration(r.duration_ms))))),
      h('div', { class: 'actions' }, actions));
  };

  const showGraph = () => {
    const v = state.view;
    if (!v.planned) {
      graphBox.before(h('p', { class: 'note' }, 'The manifest this run recorded does not plan any more; tasks are shown without their edges.'));
    }
    drawn?.destroy();
    drawn = drawGraph(graphBox, v, { onSelect, selected });
    if (selected) drawn.select(selected.kind, selected.id);
  };

  const decisionsTable = (indices) => {
    const rows = indices.map((i) => state.view.decisions[i]).filter(Boolean);
    if (rows.length === 0) return h('p', { class: 'muted' }, 'No policy decision was recorded for this yet.');
    return h('ul', { class: 'decisions' }, rows.map((d) => h('li', { class: `decision ${d.decision}` },
      h('p', {},
        h('strong', {}, d.decision === 'allow' ? '✓ allow' : '⛔ deny'), ' ',
        h('code', {}, d.action), ` (${d.phase}, record ${d.seq})`,
        d.verdict ? ` — ${d.verdict} by ${d.approver}${d.counted ? ', counted' : `, not counted: ${d.refused ?? ''}`}` : ''),
      h('p', {}, 'Deciding policies: ', d.policies.length
        ? d.policies.map((p, k) => [k ? ', ' : '', h('code', { class: 'policy' }, p)])
        : h('em', {}, d.decision === 'deny' ? 'none permits it (default deny)' : 'none')),
      d.errors.length ? h('p', { class: 'problem' }, `Errors: ${d.errors.join('; ')}`) : null,
      h('details', {}, h('summary', {}, 'Request'),
        h('pre', { tabindex: '0' }, JSON.stringify({ principal: d.principal, action: d.action, resource: d.resource, context: d.context }, null, 2))))));
  };

  const showDetail = () => {
    if (!selected) return;
    const v = state.view;
    if (selected.kind === 'node') {
      const node = v.nodes.find((n) => n.id === selected.id);
      if (!node) return;
      const gate = node.gate && node.state === 'waiting' ? gateForm(node.id) : null;
      fill(detail,
        h('h3', {}, 'Task ', h('span', { class: 'mono' }, node.id)),
        h('p', {}, badge(node.state), node.attempts > 1 ? ` after ${node.attempts} attempts` : ''),
        node.detail ? h('p', { class: 'mono small' }, node.detail) : null,
        gate,
        h('h4', {}, 'Decisions'),
        decisionsTable(node.decisions),
        h('p', {}, h('a', { href: '#logs-section', on: { click: () => showLogs(node.id) } }, 'Show its logs')));
    } else {
      const edge = v.edges.find((e) => `${e.from}->${e.to}` === selected.id);
      if (!edge) return;
      fill(detail,
        h('h3', {}, edge.kind === 'data' ? 'Data edge' : 'Order edge'),
        h('p', { class: 'mono' }, `${edge.from} → ${edge.to}`),
        edge.kind === 'data' ? h('p', {}, `Output `, h('code', {}, edge.output), ' into input ', h('code', {}, edge.input),
          edge.labels?.length ? [' carrying labels ', edge.labels.map((l, k) => [k ? ', ' : '', h('code', {}, l)])] : ' (no labels)') : h('p', {}, `${edge.to} needs ${edge.from} to finish first.`),
        h('h4', {}, 'Decisions'),
        edge.kind === 'data' ? decisionsTable(edge.decisions) : h('p', { class: 'muted' }, 'Ordering needs no decision.'));
    }
  };

  const gateForm = (task) => {
    const comment = h('textarea', { id: 'gate-comment', rows: 2 });
    const said = h('p', { role: 'status' });
    const decide = async (verdict) => {
      try {
        const answer = await api(`${base}/tasks/${encodeURIComponent(task)}/${verdict}`, {
          method: 'POST', body: comment.value ? { comment: comment.value } : {},
        });
        const by = Array.isArray(answer.approvals) ? answer.approvals : [];
        said.textContent = verdict === 'approve'
          ? `Approved: ${by.length} of ${answer.required} approval(s) so far (${by.join(', ')}); recorded as record ${answer.record}.`
          : `Rejected; recorded as record ${answer.record}.`;
        announce(said.textContent);
        await refresh(true);
      } catch (e) {
        fill(said, problem(e));
      }
    };
    return h('form', { class: 'gate', on: { submit: (e) => e.preventDefault() } },
      h('p', {}, `This approval gate is waiting. You are ${user}; the run's starter never counts.`),
      h('label', { for: 'gate-comment' }, 'Comment (optional, recorded by digest)'), comment,
      h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'approve', on: { click: () => decide('approve') } }, 'Approve'),
        h('button', { type: 'button', id: 'reject', class: 'danger', on: { click: () => decide('reject') } }, 'Reject')),
      said);
  };

  const showTimeline = () => {
    const items = state.view.timeline;
    if (items.length === 0) {
      fill(timeline, h('p', { class: 'muted' }, 'Nothing has run yet.'));
      return;
    }
    const times = items.flatMap((t) => [t.start, t.end]).filter(Boolean).map((t) => Date.parse(t));
    const t0 = Math.min(...times);
    const span = Math.max(1, Math.max(...times) - t0);
    const bar = (t) => {
      const s = t.start ? Date.parse(t.start) : t0;
      const e = t.end ? Date.parse(t.end) : (t.kind === 'retry' ? s + (t.delay_ms ?? 0) : Date.now());
      const x = ((s - t0) / span) * 100;
      const w = Math.max(0.5, ((e - s) / span) * 100);
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.setAttribute('viewBox', '0 0 100 10');
      svg.setAttribute('preserveAspectRatio', 'none');
      svg.setAttribute('class', 'bar');
      svg.setAttribute('aria-hidden', 'true');
      const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      rect.setAttribute('x', x.toFixed(2));
      rect.setAttribute('width', Math.min(w, 100 - x).toFixed(2));
      rect.setAttribute('y', '1');
      rect.setAttribute('height', '8');
      rect.setAttribute('class', `bar-${t.kind} outcome-${t.outcome ?? 'open'}`);
      svg.append(rect);
      return svg;
    };
    fill(timeline, h('table', { class: 'timeline' },
      h('caption', { class: 'sr-only' }, 'Attempts, retries and waits, in the order they were recorded'),
      h('thead', {}, h('tr', {}, ['Task', 'What', 'Started', 'Ended', 'Took', 'Outcome', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, items.map((t) => h('tr', {},
        h('td', { class: 'mono' }, t.task),
        h('td', {}, t.kind === 'attempt' ? `attempt ${t.attempt}` : t.kind === 'retry' ? `retry after attempt ${t.attempt} (in ${duration(t.delay_ms)})` : 'approval wait'),
        h('td', {}, when(t.start)),
        h('td', {}, t.kind === 'retry' ? '—' : when(t.end)),
        h('td', { class: 'num' }, t.duration_ms !== undefined ? duration(t.duration_ms) : (t.start && t.end ? duration(Date.parse(t.end) - Date.parse(t.start)) : '—')),
        h('td', {}, t.outcome ?? (t.kind === 'wait' ? 'waiting' : ''), t.detail ? h('span', { class: 'muted small' }, ` ${t.detail}`) : ''),
        h('td', { class: 'bar-cell' }, bar(t)))))));
  };

  let logsTask = '';
  const showLogs = async (task) => {
    if (task !== undefined) logsTask = task;
    const tasks = state.view.nodes.map((n) => n.id);
    const picker = h('select', { id: 'log-task', on: { change: (e) => showLogs(e.target.value) } },
      h('option', { value: '' }, 'every task'),
      tasks.map((t) => h('option', { value: t, selected: t === logsTask }, t)));
    const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    fill(logs, h('div', { class: 'field' }, h('label', { for: 'log-task' }, 'Task'), picker), body);
    try {
      const q = logsTask ? `?task=${encodeURIComponent(logsTask)}` : '';
      const got = await api(`${base}/logs${q}`);
      fill(body, got.attempts.length === 0
        ? h('p', { class: 'muted' }, 'No attempt has ended yet.')
        : got.attempts.map((a) => h('article', { class: 'attempt' },
          h('h3', {}, h('span', { class: 'mono' }, a.task), ` attempt ${a.attempt}: ${a.outcome}`, h('span', { class: 'muted' }, ` (${duration(a.duration_ms)})`)),
          a.detail ? h('p', { class: 'mono small' }, a.detail) : null,
          stream('Log lines', (a.logs ?? []).map((l) => typeof l === 'string' ? l : `${l.level ?? ''} ${l.message ?? JSON.stringify(l)}`).join('\n')),
          stream('stdout', a.stdout),
          stream('stderr', a.stderr))));
    } catch (e) {
      fill(body, problem(e));
    }
  };

  const showOutputs = () => {
    const made = state.view.outputs;
    if (made.length === 0) {
      fill(outputs, h('p', { class: 'muted' }, 'No outputs yet.'));
      return;
    }
    fill(outputs, h('table', {},
      h('caption', { class: 'sr-only' }, 'Outputs of the run\u2019s tasks'),
      h('thead', {}, h('tr', {}, ['Task', 'Output', 'Labels', 'Size', 'SHA-256', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, made.map((o) => h('tr', {},
        h('td', { class: 'mono' }, o.task),
        h('td', { class: 'mono' }, o.name),
        h('td', {}, o.labels.length ? o.labels.join(', ') : h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'num' }, `${o.bytes} B`),
        h('td', { class: 'mono small digest' }, o.sha256),
        h('td', {}, download(o)))))));
  };

  // A download is a `read_output` decision: asked first, so a refusal is
  // said in place rather than as a failed file.
  const download = (o) => {
    const href = `${base}/outputs/${encodeURIComponent(o.task)}/${encodeURIComponent(o.name)}`;
    const said = h('span', { class: 'small', role: 'status' });
    const link = h('a', {
      href,
      download: `${o.task}.${o.name}`,
      'aria-label': `Download ${o.name} of ${o.task} (where policy allows)`,
    }, 'Download');
    link.addEventListener('click', async (event) => {
      event.preventDefault();
      said.textContent = '';
      const response = await fetch(href, { credentials: 'same-origin' });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        said.textContent = response.status === 403
          ? ' Not allowed: no policy lets you download this (the refusal is recorded).'
          : ` ${body.error?.message ?? `HTTP ${response.status}`}`;
        said.className = 'small problem-text';
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const save = h('a', { href: url, download: `${o.task}.${o.name}`, class: 'sr-only' });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
    return [link, said];
  };

  async function cancel() {
    if (!confirm(`Cancel run ${id}? Tasks under way are stopped; it is recorded as cancelled.`)) return;
    try {
      await api(`${base}/cancel`, { method: 'POST' });
      announce('Cancelling the run.');
      await refresh(true);
    } catch (e) {
      head.append(problem(e));
    }
  }

  let stop = null;
  async function refresh(force = false) {
    const [r, v] = await Promise.all([api(base), api(`${base}/graph`)]);
    const changed = force || JSON.stringify(v) !== JSON.stringify(state.view) || r.status !== state.run.status;
    state = { run: r, view: v };
    if (!changed) return;
    showHead();
    showGraph();
    showDetail();
    showTimeline();
    showOutputs();
    if (!ACTIVE.has(r.status) && stop) {
      stop();
      stop = null;
      showLogs();
    }
  }

  showHead();
  showGraph();
  showTimeline();
  showOutputs();
  mark('first-render');
  await showLogs();
  if (ACTIVE.has(run.status)) stop = every(REFRESH_MS, () => refresh());
}

function stream(title, text) {
  if (!text) return null;
  return h('details', { open: true }, h('summary', {}, title), h('pre', { class: 'stream', tabindex: '0' }, text));
}
