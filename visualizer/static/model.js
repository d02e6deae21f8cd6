// The model page: a collapsible layer tree for torch, Flax, or both paired, built from the page's JSON.
"use strict";
const DATA = JSON.parse(document.getElementById("page-data").textContent);
const state = { view: DATA.view, expanded: new Set(), parity: DATA.parity };

const fmtInt = (n) => (n === null || n === undefined) ? "" : n.toLocaleString("en-US");
function fmtCompact(n) {
  if (n === null || n === undefined) return "";
  if (n === 0) return "0";
  const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [scale, unit] of units) if (Math.abs(n) >= scale) return (n / scale).toFixed(n / scale >= 100 ? 1 : 2) + " " + unit;
  return String(n);
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  if (n === 0) return "0 B";
  const units = [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]];
  for (const [scale, unit] of units) if (n >= scale) return (n / scale).toFixed(2) + " " + unit;
  return n + " B";
}
const fmtShape = (shape) => shape === null ? "not called" : shape.map((s) => s.join("×")).join(", ");
const fmtErr = (e) => e === null ? "∞" : e.toExponential(1);

// Colour of a parity error: green far below the threshold, yellow at it, red far above (log scale).
function errColour(e, threshold) {
  if (e === null) return "hsl(0,80%,35%)";
  const lo = -8, mid = Math.log10(threshold), hi = -1;
  const x = Math.log10(Math.max(e, 1e-12));
  let hue;
  if (x <= mid) hue = 120 - 60 * Math.max(0, (x - lo) / (mid - lo));
  else hue = 60 - 60 * Math.min(1, (x - mid) / (hi - mid));
  const light = x <= mid ? 72 : 50;
  return `hsl(${hue.toFixed(0)},${x <= mid ? 65 : 80}%,${light}%)`;
}

// Rows of the current view: {parent, depth, torch: node|null, flax: node|null}.
function rowsFor(view) {
  if (view === "side") return DATA.side.map((r) => ({ parent: r.parent, depth: r.depth,
    torch: r.torch === null ? null : DATA.torch.nodes[r.torch], flax: r.flax === null ? null : DATA.flax.nodes[r.flax] }));
  const tree = DATA[view];
  return tree.nodes.map((n) => ({ parent: n.parent, depth: n.depth, torch: view === "torch" ? n : null, flax: view === "flax" ? n : null }));
}

function parityOf(row) {
  if (!state.parity) return undefined;
  const layers = state.parity.layers;
  if (row.torch && layers[row.torch.path] !== undefined) return layers[row.torch.path];
  if (row.flax) {
    const hit = Object.values(layers).find((l) => l.flax === row.flax.path);
    if (hit) return hit;
  }
  return null;
}

function cell(tr, text, cls, title) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  if (title) td.title = title;
  tr.appendChild(td);
  return td;
}

function nodeCells(tr, node, side, withName) {
  const cls = side ? side + "side" : "";
  if (withName) cell(tr, node ? (node.path || "(root)") : "", "name " + cls, node ? node.path || "(root)" : "");
  cell(tr, node ? node.type : "", cls);
  cell(tr, node ? fmtShape(node.shape) : "", "shape " + cls);
  cell(tr, node ? fmtInt(node.params) : "", "num params " + cls);
  cell(tr, node ? fmtCompact(node.macs) : "", "num macs " + cls, node ? fmtInt(node.macs) + " MACs" : "");
  cell(tr, node ? fmtBytes(node.output_bytes) : "", "num mem " + cls, node ? fmtInt(node.output_bytes) + " bytes" : "");
}

function errCell(tr, row) {
  const td = cell(tr, "", "err");
  const p = parityOf(row);
  if (p === undefined) { td.textContent = state.parity === null && DATA.parity_url && !state.parityFailed ? "…" : ""; return; }
  if (p === null) { td.textContent = "–"; td.title = "no paired output to compare"; return; }
  td.textContent = fmtErr(p.error);
  td.style.background = errColour(p.error, state.parity.threshold);
  td.title = `torch ${row.torch ? row.torch.path || "(output)" : "?"} vs flax ${p.flax || "(output)"}: ${p.error === null ? "not comparable" : p.error.toExponential(3)} ${p.detail}`;
  if (p.error === null || p.error > state.parity.threshold) td.classList.add("over");
}

