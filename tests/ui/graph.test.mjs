// Unit tests of the web UI's graph module (host/ui/graph.js), without a
// browser: `node --test tests/ui/graph.test.mjs`. No dependencies.
//
// layout() is pure and tested directly. drawGraph() is run against a tiny
// fake DOM (below) that throws on anything the page's Content-Security-Policy
// or the module's rules forbid (a style attribute, innerHTML, inline handlers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';

import { layout, drawGraph } from '../../host/ui/graph.js';

// ------------------------------------------------------------------ helpers

/** Seeded PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATES = ['succeeded', 'failed', 'running', 'queued', 'pending', 'waiting', 'skipped', 'cancelled', 'refused'];

/** A workflow-like random DAG: each task needs 1-3 recent tasks, now and
 * then one far back. Nodes in topological order. About 2 edges a node. */
function randomDag(n, seed, { farChance = 0.1, window = 40 } = {}) {
  const r = rng(seed);
  const nodes = [];
  const edges = [];
  for (let i = 0; i < n; i++) {
    const id = `task-${i}${r() < 0.2 ? `[${['eu', 'us', 'ap'][Math.floor(r() * 3)]}]` : ''}`;
    nodes.push({ id, label: id, state: STATES[Math.floor(r() * STATES.length)], attempts: Math.floor(r() * 3), gate: r() < 0.05 });
    if (i === 0) continue;
    const k = Math.min(i, 1 + Math.floor(r() * 3));
    const seen = new Set();
    for (let j = 0; j < k; j++) {
      const from = r() < farChance ? Math.floor(r() * i) : Math.max(0, i - 1 - Math.floor(r() * window));
      if (seen.has(from)) continue;
      seen.add(from);
      const data = r() < 0.6;
      edges.push({
        from: nodes[from].id,
        to: id,
        kind: data ? 'data' : 'needs',
        label: data ? `out${j} → in${j}${r() < 0.3 ? ' [pii]' : ''}` : undefined,
        decision: data ? (r() < 0.05 ? 'deny' : 'allow') : null,
      });
    }
  }
  return { nodes, edges };
}

/** Longest path from a source, the slow obvious way. */
function longestPathLayers(graph) {
  const layer = new Map(graph.nodes.map((n) => [n.id, 0]));
  let changed = true;
  while (changed) {
    changed = false;
    for (const e of graph.edges) {
      if (layer.get(e.to) < layer.get(e.from) + 1) {
        layer.set(e.to, layer.get(e.from) + 1);
        changed = true;
      }
    }
  }
  return layer;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function assertNoOverlap(L) {
  const boxes = [...L.nodes.entries()].sort((p, q) => p[1].x - q[1].x);
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length && boxes[j][1].x < boxes[i][1].x + boxes[i][1].w; j++) {
      assert.ok(!overlaps(boxes[i][1], boxes[j][1]), `${boxes[i][0]} overlaps ${boxes[j][0]}`);
    }
  }
}

function assertLeftToRight(graph, L) {
  assert.equal(L.edges.length > 0 || graph.edges.length === 0, true);
  for (const e of L.edges) {
    const a = L.nodes.get(e.from);
    const b = L.nodes.get(e.to);
    assert.ok(a.x + a.w < b.x, `${e.id}: source must end left of the target`);
    assert.ok(e.points.length >= 2, `${e.id}: has points`);
    assert.equal(e.points[0][0], a.x + a.w, `${e.id}: starts on the source's right side`);
    assert.equal(e.points.at(-1)[0], b.x, `${e.id}: ends on the target's left side`);
    for (let k = 1; k < e.points.length; k++) {
      assert.ok(e.points[k][0] >= e.points[k - 1][0], `${e.id}: point ${k} goes back left`);
    }
    for (const [x, y] of e.points) {
      assert.ok(Number.isFinite(x) && Number.isFinite(y), `${e.id}: finite points`);
    }
    // Endpoints on the node's side, within its height.
    assert.ok(e.points[0][1] >= a.y && e.points[0][1] <= a.y + a.h, `${e.id}: leaves from the source's side`);
    assert.ok(e.points.at(-1)[1] >= b.y && e.points.at(-1)[1] <= b.y + b.h, `${e.id}: enters the target's side`);
  }
}

