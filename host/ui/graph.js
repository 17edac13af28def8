// Cairn web UI: lays out and draws a run's task graph (DAG) as SVG.
//
// Self-contained ES module, no dependencies, no build step. Nothing here runs
// at import time except constant definitions, so the module can be imported
// by Node's test runner without a DOM.
//
// Content-Security-Policy friendly: no inline styles, no innerHTML, no eval,
// no inline handlers. Geometry is set through SVG attributes; appearance comes
// from classes defined in graph.css. All user-provided text (task names, edge
// labels, state strings) is set with textContent or setAttribute only.
//
// Layout (pure, O(V + E + D) plus sorting, where D is the number of dummy
// points inserted on edges that span several layers and is capped):
//   1. layer = longest path from a source (one pass over a topological order);
//   2. edges spanning more than one layer get a dummy point per inner layer,
//      so they are routed between the nodes rather than through them;
//   3. order within a layer: input order, then barycenter sweeps (down, up,
//      down, up), keeping whichever ordering has the fewest crossings
//      (crossings counted per layer pair with a Fenwick tree, O(E log V));
//   4. vertical positions: alternating sweeps that pull every node towards
//      the mean position of its neighbours, subject to keeping the order and
//      spacing (weighted isotonic regression, pool-adjacent-violators, O(n)).

const SVG_NS = "http://www.w3.org/2000/svg";

// Geometry (px).
const NODE_H = 48;
const MIN_W = 120;
const MAX_W = 260;
const NAME_CHAR_W = 7.5; // 13px font
const SMALL_CHAR_W = 6.6; // 12px font
const LABEL_CHAR_W = 6.3; // 11px font
const PAD_L = 36; // icon column
const PAD_R = 14;
const GATE_W = 18; // room for the gate marker in the top-right corner
const MARGIN = 24;
const ROW_GAP = 22; // vertical space between two nodes in a layer
const DUMMY_SEP = 10; // vertical space between two routed edges
const DUMMY_NODE_SEP = 16; // between a routed edge and a node
const MIN_COL_GAP = 72;
const LABEL_H = 18;
const LABEL_PAD = 8; // inside the label box, each side
const LABEL_MARGIN = 20; // between a label box and the columns, each side
const MAX_LABEL_W = 220;
const DENY_ICON_W = 14;
const ARROW_INSET = 5; // the path stops short of the node; the arrowhead covers it
const EMPTY_W = 240;
const EMPTY_H = 72;

const KNOWN_STATES = new Set([
  "succeeded",
  "failed",
  "running",
  "queued",
  "pending",
  "waiting",
  "skipped",
  "cancelled",
  "refused",
]);

// ---------------------------------------------------------------- text utils