function render() {
  const view = state.view;
  const rows = rowsFor(view);
  state.rows = rows;
  const thead = document.querySelector("#tree thead");
  const tbody = document.querySelector("#tree tbody");
  const cols = ["type", "output shape", "params", "MACs", "output memory"];
  let head;
  if (view === "side") head = ["module (torch)", ...cols, "parity error", "|", "path (Flax)", ...cols];
  else head = [view === "torch" ? "module (torch)" : "path (Flax)", ...cols, "parity error"];
  thead.innerHTML = "";
  const htr = document.createElement("tr");
  for (const h of head) { const th = document.createElement("th"); th.textContent = h; htr.appendChild(th); }
  thead.appendChild(htr);
  const hasChildren = new Set(rows.filter((r) => r.parent !== null).map((r) => r.parent));
  tbody.innerHTML = "";
  rows.forEach((row, i) => {
    const tr = document.createElement("tr");
    tr.dataset.row = i;
    tr.dataset.depth = row.depth;
    if (row.torch) tr.dataset.torch = row.torch.path;
    if (row.flax) tr.dataset.flax = row.flax.path;
    const main = view === "flax" ? row.flax : (row.torch || row.flax);
    const first = document.createElement("td");
    first.className = "name";
    first.style.paddingLeft = (0.3 + 1.1 * row.depth) + "em";
    if (hasChildren.has(i)) {
      const b = document.createElement("button");
      b.className = "toggle"; b.type = "button";
      b.addEventListener("click", () => { toggle(i); });
      first.appendChild(b);
    } else {
      const pad = document.createElement("span"); pad.className = "leafpad"; first.appendChild(pad);
    }
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = main.label;
    label.title = main.path || "(root)";
    first.appendChild(label);
    tr.appendChild(first);
    if (view === "side") {
      if (!row.torch || !row.flax) tr.classList.add("missing");
      nodeCells(tr, row.torch, "torch", false);
      if (!row.torch) { tr.children[1].textContent = "(no torch module)"; }
      errCell(tr, row);
      cell(tr, "", "sep");
      nodeCells(tr, row.flax, "flax", true);
      if (!row.flax) { tr.children[tr.children.length - 6].textContent = "(no Flax twin)"; }
    } else {
      nodeCells(tr, main, "", false);
      errCell(tr, row);
    }
    tbody.appendChild(tr);
  });
  for (const b of document.querySelectorAll(".segmented button")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
  renderTotals();
  applyVisibility();
}

function applyVisibility() {
  const rows = state.rows;
  const visible = rows.map(() => true);
  rows.forEach((row, i) => { if (row.parent !== null) visible[i] = visible[row.parent] && state.expanded.has(row.parent); });
  document.querySelectorAll("#tree tbody tr").forEach((tr, i) => {
    tr.classList.toggle("hidden", !visible[i]);
    const b = tr.querySelector("button.toggle");
    if (b) { const open = state.expanded.has(i); b.textContent = open ? "▾" : "▸"; b.setAttribute("aria-expanded", String(open)); }
  });
}

function toggle(i) {
  if (state.expanded.has(i)) state.expanded.delete(i); else state.expanded.add(i);
  applyVisibility();
}

function expandToDepth(depth) {
  state.expanded = new Set();
  state.rows.forEach((row, i) => { if (row.depth < depth) state.expanded.add(i); });
  applyVisibility();
}

function maxDepth() { return Math.max(...rowsFor(state.view).map((r) => r.depth)); }

function fillDepthSelect(selected) {
  const sel = document.getElementById("depth-select");
  sel.innerHTML = "";
  const max = maxDepth();
  for (let d = 0; d <= max; d++) {
    const o = document.createElement("option"); o.value = d; o.textContent = d === max ? `${d} (all)` : String(d); sel.appendChild(o);
  }
  sel.value = String(Math.min(selected, max));
}

function totalsCard(tree, heading) {
  const reg = DATA.registry;
  const div = document.createElement("div");
  div.className = "card"; div.id = "totals-" + tree.framework;
  const atSpec = DATA.size === reg.input_size;
  const check = (mine, theirs) => !atSpec ? "" : (mine === theirs ? '<span class="match">= registry</span>' : `<span class="mismatch">registry says ${fmtInt(theirs)}</span>`);
  div.innerHTML = `<h3>${heading}</h3><table>
    <tr><th>params</th><td class="num total-params">${fmtInt(tree.total_params)}</td><td>${check(tree.total_params, reg.params)}</td></tr>
    <tr><th>MACs</th><td class="num total-macs">${fmtInt(tree.total_macs)}</td><td>${check(tree.total_macs, reg.macs)}</td></tr>
    <tr><th>FLOPs (2 per MAC)</th><td class="num total-flops">${fmtInt(2 * tree.total_macs)}</td><td>${fmtCompact(2 * tree.total_macs)}FLOP</td></tr>
    <tr><th>activation memory</th><td class="num total-mem">${fmtBytes(tree.total_activation_bytes)}</td><td class="note">${fmtInt(tree.total_activation_bytes)} bytes</td></tr>
    <tr><th>input</th><td class="shape">${tree.input_shape.join("×")}</td><td class="note">${tree.framework === "torch" ? "NCHW" : "NHWC"}</td></tr>
  </table>`;
  return div;
}

function renderTotals() {
  const box = document.getElementById("totals");
  box.innerHTML = "";
  if (state.view !== "flax") box.appendChild(totalsCard(DATA.torch, "PyTorch totals"));
  if (state.view !== "torch") box.appendChild(totalsCard(DATA.flax, "Flax totals"));
  const reg = DATA.registry;
  const r = document.createElement("div");
  r.className = "card"; r.id = "totals-registry";
  r.innerHTML = `<h3>Registry (models.get_model_info)</h3><table>
    <tr><th>params</th><td class="num">${fmtInt(reg.params)}</td></tr>
    <tr><th>MACs</th><td class="num">${fmtInt(reg.macs)}</td></tr>
    <tr><th>input size</th><td class="num">${reg.input_size}</td></tr></table>
    ${DATA.size === reg.input_size ? "" : `<p class="note">The registry's figures are for ${reg.input_size}×${reg.input_size}; this page is at ${DATA.size}×${DATA.size}.</p>`}`;
  box.appendChild(r);
  document.getElementById("counting").textContent = state.view === "flax" ? DATA.flax.counting
    : state.view === "torch" ? DATA.torch.counting : "torch: " + DATA.torch.counting + " Flax: " + DATA.flax.counting;
}

function renderParityStatus(message) {
  const box = document.getElementById("parity-status");
  document.getElementById("threshold").textContent = (state.parity ? state.parity.threshold : DATA.threshold).toExponential(0);
  if (message) { box.textContent = message; return; }
  const p = state.parity;
  if (!p) return;
  const first = p.first_diverging;
  box.innerHTML = "";
  const span = document.createElement("span");
  if (first) {
    span.className = "mismatch";
    span.textContent = `Port diverges: first layer over ${p.threshold.toExponential(0)} is torch ${first.torch || "(output)"} / Flax ${first.flax} (${fmtErr(first.error)}).`;
  } else {
    span.className = "match";
    span.textContent = `Every paired layer within ${p.threshold.toExponential(0)} (largest ${p.max_error === null ? "?" : p.max_error.toExponential(1)}).`;
  }
  box.appendChild(span);
  box.appendChild(document.createTextNode(` ${Object.keys(p.layers).length} layers paired; ${p.weights}; ${p.images}; computed in ${p.seconds} s.`));
}

function go(url) { window.location.href = url; }
function modelUrl(name, size) {
  return DATA.links.model_template.replace("{name}", encodeURIComponent(name)).replace("{size}", String(size)).replace("{view}", state.view);
}

document.getElementById("model-select").addEventListener("change", (e) => go(modelUrl(e.target.value, "")));
document.getElementById("size-select").addEventListener("change", (e) => go(modelUrl(DATA.model, e.target.value)));
for (const b of document.querySelectorAll(".segmented button")) {
  b.addEventListener("click", () => {
    const depth = Number(document.getElementById("depth-select").value);
    state.view = b.dataset.view;
    render();
    fillDepthSelect(depth);
    expandToDepth(Number(document.getElementById("depth-select").value));
    if (DATA.links.live) history.replaceState(null, "", modelUrl(DATA.model, DATA.size));
  });
}
document.getElementById("depth-select").addEventListener("change", (e) => expandToDepth(Number(e.target.value)));

render();
fillDepthSelect(DATA.depth);
expandToDepth(Number(document.getElementById("depth-select").value));
renderParityStatus();
if (!state.parity && DATA.parity_url) {
  renderParityStatus("Computing per-layer parity on random weights (both frameworks run; large models take a minute the first time)…");
  fetch(DATA.parity_url).then((r) => r.ok ? r.json() : r.json().then((j) => { throw new Error(j.error || r.statusText); })).then((p) => {
    state.parity = p;
    const expanded = state.expanded;
    render();
    state.expanded = expanded;
    applyVisibility();
    renderParityStatus();
    document.body.dataset.parity = "ready";
  }).catch((err) => {
    state.parityFailed = true;
    const expanded = state.expanded;
    render();
    state.expanded = expanded;
    applyVisibility();
    renderParityStatus("Parity could not be computed: " + err.message);
    document.body.dataset.parity = "failed";
  });
} else if (state.parity) {
  document.body.dataset.parity = "ready";
}