/** Crossings among edges between adjacent layers, from drawn y positions. */
function crossingsOf(L) {
  const segs = L.edges
    .filter((e) => L.nodes.get(e.to).layer === L.nodes.get(e.from).layer + 1)
    .map((e) => ({ l: L.nodes.get(e.from).layer, a: e.points[0][1], b: e.points.at(-1)[1] }));
  let c = 0;
  for (let i = 0; i < segs.length; i++) {
    for (let j = i + 1; j < segs.length; j++) {
      const s = segs[i];
      const t = segs[j];
      if (s.l === t.l && (s.a - t.a) * (s.b - t.b) < 0) c++;
    }
  }
  return c;
}

// ------------------------------------------------------------------- layout

test('layers follow the longest path from a source', () => {
  const g = {
    nodes: ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, label: id, state: 'succeeded', attempts: 1 })),
    edges: [
      { from: 'a', to: 'b', kind: 'needs' },
      { from: 'b', to: 'c', kind: 'needs' },
      { from: 'a', to: 'c', kind: 'data', label: 'x → y' },
      { from: 'c', to: 'd', kind: 'needs' },
      { from: 'a', to: 'd', kind: 'needs' },
    ],
  };
  const L = layout(g);
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((id) => L.nodes.get(id).layer),
    [0, 1, 2, 3, 0],
  );
  // And on a random DAG, against the obvious fixpoint.
  const big = randomDag(300, 7);
  const want = longestPathLayers(big);
  const got = layout(big);
  for (const [id, l] of want) assert.equal(got.nodes.get(id).layer, l, id);
  // Columns: every node of a layer lies left of every node of the next.
  for (const e of big.edges) {
    assert.ok(got.nodes.get(e.from).layer < got.nodes.get(e.to).layer);
  }
});

test('every edge goes left to right, through the gaps between nodes', () => {
  for (const seed of [1, 2, 3]) {
    const g = randomDag(200, seed);
    const L = layout(g);
    assertLeftToRight(g, L);
    // Long edges are routed around nodes: no interior point inside a node.
    const boxes = [...L.nodes.values()];
    for (const e of L.edges) {
      for (const [x, y] of e.points.slice(1, -1)) {
        for (const b of boxes) {
          assert.ok(!(x > b.x && x < b.x + b.w && y > b.y && y < b.y + b.h), `${e.id} passes through a node`);
        }
      }
    }
  }
});

test('no two nodes overlap, and labels sit in the gaps', () => {
  for (const seed of [11, 12]) {
    const g = randomDag(400, seed);
    const L = layout(g);
    assertNoOverlap(L);
    const boxes = [...L.nodes.values()];
    for (const e of L.edges) {
      if (!e.labelBox) continue;
      for (const b of boxes) assert.ok(!overlaps(e.labelBox, b), `label of ${e.id} covers a node`);
    }
    // Everything inside the drawing.
    for (const b of boxes) {
      assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= L.width && b.y + b.h <= L.height);
    }
  }
});

test('the barycenter sweep keeps a simple diamond untangled', () => {
  const n = (id) => ({ id, label: id, state: 'succeeded', attempts: 1 });
  const diamond = {
    nodes: ['a', 'b', 'c', 'd'].map(n),
    edges: [
      { from: 'a', to: 'b', kind: 'data', label: 'rows → raw' },
      { from: 'a', to: 'c', kind: 'data', label: 'rows → raw' },
      { from: 'b', to: 'd', kind: 'needs' },
      { from: 'c', to: 'd', kind: 'needs' },
    ],
  };
  const L = layout(diamond);
  assert.equal(crossingsOf(L), 0);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => L.nodes.get(id));
  assert.equal(b.layer, 1);
  assert.equal(c.layer, 1);
  assert.ok(b.y + b.h <= c.y || c.y + c.h <= b.y, 'b and c are stacked');
  // a and d sit between b and c.
  const mid = (p) => p.y + p.h / 2;
  const lo = Math.min(mid(b), mid(c));
  const hi = Math.max(mid(b), mid(c));
  assert.ok(mid(a) > lo && mid(a) < hi, 'a between b and c');
  assert.ok(mid(d) > lo && mid(d) < hi, 'd between b and c');

  // Two diamonds whose middle tasks are listed in a tangled order: the sweep
  // must order each middle layer by its predecessors.
  const tangled = {
    nodes: ['s1', 's2', 'm2b', 'm1a', 'm2a', 'm1b', 't1', 't2'].map(n),
    edges: [
      { from: 's1', to: 'm1a', kind: 'needs' },
      { from: 's1', to: 'm1b', kind: 'needs' },
      { from: 's2', to: 'm2a', kind: 'needs' },
      { from: 's2', to: 'm2b', kind: 'needs' },
      { from: 'm1a', to: 't1', kind: 'needs' },
      { from: 'm1b', to: 't1', kind: 'needs' },
      { from: 'm2a', to: 't2', kind: 'needs' },
      { from: 'm2b', to: 't2', kind: 'needs' },
    ],
  };
  const T = layout(tangled);
  assert.equal(crossingsOf(T), 0, 'no crossings left');
});