function isWide(cp) {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f000 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

/** Estimated rendered width of `s` at a font whose average advance is `cw`. */
function textWidth(s, cw) {
  let w = 0;
  for (const ch of s) w += isWide(ch.codePointAt(0)) ? cw * 1.8 : cw;
  return w;
}

/** `s` cut to fit `maxW` (estimated), ending with "…" when cut. Never splits a
 * code point. */
function truncate(s, maxW, cw) {
  if (textWidth(s, cw) <= maxW) return s;
  const budget = maxW - cw; // room for the ellipsis
  let w = 0;
  let out = "";
  for (const ch of s) {
    const cwi = isWide(ch.codePointAt(0)) ? cw * 1.8 : cw;
    if (w + cwi > budget) break;
    w += cwi;
    out += ch;
  }
  return out.replace(/\s+$/, "") + "…";
}

function str(v, fallback) {
  if (v === undefined || v === null) return fallback;
  return String(v);
}

// ------------------------------------------------------- node / edge content

function nodeName(n) {
  const label = n.label;
  return label === undefined || label === null || label === "" ? str(n.id, "") : String(label);
}

function stateOf(n) {
  const s = n.state === undefined || n.state === null || n.state === "" ? "unknown" : String(n.state);
  return { word: s, cls: KNOWN_STATES.has(s) ? s : "unknown" };
}

function attemptsOf(n) {
  const a = Number(n.attempts);
  return Number.isFinite(a) && a > 0 ? Math.floor(a) : 0;
}

/** The second line of a node: the state word, and the extras shown at its
 * right ("approval gate", "2 attempts"); `short` says just "gate". */
function statusParts(n, short) {
  const extras = [];
  if (n.gate) extras.push(short ? "gate" : "approval gate");
  const a = attemptsOf(n);
  if (a > 1) extras.push(`${a} attempts`);
  return { word: stateOf(n).word, extras: extras.join(", ") };
}

const STATUS_SEP = 12; // between the state word and the extras

function statusWidth(st) {
  return PAD_L + textWidth(st.word, SMALL_CHAR_W) + (st.extras ? STATUS_SEP + textWidth(st.extras, SMALL_CHAR_W) : 0) + PAD_R;
}

/** The status line to draw in a node `w` wide: the long form when it fits. */
function statusFor(n, w) {
  const full = statusParts(n, false);
  return n.gate && statusWidth(full) > w ? statusParts(n, true) : full;
}

function nodeWidth(n) {
  const extra = n.gate ? GATE_W : 0;
  const nameW = PAD_L + textWidth(nodeName(n), NAME_CHAR_W) + PAD_R + extra;
  const lineW = statusWidth(statusFor(n, MAX_W));
  return Math.ceil(Math.min(MAX_W, Math.max(MIN_W, nameW, lineW)));
}

function edgeLabelText(e) {
  // Merged parallel edges: the data labels, in order, joined.
  return e.parts
    .filter((p) => p.kind === "data" && p.label !== "")
    .map((p) => p.label)
    .join(", ");
}

function labelBoxWidth(text, deny) {
  const w = textWidth(text, LABEL_CHAR_W) + 2 * LABEL_PAD + (deny ? DENY_ICON_W : 0);
  return Math.ceil(Math.min(MAX_LABEL_W, w));
}

// ------------------------------------------------------------------- layout

/** Merges parallel edges (same from and to), drops edges whose ends are not
 * nodes, and self-loops. */
function normaliseEdges(graph, index) {
  const byKey = new Map();
  const out = [];
  for (const e of graph.edges || []) {
    if (!e) continue;
    const from = str(e.from, "");
    const to = str(e.to, "");
    if (from === to || !index.has(from) || !index.has(to)) continue;
    const key = from + "\u0000" + to;
    const part = {
      kind: e.kind === "needs" ? "needs" : "data",
      label: e.kind === "needs" ? "" : str(e.label, ""),
      decision: e.decision === "deny" || e.decision === "allow" ? e.decision : null,
    };
    let m = byKey.get(key);
    if (!m) {
      m = { id: `${from}->${to}`, from, to, kind: part.kind, decision: null, label: "", parts: [] };
      byKey.set(key, m);
      out.push(m);
    }
    m.parts.push(part);
  }
  for (const m of out) {
    if (m.parts.some((p) => p.kind === "data")) m.kind = "data";
    if (m.parts.some((p) => p.decision === "deny")) m.decision = "deny";
    else if (m.parts.some((p) => p.decision === "allow")) m.decision = "allow";
    m.label = edgeLabelText(m);
  }
  return out;
}

/** Weighted isotonic regression with minimum separations (pool adjacent
 * violators): positions y[i] as close as possible to desired d[i], with
 * y[i+1] >= y[i] + sep[i], for i < n. O(n). Writes into `y`; `scratch` holds
 * four arrays of at least n entries. */
function placeRow(d, w, sep, y, n, scratch) {
  if (n === 0) return;
  const { off, bw, bs, bstart } = scratch;
  off[0] = 0;
  for (let i = 1; i < n; i++) off[i] = off[i - 1] + sep[i - 1];
  let top = -1;
  for (let i = 0; i < n; i++) {
    top++;
    bw[top] = w[i];
    bs[top] = w[i] * (d[i] - off[i]);
    bstart[top] = i;
    while (top > 0 && bs[top - 1] / bw[top - 1] > bs[top] / bw[top]) {
      bw[top - 1] += bw[top];
      bs[top - 1] += bs[top];
      top--;
    }
  }
  for (let b = 0; b <= top; b++) {
    const v = bs[b] / bw[b];
    const end = b < top ? bstart[b + 1] : n;
    for (let i = bstart[b]; i < end; i++) y[i] = v + off[i];
  }
}

/** Cubic segment with horizontal tangents at both ends: x and y at t. */
function segPoint(p0, p1, t) {
  const mx = (p0[0] + p1[0]) / 2;
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const e = t * t * t;
  return [a * p0[0] + b * mx + c * mx + e * p1[0], a * p0[1] + b * p0[1] + c * p1[1] + e * p1[1]];
}

/** y on that segment where x == X (x is monotone in t), by bisection. */
function segYAt(p0, p1, X) {
  if (p1[0] <= p0[0]) return (p0[1] + p1[1]) / 2;
  let lo = 0;
  let hi = 1;
  for (let k = 0; k < 24; k++) {
    const mid = (lo + hi) / 2;
    if (segPoint(p0, p1, mid)[0] < X) lo = mid;
    else hi = mid;
  }
  return segPoint(p0, p1, (lo + hi) / 2)[1];
}

/**
 * Layered left-to-right layout. Pure: no DOM.
 * @returns {{width:number,height:number,nodes:Map<string,{x:number,y:number,w:number,h:number,layer:number}>,
 *            edges:Array<{id:string,from:string,to:string,kind:string,label:string,decision:(string|null),
 *                         parts:Array,points:number[][],labelBox:(null|{x:number,y:number,w:number,h:number})}>,
 *            layers:string[][]}}
 */
export function layout(graph) {
  const srcNodes = (graph && graph.nodes) || [];
  // Unique nodes, input order.
  const nodes = [];
  const index = new Map();
  for (const n of srcNodes) {
    if (!n) continue;
    const id = str(n.id, "");
    if (index.has(id)) continue;
    index.set(id, nodes.length);
    nodes.push(n);
  }
  const n = nodes.length;
  if (n === 0) {
    return { width: EMPTY_W, height: EMPTY_H, nodes: new Map(), edges: [], layers: [] };
  }
  const edges = normaliseEdges(graph || {}, index);

  // --- topological order (input order when it already is one).
  const outE = Array.from({ length: n }, () => []);
  const inDeg = new Int32Array(n);
  let inputIsTopo = true;
  for (let k = 0; k < edges.length; k++) {
    const e = edges[k];
    const a = index.get(e.from);
    const b = index.get(e.to);
    e._a = a;
    e._b = b;
    outE[a].push(k);
    inDeg[b]++;
    if (a >= b) inputIsTopo = false;
  }
  let topo;
  if (inputIsTopo) {
    topo = new Int32Array(n);
    for (let i = 0; i < n; i++) topo[i] = i;
  } else {
    // Kahn, FIFO; nodes on a cycle are appended in input order.
    topo = new Int32Array(n);
    const deg = inDeg.slice();
    let head = 0;
    let tail = 0;
    for (let i = 0; i < n; i++) if (deg[i] === 0) topo[tail++] = i;
    const seen = new Uint8Array(n);
    while (head < tail) {
      const v = topo[head++];
      seen[v] = 1;
      for (const k of outE[v]) {
        const b = edges[k]._b;
        if (--deg[b] === 0) topo[tail++] = b;
      }
    }
    if (tail < n) for (let i = 0; i < n; i++) if (!seen[i] && deg[i] > 0) topo[tail++] = i;
  }
  const rank = new Int32Array(n);
  for (let i = 0; i < n; i++) rank[topo[i]] = i;

  // --- layers: longest path from a source. Edges against the order (only
  // possible on a cycle) are "back" edges: ignored for layering.
  const layerOf = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = topo[i];
    for (const k of outE[v]) {
      const e = edges[k];
      if (rank[e._b] <= rank[v]) continue;
      if (layerOf[e._b] < layerOf[v] + 1) layerOf[e._b] = layerOf[v] + 1;
    }
  }
  let nLayers = 0;
  for (let i = 0; i < n; i++) if (layerOf[i] + 1 > nLayers) nLayers = layerOf[i] + 1;

  // --- items: real nodes 0..n-1, then dummies. Dummies are given to the
  // shortest long edges first, up to a cap, so a pathological graph stays
  // linear in size; edges over the cap are drawn as one curve.
  const forward = [];
  const spanCount = new Int32Array(nLayers + 1);
  for (const e of edges) {
    const span = layerOf[e._b] - layerOf[e._a];
    e._back = !(rank[e._b] > rank[e._a] && span > 0);
    if (!e._back) {
      forward.push(e);
      spanCount[span]++;
    }
  }
  const cap = Math.max(2000, 4 * (n + edges.length));
  let dummyBudget = cap;
  let maxDummySpan = 1;
  for (let s = 2; s <= nLayers; s++) {
    const need = spanCount[s] * (s - 1);
    if (need > dummyBudget) break;
    dummyBudget -= need;
    maxDummySpan = s;
  }

  // Count the dummies first, so every per-item array is a typed array.
  let D = 0;
  let S = 0; // segments between items
  for (const e of forward) {
    const span = layerOf[e._b] - layerOf[e._a];
    const dummies = span > 1 && span <= maxDummySpan ? span - 1 : 0;
    D += dummies;
    S += dummies + 1;
  }
  const N = n + D;
  const itemLayer = new Int32Array(N);
  const itemKey = new Float64Array(N); // initial order key
  const segFrom = new Int32Array(S);
  const segTo = new Int32Array(S);
  for (let i = 0; i < n; i++) {
    itemLayer[i] = layerOf[i];
    itemKey[i] = rank[i];
  }
  let nextItem = n;
  let nextSeg = 0;
  for (const e of forward) {
    const la = layerOf[e._a];
    const lb = layerOf[e._b];
    const chain = [e._a];
    if (lb - la > 1 && lb - la <= maxDummySpan) {
      for (let l = la + 1; l < lb; l++) {
        const d = nextItem++;
        itemLayer[d] = l;
        itemKey[d] = rank[e._a] + 0.5;
        chain.push(d);
      }
    }
    chain.push(e._b);
    for (let k = 0; k + 1 < chain.length; k++) {
      segFrom[nextSeg] = chain[k];
      segTo[nextSeg] = chain[k + 1];
      nextSeg++;
    }
    e._chain = chain;
  }
  // Adjacency in compressed rows: the neighbours of v are
  // list[start[v]] .. list[start[v + 1] - 1].
  const csr = (key, val) => {
    const start = new Int32Array(N + 1);
    for (let k = 0; k < S; k++) start[key[k] + 1]++;
    for (let v = 0; v < N; v++) start[v + 1] += start[v];
    const fillAt = start.slice(0, N);
    const list = new Int32Array(S);
    for (let k = 0; k < S; k++) list[fillAt[key[k]]++] = val[k];
    return { start, list };
  };
  const P = csr(segTo, segFrom); // predecessors
  const Q = csr(segFrom, segTo); // successors

  // --- initial order: input order (dummies next to their edge's source).
  // All items, grouped by layer: layer l is order[layerStart[l] .. layerStart[l+1]-1].
  const layerStart = new Int32Array(nLayers + 1);
  for (let v = 0; v < N; v++) layerStart[itemLayer[v] + 1]++;
  for (let l = 0; l < nLayers; l++) layerStart[l + 1] += layerStart[l];
  let order = new Int32Array(N);
  {
    const fillAt = layerStart.slice(0, nLayers);
    for (let v = 0; v < N; v++) order[fillAt[itemLayer[v]]++] = v;
  }
  const layerSize = new Int32Array(nLayers);
  for (let l = 0; l < nLayers; l++) {
    layerSize[l] = layerStart[l + 1] - layerStart[l];
    order.subarray(layerStart[l], layerStart[l + 1]).sort((a, b) => itemKey[a] - itemKey[b] || a - b);
  }
  let maxLayerSize = 0;
  for (let l = 0; l < nLayers; l++) if (layerSize[l] > maxLayerSize) maxLayerSize = layerSize[l];
  const pos = new Int32Array(N);
  const setPos = () => {
    for (let l = 0; l < nLayers; l++) {
      const s0 = layerStart[l];
      for (let i = s0; i < layerStart[l + 1]; i++) pos[order[i]] = i - s0;
    }
  };
  setPos();

  // Crossings between adjacent layers (long undummied edges ignored), with a
  // Fenwick tree over the lower layer's positions.
  const tree = new Int32Array(maxLayerSize + 1);
  let ends = new Int32Array(16);
  const crossings = () => {
    let total = 0;
    for (let l = 0; l + 1 < nLayers; l++) {
      const size = layerSize[l + 1];
      tree.fill(0, 0, size + 1);
      let inserted = 0;
      for (let i = layerStart[l]; i < layerStart[l + 1]; i++) {
        const u = order[i];
        let m = 0;
        const a = Q.start[u];
        const b = Q.start[u + 1];
        if (b - a > ends.length) ends = new Int32Array(2 * (b - a));
        for (let k = a; k < b; k++) {
          const v = Q.list[k];
          if (itemLayer[v] !== l + 1) continue;
          // insertion sort: a node has few successors
          let j = m++;
          const p = pos[v];
          while (j > 0 && ends[j - 1] > p) {
            ends[j] = ends[j - 1];
            j--;
          }
          ends[j] = p;
        }
        for (let k = 0; k < m; k++) {
          const p = ends[k];
          let le = 0; // inserted ends at positions <= p
          for (let t = p + 1; t > 0; t -= t & -t) le += tree[t];
          total += inserted - le;
          for (let t = p + 1; t <= size; t += t & -t) tree[t]++;
          inserted++;
        }
      }
    }
    return total;
  };

  const bary = new Float64Array(N);
  const sweep = (down) => {
    const A = down ? P : Q;
    const first = down ? 1 : nLayers - 2;
    const stop = down ? nLayers : -1;
    const step = down ? 1 : -1;
    for (let l = first; l !== stop; l += step) {
      const s0 = layerStart[l];
      const s1 = layerStart[l + 1];
      const len = s1 - s0;
      for (let i = s0; i < s1; i++) {
        const v = order[i];
        const a = A.start[v];
        const b = A.start[v + 1];
        let sum = 0;
        for (let k = a; k < b; k++) {
          const u = A.list[k];
          sum += (pos[u] + 0.5) / layerSize[itemLayer[u]];
        }
        bary[v] = b > a ? sum / (b - a) : (pos[v] + 0.5) / len;
      }
      order.subarray(s0, s1).sort((x, y) => bary[x] - bary[y] || pos[x] - pos[y]);
      for (let i = s0; i < s1; i++) pos[order[i]] = i - s0;
    }
  };

  if (nLayers > 1) {
    let best = order.slice();
    let bestC = crossings();
    for (const down of [true, false, true, false]) {
      if (bestC === 0) break;
      sweep(down);
      const c = crossings();
      if (c < bestC) {
        bestC = c;
        best = order.slice();
      }
    }
    order = best;
    setPos();
  }

  // --- vertical positions (centres).
  const cy = new Float64Array(N);
  const sepBetween = (a, b) => {
    const ra = a < n;
    const rb = b < n;
    if (ra && rb) return NODE_H + ROW_GAP;
    if (ra || rb) return NODE_H / 2 + DUMMY_NODE_SEP;
    return DUMMY_SEP;
  };
  let maxLen = 0;
  const layerLen = new Float64Array(nLayers);
  for (let l = 0; l < nLayers; l++) {
    let h = 0;
    for (let i = layerStart[l] + 1; i < layerStart[l + 1]; i++) h += sepBetween(order[i - 1], order[i]);
    layerLen[l] = h;
    if (h > maxLen) maxLen = h;
  }
  for (let l = 0; l < nLayers; l++) {
    let y = (maxLen - layerLen[l]) / 2;
    for (let i = layerStart[l]; i < layerStart[l + 1]; i++) {
      if (i > layerStart[l]) y += sepBetween(order[i - 1], order[i]);
      cy[order[i]] = y;
    }
  }
  const bufD = new Float64Array(maxLayerSize);
  const bufW = new Float64Array(maxLayerSize);
  const bufS = new Float64Array(maxLayerSize);
  const bufY = new Float64Array(maxLayerSize);
  const scratch = {
    off: new Float64Array(maxLayerSize),
    bw: new Float64Array(maxLayerSize),
    bs: new Float64Array(maxLayerSize),
    bstart: new Int32Array(maxLayerSize),
  };
  const place = (down) => {
    const A = down ? P : Q;
    const first = down ? 1 : nLayers - 2;
    const stop = down ? nLayers : -1;
    const step = down ? 1 : -1;
    for (let l = first; l !== stop; l += step) {
      const s0 = layerStart[l];
      const len = layerSize[l];
      for (let i = 0; i < len; i++) {
        const v = order[s0 + i];
        const a = A.start[v];
        const b = A.start[v + 1];
        if (b > a) {
          let sum = 0;
          for (let k = a; k < b; k++) sum += cy[A.list[k]];
          bufD[i] = sum / (b - a);
          bufW[i] = v < n ? 1 : 2; // keep long edges straight
        } else {
          bufD[i] = cy[v];
          bufW[i] = 0.05;
        }
        if (i) bufS[i - 1] = sepBetween(order[s0 + i - 1], v);
      }
      placeRow(bufD, bufW, bufS, bufY, len, scratch);
      for (let i = 0; i < len; i++) cy[order[s0 + i]] = bufY[i];
    }
  };
  if (nLayers > 1) for (const down of [true, false, true, false, true]) place(down);
  const itemH = (v) => (v < n ? NODE_H : 0);

  // --- columns.
  const colW = new Float64Array(nLayers);
  const widths = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = (widths[i] = nodeWidth(nodes[i]));
    if (w > colW[layerOf[i]]) colW[layerOf[i]] = w;
  }
  const ids = nodes.map((nd) => str(nd.id, ""));
  const gapW = new Float64Array(Math.max(0, nLayers - 1)).fill(MIN_COL_GAP);
  for (const e of edges) {
    if (e._back || !e.label) continue;
    const l = layerOf[e._a];
    const need = labelBoxWidth(e.label, e.decision === "deny") + 2 * LABEL_MARGIN;
    if (l < gapW.length && need > gapW[l]) gapW[l] = need;
  }
  const colX = new Float64Array(nLayers);
  colX[0] = MARGIN;
  for (let l = 1; l < nLayers; l++) colX[l] = colX[l - 1] + colW[l - 1] + gapW[l - 1];

  // Normalise vertically.
  let minTop = Infinity;
  for (let v = 0; v < N; v++) minTop = Math.min(minTop, cy[v] - itemH(v) / 2);
  const shift = MARGIN - minTop;
  for (let v = 0; v < N; v++) cy[v] += shift;

  const out = new Map();
  let maxX = 0;
  let maxY = 0;
  for (let i = 0; i < n; i++) {
    const l = layerOf[i];
    const w = widths[i];
    const x = Math.round(colX[l] + (colW[l] - w) / 2);
    const y = Math.round(cy[i] - NODE_H / 2);
    out.set(ids[i], { x, y, w, h: NODE_H, layer: l });
    maxX = Math.max(maxX, x + w);
    maxY = Math.max(maxY, y + NODE_H);
  }
  const boxOf = (i) => out.get(ids[i]);

  // --- ports: spread the edges along a node's side, ordered by the other end.
  const inList = Array.from({ length: n }, () => []);
  const outList = Array.from({ length: n }, () => []);
  for (const e of edges) {
    const ch = e._chain;
    if (ch) {
      outList[e._a].push({ e, y: cy[ch[1]] });
      inList[e._b].push({ e, y: cy[ch[ch.length - 2]] });
    } else {
      outList[e._a].push({ e, y: cy[e._b] });
      inList[e._b].push({ e, y: cy[e._a] });
    }
  }
  const spread = (list, i, prop) => {
    const m = list.length;
    if (!m) return;
    list.sort((p, q) => p.y - q.y || rank[p.e._a] - rank[q.e._a] || rank[p.e._b] - rank[q.e._b]);
    const step = m > 1 ? Math.min(9, (NODE_H - 18) / (m - 1)) : 0;
    const c = boxOf(i).y + NODE_H / 2;
    for (let k = 0; k < m; k++) list[k].e[prop] = c + (k - (m - 1) / 2) * step;
  };
  for (let i = 0; i < n; i++) {
    spread(inList[i], i, "_inY");
    spread(outList[i], i, "_outY");
  }

  // --- edge points and label boxes.
  const r1 = (v) => Math.round(v * 10) / 10;
  const resultEdges = [];
  const labelsByGap = new Map();
  for (const e of edges) {
    const A = boxOf(e._a);
    const B = boxOf(e._b);
    const points = [];
    if (e._back) {
      // Only on a cycle: from the right of the source to the left of the target.
      points.push([A.x + A.w, r1(e._outY)], [B.x, r1(e._inY)]);
    } else {
      points.push([A.x + A.w, r1(e._outY)]);
      const ch = e._chain;
      for (let k = 1; k + 1 < ch.length; k++) {
        const d = ch[k];
        const l = itemLayer[d];
        points.push([r1(colX[l]), r1(cy[d])], [r1(colX[l] + colW[l]), r1(cy[d])]);
      }
      points.push([B.x, r1(e._inY)]);
    }
    let labelBox = null;
    if (e.label && !e._back) {
      const l = layerOf[e._a];
      const w = labelBoxWidth(e.label, e.decision === "deny");
      const gapLeft = colX[l] + colW[l];
      const X = gapLeft + gapW[l] / 2;
      const Y = segYAt(points[0], points[1], X);
      labelBox = { x: Math.round(X - w / 2), y: Math.round(Y - LABEL_H / 2), w, h: LABEL_H };
      let g = labelsByGap.get(l);
      if (!g) labelsByGap.set(l, (g = []));
      g.push(labelBox);
    }
    resultEdges.push({
      id: e.id,
      from: e.from,
      to: e.to,
      kind: e.kind,
      label: e.label,
      decision: e.decision,
      parts: e.parts,
      points,
      labelBox,
    });
  }
  // Labels in one gap share a column; push overlapping ones down.
  for (const g of labelsByGap.values()) {
    g.sort((a, b) => a.y - b.y);
    for (let k = 1; k < g.length; k++) {
      const min = g[k - 1].y + LABEL_H + 2;
      if (g[k].y < min) g[k].y = min;
    }
    maxY = Math.max(maxY, g[g.length - 1].y + LABEL_H);
  }
  for (const e of resultEdges) for (const p of e.points) maxY = Math.max(maxY, p[1]);

  const layerIds = [];
  for (let l = 0; l < nLayers; l++) {
    const list = [];
    for (let i = layerStart[l]; i < layerStart[l + 1]; i++) if (order[i] < n) list.push(ids[order[i]]);
    layerIds.push(list);
  }
  return {
    width: Math.ceil(maxX + MARGIN),
    height: Math.ceil(maxY + MARGIN),
    nodes: out,
    edges: resultEdges,
    layers: layerIds,
  };
}

