// ratchet's live topology page: draws the snapshots /api/events sends
// as an SVG graph. Every name comes from pod annotations, so text is only
// ever set with textContent and attributes with setAttribute: no markup
// is built from data.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

// How each state is drawn (colour, dash), as `ratchetctl links --dot`.
const STATES = {
  up:       { color: "#2e7d32", dash: "" },
  pending:  { color: "#9e9e9e", dash: "8 5" },
  remote:   { color: "#1565c0", dash: "" },
  parked:   { color: "#ef6c00", dash: "2 4" },
  broken:   { color: "#c62828", dash: "" },
  pulled:   { color: "#c62828", dash: "8 5" },
  impaired: { color: "#ef6c00", dash: "" },
};

let snapshot = null;
// What the panel shows: the hovered link, else the selected link or pod
// ({kind: "link"|"pod", id}).
let selected = null;
let hovered = null;

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function legend() {
  const ul = document.getElementById("legend");
  for (const [state, s] of Object.entries(STATES)) {
    const li = document.createElement("li");
    li.textContent = state;
    li.style.setProperty("--c", s.color);
    if (s.dash) li.className = s.dash.startsWith("2") ? "dotted" : "dashed";
    ul.appendChild(li);
  }
}

// layout places the pods on a circle in name order, so that a pod keeps
// its place while others come and go around it only by its rank.
function layout(names, w, h) {
  const pos = new Map();
  const n = names.length;
  const r = Math.max(0, Math.min(w, h) / 2 - 70);
  names.forEach((name, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    pos.set(name, n === 1 ? { x: w / 2, y: h / 2 } : { x: w / 2 + r * Math.cos(a), y: h / 2 + r * Math.sin(a) });
  });
  return pos;
}

function render() {
  const svg = document.getElementById("graph");
  const s = snapshot;
  const w = svg.clientWidth || 800, h = svg.clientHeight || 600;
  const present = new Set(s.pods.map((p) => p.pod));
  const names = new Set(present);
  for (const l of s.links) for (const e of l.ends) names.add(e.pod);
  const pos = layout([...names].sort(), w, h);

  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  // Links between the same two pods are bent apart.
  const pairs = new Map();
  for (const l of s.links) {
    const key = [l.ends[0].pod, l.ends[1].pod].sort().join("\u0000");
    if (!pairs.has(key)) pairs.set(key, []);
    pairs.get(key).push(l);
  }
  const links = el("g", { class: "links" });
  for (const group of pairs.values()) {
    group.forEach((l, i) => links.appendChild(drawLink(l, pos, (i - (group.length - 1) / 2) * 40)));
  }
  svg.appendChild(links);
  const pods = el("g", { class: "pods" });
  for (const name of [...names].sort()) {
    const p = pos.get(name);
    const g = el("g", { class: "pod", "data-pod": name, "data-present": present.has(name) });
    const tw = Math.max(60, name.length * 7.5 + 16);
    g.appendChild(el("rect", { x: p.x - tw / 2, y: p.y - 14, width: tw, height: 28 }));
    g.appendChild(el("text", { x: p.x, y: p.y }, name));
    g.appendChild(el("title", {}, present.has(name) ? name : name + " (not registered on this node)"));
    if (selected && selected.kind === "pod" && selected.id === name) g.classList.add("selected");
    g.addEventListener("click", () => select("pod", name));
    pods.appendChild(g);
  }
  svg.appendChild(pods);
  svg.setAttribute("data-pods", s.pods.length);
  svg.setAttribute("data-links", s.links.length);
  svg.setAttribute("data-ready", "true");

  document.getElementById("node").textContent = s.node ? "· node " + s.node : "";
  const counts = {};
  for (const l of s.links) counts[l.state] = (counts[l.state] || 0) + 1;
  document.getElementById("summary").textContent = `${s.pods.length} pods, ${s.links.length} links` +
    Object.entries(counts).map(([k, v]) => ` · ${v} ${k}`).join("");
  detail();
}