// Speed is printed, never asserted (a loaded CI machine is slow): the
// figures come from the browser test's timings and this log line.
test('a 1,000-node random DAG lays out (time printed)', () => {
  const g = randomDag(1000, 2024);
  layout(randomDag(50, 1)); // warm up the JIT a little
  const t0 = performance.now();
  const L = layout(g);
  const ms = performance.now() - t0;
  console.log(`layout: ${g.nodes.length} nodes, ${g.edges.length} edges in ${ms.toFixed(1)} ms (${L.width}×${L.height} px)`);
  assert.ok(g.edges.length > 1800, `enough edges (${g.edges.length})`);
  assert.equal(L.nodes.size, 1000);
  assert.equal(L.edges.length, g.edges.length);
  assertNoOverlap(L);
  assertLeftToRight(g, L);

  // Edges spanning the whole graph (uniformly random sources) stay fast too:
  // the dummy points are capped.
  const wide = randomDag(1000, 99, { farChance: 1 });
  const t1 = performance.now();
  const W = layout(wide);
  const ms2 = performance.now() - t1;
  console.log(`layout, long edges: ${wide.nodes.length} nodes, ${wide.edges.length} edges in ${ms2.toFixed(1)} ms`);
  assertNoOverlap(W);
  assertLeftToRight(wide, W);
});

test('long labels get a capped width; short ones the minimum', () => {
  const long = 'x'.repeat(300);
  const g = {
    nodes: [
      { id: 'a', label: 'a', state: 'succeeded', attempts: 1 },
      { id: long, label: long, state: 'failed', attempts: 3 },
      { id: 'mid', label: 'fetch-customers-eu', state: 'running', attempts: 1 },
    ],
    edges: [
      { from: 'a', to: long, kind: 'data', label: 'y'.repeat(400), decision: 'allow' },
      { from: 'a', to: 'mid', kind: 'needs' },
    ],
  };
  const L = layout(g);
  assert.equal(L.nodes.get('a').w, 120);
  assert.equal(L.nodes.get(long).w, 260);
  const m = L.nodes.get('mid').w;
  assert.ok(m > 120 && m < 260, `width fits the label (${m})`);
  const e = L.edges.find((x) => x.to === long);
  assert.ok(e.labelBox.w <= 220, 'label box capped');
});

test('an empty graph has a small non-zero size', () => {
  for (const g of [{ nodes: [], edges: [] }, {}, null]) {
    const L = layout(g);
    assert.ok(L.width > 0 && L.height > 0);
    assert.ok(L.width <= 400 && L.height <= 200);
    assert.equal(L.nodes.size, 0);
    assert.deepEqual(L.edges, []);
  }
});

test('bad input is tolerated: unknown ends, self-loops, duplicates, parallel edges, a cycle', () => {
  const g = {
    nodes: [
      { id: 'a', state: 'succeeded' },
      { id: 'b', state: 'failed' },
      { id: 'a', state: 'running' },
      { id: 'c', state: 'queued' },
    ],
    edges: [
      { from: 'a', to: 'b', kind: 'data', label: 'rows → raw', decision: 'allow' },
      { from: 'a', to: 'b', kind: 'data', label: 'pii → out [pii]', decision: 'deny' },
      { from: 'a', to: 'nowhere', kind: 'needs' },
      { from: 'b', to: 'b', kind: 'needs' },
      { from: 'b', to: 'c', kind: 'needs' },
      { from: 'c', to: 'b', kind: 'needs' },
    ],
  };
  const L = layout(g);
  assert.equal(L.nodes.size, 3);
  const ab = L.edges.filter((e) => e.id === 'a->b');
  assert.equal(ab.length, 1, 'parallel edges merged');
  assert.equal(ab[0].decision, 'deny');
  assert.equal(ab[0].label, 'rows → raw, pii → out [pii]');
  assert.equal(L.edges.length, 3);
  for (const e of L.edges) for (const p of e.points) assert.ok(p.every(Number.isFinite));
});