// ------------------------------------------------------------------ drawing

let instances = 0;
// container -> its scroll position when its graph was destroyed
const lastScroll = new WeakMap();
const scrollOf = (c) => (typeof c.scrollTop === "number" ? { left: c.scrollLeft, top: c.scrollTop } : undefined);

function el(doc, name, attrs, parent) {
  const e = doc.createElementNS(SVG_NS, name);
  if (attrs) for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  if (parent) parent.appendChild(e);
  return e;
}

function pathD(points) {
  const p = points.map((q) => [q[0], q[1]]);
  const last = p[p.length - 1];
  last[0] -= ARROW_INSET;
  let d = `M${p[0][0]} ${p[0][1]}`;
  for (let k = 1; k < p.length; k++) {
    const a = p[k - 1];
    const b = p[k];
    if (a[1] === b[1]) {
      d += `L${b[0]} ${b[1]}`;
      continue;
    }
    const mx = Math.round(((a[0] + b[0]) / 2) * 10) / 10;
    d += `C${mx} ${a[1]} ${mx} ${b[1]} ${b[0]} ${b[1]}`;
  }
  return d;
}

// State icons, drawn as one path each (fonts do not reliably have ⏸ or ⛔,
// and emoji fonts ignore colour). Centred on 0,0, about 13 px across.
// "line" icons are stroked, "fill" icons filled (even-odd, so a shape can
// have a hole); zero-length segments with round caps draw dots.
const ICONS = {
  succeeded: ["line", "M-5 0.5L-1.5 4L5 -4"],
  failed: ["line", "M-4.5 -4.5L4.5 4.5M4.5 -4.5L-4.5 4.5"],
  running: ["line", "M5.5 0A5.5 5.5 0 1 1 0 -5.5M-2.2 -8.3L0.6 -5.5L-2.2 -2.7"],
  queued: ["dots", "M-4.6 0h0M0 0h0M4.6 0h0"],
  pending: ["line", "M-5 0a5 5 0 1 0 10 0a5 5 0 1 0 -10 0"],
  waiting: ["bars", "M-2.6 -4.6v9.2M2.6 -4.6v9.2"],
  skipped: ["line", "M-5.5 0a5.5 5.5 0 1 0 11 0a5.5 5.5 0 1 0 -11 0M-3.9 3.9L3.9 -3.9"],
  cancelled: ["fill", "M-4.5 -4.5h9v9h-9z"],
  refused: ["fill", "M-6.5 0a6.5 6.5 0 1 0 13 0a6.5 6.5 0 1 0 -13 0zM-4 -1.4v2.8h8v-2.8z"],
  unknown: ["line", "M-2.6 -2.6A2.7 2.7 0 1 1 1 0C0 0.5 0 1.2 0 2M0 5h0"],
};