function drawLink(l, pos, bend) {
  const a = pos.get(l.ends[0].pod), b = pos.get(l.ends[1].pod);
  const style = STATES[l.state] || { color: "#000", dash: "" };
  let d, mid, at;
  if (l.ends[0].pod === l.ends[1].pod) {
    // A loop: a link between two interfaces of one pod.
    const k = 50 + Math.abs(bend);
    d = `M ${a.x - 10} ${a.y - 14} C ${a.x - k} ${a.y - 3 * k}, ${a.x + k} ${a.y - 3 * k}, ${a.x + 10} ${a.y - 14}`;
    mid = { x: a.x, y: a.y - 2.25 * k };
    at = (t) => ({ x: a.x + (t < 0.5 ? -k / 2 : k / 2), y: a.y - 1.2 * k });
  } else {
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const c = { x: (a.x + b.x) / 2 - (dy / len) * bend, y: (a.y + b.y) / 2 + (dx / len) * bend };
    d = `M ${a.x} ${a.y} Q ${c.x} ${c.y} ${b.x} ${b.y}`;
    const q = (t) => ({
      x: (1 - t) * (1 - t) * a.x + 2 * (1 - t) * t * c.x + t * t * b.x,
      y: (1 - t) * (1 - t) * a.y + 2 * (1 - t) * t * c.y + t * t * b.y,
    });
    mid = q(0.5);
    at = (t) => q(t);
  }
  const g = el("g", { class: "link", "data-link-id": l.id, "data-state": l.state,
    "data-ends": `${l.ends[0].pod}:${l.ends[0].ifName} ${l.ends[1].pod}:${l.ends[1].ifName}` });
  if (selected && selected.kind === "link" && selected.id === l.id) g.classList.add("selected");
  g.appendChild(el("path", { class: "line", d, stroke: style.color, "stroke-dasharray": style.dash }));
  g.appendChild(el("path", { class: "hit", d }));
  const p0 = at(0.22), p1 = at(0.78);
  g.appendChild(el("text", { x: p0.x, y: p0.y - 8 }, l.ends[0].ifName));
  g.appendChild(el("text", { x: p1.x, y: p1.y - 8 }, l.ends[1].ifName));
  g.appendChild(el("text", { class: "state", x: mid.x, y: mid.y + 10, fill: style.color }, l.state));
  g.addEventListener("mouseenter", () => { hovered = l.id; detail(); });
  g.addEventListener("mouseleave", () => { hovered = null; detail(); });
  g.addEventListener("click", () => select("link", l.id));
  return g;
}

function traffic(t) {
  if (!t) return "-";
  return `${t.bytes} B, ${t.packets} pkts, ${t.drops} drops, ${t.errors} errs`;
}

function impairment(i) {
  if (!i) return "none";
  return Object.entries(i).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
}

function select(kind, id) {
  selected = selected && selected.kind === kind && selected.id === id ? null : { kind, id };
  render();
}

function fill(title, rows) {
  document.getElementById("detail-title").textContent = title;
  const dl = document.getElementById("detail-list");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

// podDetail fills the panel with a pod: its record and its links.
function podDetail(name) {
  const p = snapshot.pods.find((x) => x.pod === name);
  const rows = p ? [["netns", p.netns], ["attachment", p.attachment]] : [["registered", "not on this node"]];
  for (const l of snapshot.links) {
    l.ends.forEach((e, i) => {
      if (e.pod !== name) return;
      const o = l.ends[1 - i];
      rows.push([e.ifName, `→ ${o.pod}:${o.ifName} (${l.state})`]);
    });
  }
  fill(name, rows);
  document.getElementById("controls").hidden = true;
}

// detail fills the side panel with the hovered link, else the selected
// link or pod.
function detail() {
  const box = document.getElementById("detail");
  const hint = document.getElementById("hint");
  if (!hovered && selected && selected.kind === "pod" && snapshot) {
    box.hidden = false;
    hint.hidden = true;
    podDetail(selected.id);
    return;
  }
  const id = hovered || (selected && selected.kind === "link" ? selected.id : null);
  const l = snapshot && snapshot.links.find((x) => x.id === id);
  box.hidden = !l;
  hint.hidden = !!l;
  if (!l) return;
  const e = l.ends.map((x) => `${x.pod}:${x.ifName}`);
  const rows = [["state", l.state], ["id", l.id]];
  if (l.added) rows.push(["added", "by hand (ratchetctl link add)"]);
  const st = l.stats || {};
  const tw = st.toward || [];
  const cc = st.carrierChanges || [];
  rows.push([`→ ${e[0]}`, traffic(tw[0])], [`→ ${e[1]}`, traffic(tw[1])]);
  rows.push(["carrier changes", `${cc[0] ?? "-"} / ${cc[1] ?? "-"}`]);
  const set = l.settings || {};
  rows.push(["cable", set.pulled ? "pulled" : "plugged"]);
  const to = set.toward || [];
  rows.push([`impair → ${e[0]}`, impairment(to[0])], [`impair → ${e[1]}`, impairment(to[1])]);
  fill(`${e[0]} — ${e[1]}`, rows);
  const controls = document.getElementById("controls");
  controls.hidden = !snapshot.control;
  controls.dataset.end = e[0];
}

async function cable(pull) {
  const end = document.getElementById("controls").dataset.end;
  const msg = document.getElementById("control-error");
  msg.textContent = "";
  try {
    const r = await fetch("/api/cable", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ end, pull }),
    });
    if (!r.ok) msg.textContent = (await r.text()).trim();
  } catch (err) {
    msg.textContent = String(err);
  }
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => { conn.dataset.conn = "live"; conn.textContent = "live"; });
  es.addEventListener("error", () => { conn.dataset.conn = "lost"; conn.textContent = "reconnecting…"; });
  es.addEventListener("snapshot", (ev) => {
    snapshot = JSON.parse(ev.data);
    if (selected && selected.kind === "link" && !snapshot.links.some((l) => l.id === selected.id)) selected = null;
    render();
  });
}

legend();
document.getElementById("pull").addEventListener("click", () => cable(true));
document.getElementById("plug").addEventListener("click", () => cable(false));
window.addEventListener("resize", () => snapshot && render());
connect();