// ------------------------------------------------------------ fake DOM

class FakeClassList {
  constructor(el) {
    this.el = el;
  }
  _get() {
    return new Set((this.el.attrs.get('class') || '').split(/\s+/).filter(Boolean));
  }
  _set(s) {
    this.el.attrs.set('class', [...s].join(' '));
  }
  add(...c) {
    const s = this._get();
    c.forEach((x) => s.add(x));
    this._set(s);
  }
  remove(...c) {
    const s = this._get();
    c.forEach((x) => s.delete(x));
    this._set(s);
  }
  contains(c) {
    return this._get().has(c);
  }
}

class FakeEl {
  constructor(doc, ns, tag) {
    this.ownerDocument = doc;
    this.namespaceURI = ns;
    this.tagName = tag;
    this.attrs = new Map();
    this.children = [];
    this.parentNode = null;
    this.listeners = new Map();
    this.classList = new FakeClassList(this);
    this._text = null;
  }
  setAttribute(k, v) {
    if (k.toLowerCase() === 'style') throw new Error('style attribute set (blocked by CSP)');
    if (/^on/i.test(k)) throw new Error(`inline handler attribute ${k}`);
    this.attrs.set(k, String(v));
  }
  getAttribute(k) {
    return this.attrs.has(k) ? this.attrs.get(k) : null;
  }
  removeAttribute(k) {
    this.attrs.delete(k);
  }
  set innerHTML(_) {
    throw new Error('innerHTML used');
  }
  set outerHTML(_) {
    throw new Error('outerHTML used');
  }
  insertAdjacentHTML() {
    throw new Error('insertAdjacentHTML used');
  }
  get style() {
    throw new Error('element.style used');
  }
  appendChild(c) {
    if (c instanceof FakeFragment) {
      for (const k of c.children) this.appendChild(k);
      c.children = [];
      return c;
    }
    if (c.parentNode) c.parentNode.removeChild(c);
    c.parentNode = this;
    this.children.push(c);
    return c;
  }
  removeChild(c) {
    const i = this.children.indexOf(c);
    if (i >= 0) this.children.splice(i, 1);
    c.parentNode = null;
    return c;
  }
  replaceChildren(...cs) {
    for (const c of [...this.children]) this.removeChild(c);
    for (const c of cs) this.appendChild(c);
  }
  get firstChild() {
    return this.children[0] || null;
  }
  set textContent(v) {
    this.children = [];
    this._text = String(v);
  }
  get textContent() {
    return (this._text ?? '') + this.children.map((c) => c.textContent).join('');
  }
  addEventListener(t, f) {
    if (!this.listeners.has(t)) this.listeners.set(t, new Set());
    this.listeners.get(t).add(f);
  }
  removeEventListener(t, f) {
    this.listeners.get(t)?.delete(f);
  }
  /** Bubbles a minimal event from this element. */
  fire(type, props = {}) {
    const ev = { type, target: this, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; }, ...props };
    for (let n = this; n; n = n.parentNode) for (const f of n.listeners.get(type) || []) f(ev);
    return ev;
  }
  focus() {
    this.ownerDocument.activeElement = this;
  }
  scrollIntoView() {
    this.scrolledIntoView = (this.scrolledIntoView || 0) + 1;
  }
  *walk() {
    yield this;
    for (const c of this.children) yield* c.walk();
  }
  cls() {
    return this.getAttribute('class') || '';
  }
}

class FakeFragment extends FakeEl {}

class FakeDoc {
  createElementNS(ns, tag) {
    return new FakeEl(this, ns, tag);
  }
  createElement(tag) {
    return new FakeEl(this, 'http://www.w3.org/1999/xhtml', tag);
  }
  createDocumentFragment() {
    return new FakeFragment(this, null, '#fragment');
  }
}