/** Path data `d` scaled by `k` about 0,0, then moved by dx, dy. Upper-case
 * (absolute) commands have their coordinates mapped; lower-case (relative)
 * ones are only scaled. Handles the commands the icons use: M L C A H V Z. */
function placePath(d, dx, dy, k) {
  const r = (v) => Math.round(v * 100) / 100;
  return d.replace(/([MLCAHVZmlcahvz])([^MLCAHVZmlcahvz]*)/g, (_, c, args) => {
    const v = args.trim() === "" ? [] : args.trim().split(/[\s,]+|(?=-)/).filter(Boolean).map(Number);
    const abs = c === c.toUpperCase();
    const out = v.map((x, i) => {
      if (c === "A" || c === "a") {
        const j = i % 7;
        if (j === 2 || j === 3 || j === 4) return x; // rotation, flags
        if (j < 2 || !abs) return r(x * k); // radii; relative end point
        return r(x * k + (j === 5 ? dx : dy));
      }
      if (!abs) return r(x * k);
      if (c === "H") return r(x * k + dx);
      if (c === "V") return r(x * k + dy);
      return r(x * k + (i % 2 === 0 ? dx : dy));
    });
    return c + out.join(" ");
  });
}

function icon(doc, parent, which, x, y, k = 1) {
  const [mode, d] = ICONS[which] || ICONS.unknown;
  return el(doc, "path", { class: `g-ico g-ico-${mode}`, d: placePath(d, x, y, k), "aria-hidden": "true" }, parent);
}

