// profile: each feeder's load through the day, from the households' readings.
//
// Reads `readings` (the ingest task's JSON, labelled `pii`: one household's
// hourly use) and `feeders` (`{feeder: capacity_kw}`), and writes `load`:
// per feeder, the total load of each hour, its peak and the hours over
// capacity. Nothing in `load` is about one household: a feeder with fewer
// than MIN_METERS meters is reported only as suppressed, since its total
// would come close to one home's use. That is why policy lets this task,
// and only it, drop the `pii` label (policies/languages.cedar).
//
// Built with componentize-js (build.sh) against the `cairn:task` world.

import { Permanent, info, readJson, task, writeJson } from '../../../guest-sdk/js/cairn.js';

const MIN_METERS = 3;

function profile(readings, feeders) {
  const byFeeder = new Map(Object.keys(feeders).map((f) => [f, { meters: new Set(), hours: new Map() }]));
  for (const { meter, feeder, time, kwh } of readings) {
    const f = byFeeder.get(feeder);
    if (f === undefined) {
      throw new Permanent(`a reading on unknown feeder ${JSON.stringify(feeder)}`);
    }
    f.meters.add(meter);
    // Hourly readings: the kWh of one hour is that hour's mean load in kW.
    f.hours.set(time, (f.hours.get(time) ?? 0) + kwh);
  }
  const load = {};
  for (const [feeder, { meters, hours }] of byFeeder) {
    const capacity = feeders[feeder];
    if (meters.size < MIN_METERS) {
      load[feeder] = { suppressed: true, reason: `fewer than ${MIN_METERS} meters`, capacity_kw: capacity };
      continue;
    }
    const series = [...hours.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([time, kw]) => ({ time, kw: Math.round(kw * 1000) / 1000 }));
    const peak = series.reduce((best, h) => (h.kw > best.kw ? h : best), series[0]);
    load[feeder] = {
      suppressed: false,
      meters: meters.size,
      capacity_kw: capacity,
      peak,
      peak_percent: Math.round((peak.kw / capacity) * 1000) / 10,
      over_capacity: series.filter((h) => h.kw > capacity).map((h) => h.time),
      hours: series,
    };
  }
  return load;
}

function main() {
  const readings = readJson('readings');
  const feeders = readJson('feeders');
  if (!Array.isArray(readings) || readings.length === 0) {
    throw new Permanent('`readings` is not a non-empty array: was it written by ingest?');
  }
  const load = profile(readings, feeders);
  writeJson('load', load);
  const shown = Object.values(load).filter((f) => !f.suppressed).length;
  info(`javascript: ${shown} feeders profiled, ${Object.keys(load).length - shown} suppressed`);
}

export const run = task(main);
