// The schedules page: per workflow the user may read, each schedule's
// next ten ticks in its own time zone, recent ticks that started no run
// and why, and pause and resume.

import { api, announce, badge, fill, h, problem, section, when } from './app.js';

export async function render(main) {
  document.title = 'Schedules · Cairn';
  const list = h('div', {});
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Schedules')), list);
  const { workflows } = await api('/v1/workflows');
  const withSchedules = workflows.filter((w) => w.schedules.length > 0);
  if (withSchedules.length === 0) {
    fill(list, h('p', { class: 'muted' }, 'No workflow you may read has a schedule.'));
    return;
  }
  fill(list, ...await Promise.all(withSchedules.map(async (w) => {
    const box = h('div', {});
    await show(w.name, box);
    return section(`wf-${w.name}`, w.name, box);
  })));
}

async function show(workflow, box) {
  let got;
  try {
    got = await api(`/v1/workflows/${encodeURIComponent(workflow)}/schedules`);
  } catch (e) {
    fill(box, problem(e));
    return;
  }
  fill(box, got.schedules.map((s) => card(workflow, s, () => show(workflow, box))));
}

function card(workflow, s, again) {
  const said = h('p', { role: 'status' });
  const toggle = async () => {
    const verb = s.paused ? 'resume' : 'pause';
    try {
      await api(`/v1/workflows/${encodeURIComponent(workflow)}/schedules/${encodeURIComponent(s.name)}/${verb}`, { method: 'POST' });
      announce(`Schedule ${s.name} ${verb === 'pause' ? 'paused' : 'resumed'}.`);
      await again();
    } catch (e) {
      fill(said, problem(e));
    }
  };
  return h('article', { class: 'card schedule' },
    h('h3', {}, s.name, ' ', s.paused ? badge('paused') : badge('active')),
    h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Cron'), h('dd', { class: 'mono' }, s.cron)),
      h('div', {}, h('dt', {}, 'Time zone'), h('dd', {}, s.timezone, h('span', { class: 'muted' }, ` (tzdb ${s.tzdb})`))),
      h('div', {}, h('dt', {}, 'Runs as'), h('dd', {}, s.as)),
      h('div', {}, h('dt', {}, 'Overlap'), h('dd', {}, s.overlap)),
      h('div', {}, h('dt', {}, 'Catch-up'), h('dd', {}, s.catch_up))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: s.paused ? '' : 'quiet', on: { click: toggle } }, s.paused ? 'Resume' : 'Pause'),
      said),
    h('h4', {}, 'Next ten ticks'),
    s.upcoming.length === 0 ? h('p', { class: 'muted' }, 'None: the schedule never ticks again.')
      : h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, `On the schedule's clock (${s.timezone})`), h('th', { scope: 'col' }, 'UTC'))),
        h('tbody', {}, s.upcoming.map((t) => h('tr', {}, h('td', { class: 'mono' }, t.local), h('td', { class: 'mono' }, t.nominal))))),
    h('h4', {}, 'Recent ticks that started no run'),
    s.skipped.length === 0 ? h('p', { class: 'muted' }, 'None recorded.')
      : h('table', {},
        h('thead', {}, h('tr', {}, ['Nominal time', 'Handled', 'Why'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, s.skipped.map((t) => h('tr', {},
          h('td', { class: 'mono' }, t.nominal), h('td', {}, when(t.actual)), h('td', {}, t.why ?? t.decision))))));
}