function fixture() {
  return {
    nodes: [
      { id: 'extract', label: 'extract', state: 'succeeded', attempts: 1, gate: false },
      { id: 'transform', label: 'transform', state: 'failed', attempts: 2, gate: false },
      { id: 'approve', label: 'approve', state: 'waiting', attempts: 0, gate: true },
      { id: 'odd', label: 'odd', state: 'exploded<b>', attempts: 0, gate: false },
      { id: 'fetch[eu]', label: 'fetch-customers-and-their-orders-from-every-region-eu-west-1-and-more', state: 'queued', attempts: 0 },
    ],
    edges: [
      { from: 'extract', to: 'transform', kind: 'data', label: 'rows (pii)', decision: 'allow' },
      { from: 'transform', to: 'approve', kind: 'needs', decision: null },
      { from: 'extract', to: 'odd', kind: 'data', label: 'rows → raw [pii]', decision: 'deny' },
      { from: 'extract', to: 'fetch[eu]', kind: 'needs', decision: null },
    ],
  };
}

function draw(graph, opts) {
  const doc = new FakeDoc();
  const container = doc.createElement('div');
  container.appendChild(doc.createElement('p')); // stale content to clear
  const selections = [];
  const handle = drawGraph(container, graph, { onSelect: (s) => selections.push(s), ...opts });
  const svg = container.children[0];
  const all = [...svg.walk()];
  const byLabel = (re) => all.find((e) => re.test(e.getAttribute('aria-label') || ''));
  return { doc, container, handle, svg, all, byLabel, selections };
}

test('drawGraph: one svg, named, with nodes and edges as labelled buttons', () => {
  const { container, svg, all, byLabel } = draw(fixture());
  assert.equal(container.children.length, 1, 'container cleared, one child');
  assert.equal(svg.tagName, 'svg');
  assert.equal(svg.cls(), 'dag');
  assert.equal(svg.getAttribute('role'), 'group');
  assert.equal(svg.getAttribute('aria-label'), 'Task graph: 5 tasks, 4 edges');
  assert.ok(svg.children.some((c) => c.tagName === 'title'));
  assert.ok(all.some((e) => e.tagName === 'defs') && all.some((e) => e.tagName === 'marker'));
  const buttons = all.filter((e) => e.getAttribute('role') === 'button');
  assert.equal(buttons.length, 9);
  for (const b of buttons) {
    assert.equal(b.getAttribute('tabindex'), '0');
    assert.equal(b.getAttribute('aria-pressed'), 'false');
    assert.ok(b.getAttribute('aria-label'));
  }
  assert.ok(byLabel(/^task transform: failed, 2 attempts$/));
  assert.ok(byLabel(/^task approve: waiting, approval gate$/));
  assert.ok(byLabel(/^task approve/).children.some((c) => c.cls() === 'g-extra' && c.textContent === 'approval gate'));
  assert.ok(byLabel(/^data edge extract → transform: rows \(pii\)$/));
  assert.ok(byLabel(/^data edge extract → odd: rows → raw \[pii\], denied by policy$/));
  assert.ok(byLabel(/^needs edge transform → approve/));
  // Denied edge drawn distinctly, label has the no-entry symbol in its title.
  const deny = byLabel(/denied/);
  assert.match(deny.cls(), /g-deny/);
  const labelLayer = all.find((e) => e.cls() === 'g-labels');
  assert.equal(labelLayer.getAttribute('aria-hidden'), 'true');
  const denyText = labelLayer.children.find((c) => c.cls() === 'g-label-text g-deny');
  assert.equal(denyText.textContent, 'rows → raw [pii]⛔ denied by policy: rows → raw [pii]', 'label text, then its title');
  assert.ok(labelLayer.children.some((c) => /g-ico-deny/.test(c.cls())), 'no-entry icon drawn');
  // Gate marker.
  assert.ok(byLabel(/^task approve/).children.some((c) => /g-gate-mark/.test(c.cls())));
  // Nothing sets a style (the fake DOM throws if anything does).
  for (const e of all) assert.equal(e.getAttribute('style'), null);
});

test('drawGraph: unknown states and long labels', () => {
  const { byLabel } = draw(fixture());
  const odd = byLabel(/^task odd/);
  assert.match(odd.cls(), /\bstate-unknown\b/);
  assert.doesNotMatch(odd.cls(), /exploded/);
  assert.equal(odd.getAttribute('aria-label'), 'task odd: exploded<b>');
  const status = odd.children.find((c) => c.cls() === 'g-status');
  assert.equal(status.textContent.trim(), 'exploded<b>', 'the word is shown, as text');

  const longName = 'fetch-customers-and-their-orders-from-every-region-eu-west-1-and-more';
  const long = byLabel(/^task fetch-customers/);
  assert.equal(long.getAttribute('aria-label'), `task ${longName}: queued`);
  const name = long.children.find((c) => c.cls() === 'g-name');
  assert.ok(name.textContent.trim().endsWith('…'), name.textContent);
  assert.ok(name.textContent.length < longName.length);
  const title = long.children.find((c) => c.tagName === 'title');
  assert.ok(title.textContent.includes(longName), 'full name in the title');
  assert.ok(title.textContent.includes('fetch[eu]'), 'and the id');
});

