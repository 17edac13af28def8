// The audit page: pick a run; then its records, the log's latest signed
// checkpoint, "verify now" (the server runs `cairn audit verify`'s own
// checks over the whole log with its key), and the auditor's bundle.

import { api, announce, badge, fill, h, problem, section, when } from './app.js';

export async function render(main, { run }) {
  if (!run) return picker(main);
  document.title = `Audit of ${run} · Cairn`;
  const base = `/v1/runs/${encodeURIComponent(run)}`;
  const got = await api(`${base}/audit`);
  const result = h('div', { id: 'verify-result', 'aria-live': 'polite' });
  const verify = h('button', { type: 'button', id: 'verify' }, 'Verify now');
  verify.addEventListener('click', async () => {
    verify.disabled = true;
    fill(result, h('p', { class: 'muted' }, 'Verifying the whole log…'));
    try {
      const r = await api(`${base}/audit/verify`, { method: 'POST' });
      fill(result, report(r));
      announce(r.ok ? 'The log verifies.' : `The log does not verify: ${r.problem_count} problem(s).`);
    } catch (e) {
      fill(result, problem(e));
    } finally {
      verify.disabled = false;
    }
  });
  const kinds = [...new Set(got.records.map((r) => r.kind))].sort();
  const kind = h('select', { id: 'kind' }, h('option', { value: '' }, 'every kind'), kinds.map((k) => h('option', { value: k }, k)));
  const rows = h('tbody');
  const showRecords = () => fill(rows, got.records.filter((r) => !kind.value || r.kind === kind.value).map(record));
  kind.addEventListener('change', showRecords);
  showRecords();
  const cp = got.checkpoint;
  fill(main,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Audit of run ', h('a', { href: `/ui/runs/${encodeURIComponent(run)}`, class: 'mono' }, run)),
      h('div', { class: 'actions' },
        h('a', { class: 'button', id: 'bundle', href: `${base}/bundle`, download: `cairn-bundle-${run}.tar` }, 'Download the auditor\u2019s bundle'))),
    section('checkpoint', 'Latest signed checkpoint',
      cp ? h('div', {},
        h('dl', { class: 'facts' },
          h('div', {}, h('dt', {}, 'Record'), h('dd', {}, String(cp.seq))),
          h('div', {}, h('dt', {}, 'Covers'), h('dd', {}, `${cp.size} records`)),
          h('div', {}, h('dt', {}, 'Signed'), h('dd', {}, when(cp.time))),
          h('div', {}, h('dt', {}, 'Root'), h('dd', { class: 'mono small digest' }, cp.root))),
        h('details', {}, h('summary', {}, 'Signed note (C2SP)'), h('pre', { tabindex: '0' }, cp.note)))
        : h('p', { class: 'muted' }, 'No checkpoint is signed yet.'),
      h('div', { class: 'actions' }, verify), result,
      h('p', { class: 'muted small' }, 'Offline, an auditor checks the same with ', h('code', {}, 'cairn audit verify BUNDLE --key TRUSTED.pub'), '.')),
    section('records', `Records (${got.records.length})`,
      h('div', { class: 'field' }, h('label', { for: 'kind' }, 'Kind'), kind),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Records' }, h('table', { class: 'records' },
        h('caption', { class: 'sr-only' }, 'The run\u2019s records, in log order'),
        h('thead', {}, h('tr', {}, ['#', 'Time', 'Kind', 'Record'].map((c) => h('th', { scope: 'col' }, c)))),
        rows))));
}

function record(r) {
  const { v, seq, time, run, prev, hash, kind, ...rest } = r;
  const summary = summarize(kind, rest);
  return h('tr', {},
    h('td', { class: 'num' }, String(seq)),
    h('td', {}, when(time)),
    h('td', { class: 'mono' }, kind),
    h('td', {}, h('details', {}, h('summary', {}, summary), h('pre', { tabindex: '0' }, JSON.stringify(r, null, 2)))));
}

function summarize(kind, r) {
  switch (kind) {
    case 'decision': return `${r.decision} ${r.action} for ${r.task || 'the run'} (${r.policies.join(', ') || 'no policy'})`;
    case 'access': return `${r.decision} ${r.action} for ${r.principal?.id}`;
    case 'task-started': return `${r.task} attempt ${r.attempt}`;
    case 'task-finished': return `${r.task} attempt ${r.attempt}: ${r.outcome}`;
    case 'run-finished': return `run ${r.status}`;
    case 'approval': return `${r.approver} ${r.verdict}s ${r.task}${r.counted ? '' : ' (not counted)'}`;
    default: return Object.entries(r).slice(0, 3).map(([k, val]) => `${k}: ${typeof val === 'object' ? JSON.stringify(val).slice(0, 40) : val}`).join(', ') || kind;
  }
}

function report(r) {
  return h('div', { class: `verdict ${r.ok ? 'ok' : 'bad'}` },
    h('p', {}, r.ok ? badge('succeeded') : badge('failed'), ' ',
      h('strong', {}, r.ok ? 'The log verifies.' : `The log does not verify: ${r.problem_count} problem(s).`),
      ` ${r.records} records, ${r.checkpoints} signed checkpoints, ${r.consistent_pairs} consistent pairs, ${r.decisions} decisions decided again, ${r.digests_checked} digests checked (${r.took_ms} ms, key ${r.key}).`),
    r.problems.length ? h('ul', {}, r.problems.map((p) => h('li', {},
      `record ${p.record}: ${p.check}`, p.message ? `: ${p.message}` : ' (outside this run)'))) : null);
}

async function picker(main) {
  document.title = 'Audit · Cairn';
  const list = h('div', {});
  const form = h('form', { class: 'filters' },
    h('div', { class: 'field' }, h('label', { for: 'run-id' }, 'Run id'), h('input', { id: 'run-id', name: 'run', required: true, class: 'mono' })),
    h('button', { type: 'submit' }, 'Open'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = form.elements.run.value.trim();
    if (id) location.assign(`/ui/runs/${encodeURIComponent(id)}/audit`);
  });
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Audit')),
    h('p', {}, 'Each run\u2019s records, the latest signed checkpoint, a verification on the server and the auditor\u2019s bundle. Pick a run:'),
    form, list);
  try {
    const { runs } = await api('/v1/runs?limit=50');
    fill(list, runs.length === 0 ? h('p', { class: 'muted' }, 'No run you may list.')
      : h('ul', { class: 'plain' }, runs.map((r) => h('li', {},
        h('a', { href: `/ui/runs/${encodeURIComponent(r.id)}/audit`, class: 'mono' }, r.id), ` ${r.workflow} `, badge(r.status)))));
  } catch (e) {
    fill(list, problem(e));
  }
}