/** A node's name: its visible words in order, so speech input matches. */
function nodeAria(n, w) {
  const st = statusFor(n, w);
  return `task ${nodeName(n)}: ${st.word}${st.extras ? ", " + st.extras : ""}`;
}

function edgeAria(e) {
  const ends = `${e.from} → ${e.to}`;
  if (e.kind === "needs") return `needs edge ${ends}: runs after, no data`;
  const data = e.parts.filter((p) => p.kind === "data");
  if (data.length === 1) {
    return `data edge ${ends}: ${data[0].label || "data"}${e.decision === "deny" ? ", denied by policy" : ""}`;
  }
  const parts = data.map((p) => (p.label || "data") + (p.decision === "deny" ? " (denied by policy)" : ""));
  return `data edge ${ends}: ${parts.join(", ")}`;
}

/**
 * Draws `graph` into `container` (cleared first).
 * @param {HTMLElement} container
 * @param {{nodes:Array, edges:Array}} graph
 * @param {{onSelect?:(sel:{kind:"node"|"edge", id:string})=>void, selected?:{kind:string,id:string}|null}} [opts]
 * @returns {{select:(kind:string,id:string)=>boolean, destroy:()=>void}}
 */
export function drawGraph(container, graph, opts) {
  const { onSelect, selected } = opts || {};
  const doc = container.ownerDocument;
  const L = layout(graph);
  const inst = ++instances;

  const srcNodes = new Map();
  for (const nd of (graph && graph.nodes) || []) {
    if (nd && !srcNodes.has(str(nd.id, ""))) srcNodes.set(str(nd.id, ""), nd);
  }

  const nNodes = L.nodes.size;
  const nEdges = L.edges.length;
  const name = `Task graph: ${nNodes} ${nNodes === 1 ? "task" : "tasks"}, ${nEdges} ${nEdges === 1 ? "edge" : "edges"}`;
  const frag = doc.createDocumentFragment();
  const svg = el(
    doc,
    "svg",
    {
      class: "dag",
      role: "group",
      tabindex: -1, // Chromium otherwise puts the <svg> itself in the tab order
      "aria-label": name,
      width: L.width,
      height: L.height,
      viewBox: `0 0 ${L.width} ${L.height}`,
    },
    frag,
  );
  el(doc, "title", null, svg).textContent = name;

  const defs = el(doc, "defs", null, svg);
  const markers = {};
  for (const kind of ["data", "needs", "deny", "sel"]) {
    const id = `g${inst}-arrow-${kind}`;
    const m = el(
      doc,
      "marker",
      {
        id,
        class: "g-arrow g-arrow-" + kind,
        viewBox: "0 0 10 10",
        refX: 10 - ARROW_INSET,
        refY: 5,
        markerWidth: 9,
        markerHeight: 9,
        markerUnits: "userSpaceOnUse",
        orient: "auto",
      },
      defs,
    );
    el(doc, "path", { d: "M0 0.5L10 5L0 9.5L2.2 5Z" }, m);
    markers[kind] = `url(#${id})`;
  }

  const info = new Map(); // element -> {kind, id}
  const nodeEls = new Map(); // id -> node group
  const edgeEls = new Map(); // id -> edge group
  const edgeData = new Map(); // edge group -> {from, to, y, marker, line, label: [elements]}
  const outEdges = new Map(); // node id -> its edge groups, top to bottom
  const inEdges = new Map();

  if (nNodes === 0) {
    el(doc, "text", { class: "g-empty", x: L.width / 2, y: L.height / 2 + 4.5 }, svg).textContent = "No tasks";
  }

  // Tab order: a task, then its outgoing edges (top to bottom), then the next task.
  const items = el(doc, "g", { class: "g-items" }, svg);
  // Edge labels are drawn above every edge; the edge itself carries the name.
  const labels = el(doc, "g", { class: "g-labels", "aria-hidden": "true" }, svg);

  const bySource = new Map();
  for (const e of L.edges) {
    let list = bySource.get(e.from);
    if (!list) bySource.set(e.from, (list = []));
    list.push(e);
  }
  const lastY = (e) => e.points[e.points.length - 1][1];
  for (const list of bySource.values()) list.sort((a, b) => lastY(a) - lastY(b));

  for (const [id, box] of L.nodes) {
    const n = srcNodes.get(id) || { id };
    const st = stateOf(n);
    const label = nodeName(n);
    const g = el(
      doc,
      "g",
      {
        class: `g-node state-${st.cls}${n.gate ? " g-gate" : ""}`,
        tabindex: 0,
        role: "button",
        "aria-pressed": "false",
        "aria-label": nodeAria(n, box.w),
      },
      items,
    );
    const nameRoom = box.w - PAD_L - PAD_R - (n.gate ? GATE_W : 0);
    const shown = truncate(label, nameRoom, NAME_CHAR_W);
    if (shown !== label || label !== id) {
      // A tooltip with the full name (and the id, when the label differs).
      el(doc, "title", null, g).textContent = label === id ? label : `${label} (${id})`;
    }
    // Children are placed in absolute coordinates: a transform per node would
    // cost the browser a paint property node (and chunk) each.
    const X = box.x;
    const Y = box.y;
    el(doc, "rect", { class: "g-box", x: X, y: Y, width: box.w, height: box.h, rx: 6 }, g);
    icon(doc, g, st.cls, X + 18, Y + box.h / 2);
    // The visible texts, in reading order, are words of the aria-label; a
    // trailing space (not drawn) keeps them apart for tools that join them.
    const sp = statusFor(n, box.w);
    const lineRoom = box.w - PAD_L - PAD_R;
    el(doc, "text", { class: "g-name", x: X + PAD_L, y: Y + 22 }, g).textContent = shown + " ";
    if (sp.extras) {
      // The extras are kept whole when they can be; a long state word is cut first.
      const extras = truncate(sp.extras, Math.max(lineRoom - 4 * SMALL_CHAR_W - STATUS_SEP, lineRoom / 2), SMALL_CHAR_W);
      const wordRoom = lineRoom - textWidth(extras, SMALL_CHAR_W) - STATUS_SEP;
      el(doc, "text", { class: "g-status", x: X + PAD_L, y: Y + 37.5 }, g).textContent = truncate(sp.word, wordRoom, SMALL_CHAR_W) + " ";
      el(doc, "text", { class: "g-extra", x: X + box.w - PAD_R, y: Y + 37.5 }, g).textContent = extras;
    } else {
      el(doc, "text", { class: "g-status", x: X + PAD_L, y: Y + 37.5 }, g).textContent = truncate(sp.word, lineRoom, SMALL_CHAR_W);
    }
    if (n.gate) {
      el(doc, "path", { class: "g-gate-mark", d: `M${X + box.w - 15} ${Y + 7}l6 6l-6 6l-6 -6z`, "aria-hidden": "true" }, g);
    }
    info.set(g, { kind: "node", id });
    nodeEls.set(id, g);
    outEdges.set(id, []);
    inEdges.set(id, []);

    for (const e of bySource.get(id) || []) {
      const deny = e.decision === "deny";
      const eg = el(
        doc,
        "g",
        {
          class: `g-edge g-kind-${e.kind}${deny ? " g-deny" : ""}`,
          tabindex: 0,
          role: "button",
          "aria-pressed": "false",
          "aria-label": edgeAria(e),
        },
        items,
      );
      const d = pathD(e.points);
      el(doc, "path", { class: "g-hit", d }, eg);
      const marker = deny ? markers.deny : e.kind === "needs" ? markers.needs : markers.data;
      const line = el(doc, "path", { class: "g-line", d, "marker-end": marker }, eg);
      const data = { from: e.from, to: e.to, y: lastY(e), marker, line, label: null };
      info.set(eg, { kind: "edge", id: e.id });
      edgeEls.set(e.id, eg);
      edgeData.set(eg, data);
      outEdges.get(id).push(eg);

      if (e.labelBox) {
        const b = e.labelBox;
        const dc = deny ? " g-deny" : "";
        const bg = el(doc, "rect", { class: "g-label-bg" + dc, x: b.x, y: b.y, width: b.w, height: b.h, rx: 4 }, labels);
        const parts = [bg];
        let tx = b.x + LABEL_PAD;
        if (deny) {
          parts.push(icon(doc, labels, "refused", tx + 5, b.y + b.h / 2, 0.78));
          parts[1].setAttribute("class", "g-ico g-ico-fill g-ico-deny");
          tx += DENY_ICON_W;
        }
        const text = el(doc, "text", { class: "g-label-text" + dc, x: tx, y: b.y + b.h / 2 + 3.9 }, labels);
        const shownLabel = truncate(e.label, b.x + b.w - LABEL_PAD - tx, LABEL_CHAR_W);
        text.textContent = shownLabel;
        if (deny || shownLabel !== e.label) {
          el(doc, "title", null, text).textContent = deny ? `⛔ denied by policy: ${e.label}` : e.label;
        }
        parts.push(text);
        for (const x of parts) info.set(x, { kind: "edge", id: e.id });
        data.label = parts;
      }
    }
  }
  // Incoming edges per node, top to bottom, for arrow-key navigation.
  for (const [eg, dd] of edgeData) inEdges.get(dd.to).push(eg);
  for (const list of inEdges.values()) list.sort((a, b) => edgeData.get(a).y - edgeData.get(b).y);
  // Nodes per layer, top to bottom.
  const layerLists = L.layers.map((ids) => ids.slice().sort((a, b) => L.nodes.get(a).y - L.nodes.get(b).y));

  // A redraw (the same container, e.g. on a refresh) keeps the scroll
  // position; a first drawing opens on the first task.
  const kept = container.querySelector && container.querySelector("svg.dag") ? scrollOf(container) : lastScroll.get(container);
  if (container.replaceChildren) container.replaceChildren();
  else while (container.firstChild) container.removeChild(container.firstChild);
  container.classList.add("g-host");
  container.appendChild(frag);
  let destroyed = false;
  // Scrolling reads layout, so it waits for the next frame (before it is
  // painted) instead of forcing a synchronous layout of the whole drawing.
  const placeView = () => {
    if (destroyed) return;
    if (kept) {
      container.scrollLeft = kept.left;
      container.scrollTop = kept.top;
    } else if (nNodes > 0 && typeof container.scrollTop === "number") {
      const first = L.nodes.values().next().value;
      container.scrollLeft = Math.max(0, first.x - MARGIN);
      container.scrollTop = Math.max(0, first.y + first.h / 2 - (container.clientHeight || 0) / 2);
    }
    if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest", inline: "nearest" });
  };

  // One selection ring, moved into the selected node.
  const ring = el(doc, "rect", { class: "g-sel", rx: 9 });
  let current = null;

  function labelClass(eg, cls, on) {
    const dd = edgeData.get(eg);
    if (!dd || !dd.label) return;
    const bg = dd.label[0];
    if (on) bg.classList.add(cls);
    else bg.classList.remove(cls);
  }

  function mark(x, on) {
    if (on) x.classList.add("selected");
    else x.classList.remove("selected");
    x.setAttribute("aria-pressed", on ? "true" : "false");
    const dd = edgeData.get(x);
    if (dd) {
      dd.line.setAttribute("marker-end", on ? markers.sel : dd.marker);
      labelClass(x, "selected", on);
    } else if (on) {
      const box = L.nodes.get(info.get(x).id);
      ring.setAttribute("x", box.x - 4);
      ring.setAttribute("y", box.y - 4);
      ring.setAttribute("width", box.w + 8);
      ring.setAttribute("height", box.h + 8);
      x.appendChild(ring);
    } else if (ring.parentNode === x) {
      x.removeChild(ring);
    }
  }

  function find(kind, id) {
    if (kind === "node") return nodeEls.get(id);
    if (kind === "edge") return edgeEls.get(id);
    return undefined;
  }

  function select(kind, id, scroll) {
    const target = find(kind, String(id));
    if (current && current !== target) mark(current, false);
    current = target || null;
    if (!target) return false;
    mark(target, true);
    if (scroll && target.scrollIntoView) target.scrollIntoView({ block: "nearest", inline: "nearest" });
    return true;
  }

  function itemFrom(target) {
    for (let t = target; t && t !== svg; t = t.parentNode) {
      const i = info.get(t);
      if (i) return { el: i.kind === "edge" ? edgeEls.get(i.id) : nodeEls.get(i.id), ...i };
    }
    return null;
  }

  function activate(it) {
    select(it.kind, it.id, false);
    if (typeof onSelect === "function") onSelect({ kind: it.kind, id: it.id });
  }

  function onClick(ev) {
    const it = itemFrom(ev.target);
    if (it) activate(it);
  }

  function neighbour(it, key) {
    if (it.kind === "node") {
      const list = layerLists[L.nodes.get(it.id).layer] || [];
      const i = list.indexOf(it.id);
      if (key === "ArrowDown") return nodeEls.get(list[i + 1]);
      if (key === "ArrowUp") return nodeEls.get(list[i - 1]);
      if (key === "ArrowRight") return (outEdges.get(it.id) || [])[0];
      if (key === "ArrowLeft") return (inEdges.get(it.id) || [])[0];
      return undefined;
    }
    const dd = edgeData.get(it.el);
    if (key === "ArrowRight") return nodeEls.get(dd.to);
    if (key === "ArrowLeft") return nodeEls.get(dd.from);
    const sib = outEdges.get(dd.from) || [];
    const i = sib.indexOf(it.el);
    if (key === "ArrowDown") return sib[i + 1];
    if (key === "ArrowUp") return sib[i - 1];
    return undefined;
  }

  function onKey(ev) {
    const it = itemFrom(ev.target);
    if (!it || it.el !== ev.target) return;
    const key = ev.key;
    if (key === "Enter" || key === " " || key === "Spacebar") {
      ev.preventDefault();
      activate(it);
    } else if (key === "ArrowDown" || key === "ArrowUp" || key === "ArrowLeft" || key === "ArrowRight") {
      const next = neighbour(it, key);
      if (next && next.focus) {
        ev.preventDefault();
        next.focus();
      }
    }
  }

  // A focused edge's label is highlighted with it.
  const onFocus = (ev) => labelClass(ev.target, "g-focus", true);
  const onBlur = (ev) => labelClass(ev.target, "g-focus", false);

  svg.addEventListener("click", onClick);
  svg.addEventListener("keydown", onKey);
  svg.addEventListener("focusin", onFocus);
  svg.addEventListener("focusout", onBlur);

  if (selected && selected.id !== undefined && selected.id !== null) {
    select(selected.kind || "node", selected.id, false); // scrolled to by placeView
  }
  const win = doc.defaultView;
  if (win && typeof win.requestAnimationFrame === "function") win.requestAnimationFrame(placeView);
  else placeView();

  return {
    select: (kind, id) => select(kind, id, true),
    destroy() {
      destroyed = true;
      lastScroll.set(container, scrollOf(container));
      svg.removeEventListener("click", onClick);
      svg.removeEventListener("keydown", onKey);
      svg.removeEventListener("focusin", onFocus);
      svg.removeEventListener("focusout", onBlur);
      if (svg.parentNode) svg.parentNode.removeChild(svg);
      container.classList.remove("g-host");
      info.clear();
      nodeEls.clear();
      edgeEls.clear();
      edgeData.clear();
      current = null;
    },
  };
}