test('drawGraph: click, Enter and Space select; select() marks and scrolls', () => {
  const { handle, byLabel, all, selections, doc } = draw(fixture());
  const t = byLabel(/^task transform/);
  t.children.find((c) => c.cls() === 'g-name').fire('click');
  assert.deepEqual(selections.at(-1), { kind: 'node', id: 'transform' });
  assert.equal(t.getAttribute('aria-pressed'), 'true');
  assert.match(t.cls(), /\bselected\b/);

  const e = byLabel(/^data edge extract → transform/);
  const ev = e.fire('keydown', { key: 'Enter' });
  assert.ok(ev.defaultPrevented);
  assert.deepEqual(selections.at(-1), { kind: 'edge', id: 'extract->transform' });
  assert.equal(t.getAttribute('aria-pressed'), 'false', 'only one selected');
  assert.equal(e.getAttribute('aria-pressed'), 'true');

  byLabel(/^task approve/).fire('keydown', { key: ' ' });
  assert.deepEqual(selections.at(-1), { kind: 'node', id: 'approve' });

  // A click on an edge label selects the edge.
  const lbl = all.find((x) => x.cls() === 'g-label-text g-deny');
  lbl.fire('click');
  assert.deepEqual(selections.at(-1), { kind: 'edge', id: 'extract->odd' });

  // select() from the app: marks, scrolls, does not call onSelect.
  const n = selections.length;
  assert.equal(handle.select('node', 'fetch[eu]'), true);
  const f = byLabel(/^task fetch-customers/);
  assert.equal(f.getAttribute('aria-pressed'), 'true');
  assert.ok(f.scrolledIntoView >= 1);
  assert.equal(selections.length, n);
  const ringIn = (g) => g.children.some((c) => c.cls() === 'g-sel');
  assert.ok(ringIn(f), 'the selection ring is in the selected node');
  assert.ok(!ringIn(t), 'and only there');
  assert.equal(handle.select('node', 'nope'), false);
  assert.ok(!ringIn(f), 'removed when nothing is selected');
  assert.equal(f.getAttribute('aria-pressed'), 'false');

  // Arrow keys walk the graph: node → its first edge → that edge's target.
  const x = byLabel(/^task extract/);
  x.fire('keydown', { key: 'ArrowRight' });
  assert.match(doc.activeElement.getAttribute('aria-label'), /^(data|needs) edge extract → /);
  doc.activeElement.fire('keydown', { key: 'ArrowRight' });
  assert.match(doc.activeElement.getAttribute('aria-label'), /^task /);
  doc.activeElement.fire('keydown', { key: 'ArrowLeft' });
  assert.match(doc.activeElement.getAttribute('aria-label'), /^(data|needs) edge extract → /);
});

test('drawGraph: the selected option, destroy, and an empty graph', () => {
  const { container, handle, byLabel } = draw(fixture(), { selected: { kind: 'edge', id: 'extract->odd' } });
  assert.equal(byLabel(/^data edge extract → odd/).getAttribute('aria-pressed'), 'true');
  handle.destroy();
  assert.equal(container.children.length, 0);

  const empty = draw({ nodes: [], edges: [] });
  assert.equal(empty.svg.getAttribute('aria-label'), 'Task graph: 0 tasks, 0 edges');
  assert.ok(Number(empty.svg.getAttribute('width')) > 0);
  assert.ok(empty.all.some((e) => e.textContent === 'No tasks'));
});

test('drawGraph: tab order is each task followed by its outgoing edges', () => {
  const { all } = draw(fixture());
  const order = all.filter((e) => e.getAttribute('role') === 'button').map((e) => e.getAttribute('aria-label').split(':')[0]);
  assert.deepEqual(order, [
    'task extract',
    ...order.slice(1, 4), // extract's three edges (checked below)
    'task transform',
    'needs edge transform → approve',
    'task approve',
    'task odd',
    'task fetch-customers-and-their-orders-from-every-region-eu-west-1-and-more',
  ]);
  assert.ok(order.slice(1, 4).every((s) => /edge extract → /.test(s)));
});
