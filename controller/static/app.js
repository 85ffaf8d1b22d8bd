// The SPP operator's web view: polls /state.json, draws tables and small
// plots (canvas), and the topology picture (inline SVG). No library.
"use strict";

const POLL_MS = 1500;
const KEEP = 60;                       // points per plot
const history = new Map();             // key -> [{t, v}]
let previous = null;                   // the last state.json
let pictureKey = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function table(headers, rows, attrs) {
  const t = el("table", attrs || {});
  t.append(el("tr", {}, ...headers.map(h => el("th", { class: h.l ? "l" : "" }, h.name || h))));
  for (const r of rows) t.append(r);
  if (!rows.length) t.append(el("tr", {}, el("td", { class: "l empty", colSpan: headers.length },
                                             "none")));
  return t;
}

function fmt(n) {
  if (n === null || n === undefined) return "–";
  if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

// A rate (per second) of a counter, kept in the history for its plot.
function rate(key, t, v) {
  const h = history.get(key) || [];
  if (h.length && h[h.length - 1].t === t) return h[h.length - 1].r;   // the same snapshot
  let r = null;
  if (h.length && v !== null && h[h.length - 1].v !== null && t > h[h.length - 1].t) {
    r = Math.max(0, (v - h[h.length - 1].v) / (t - h[h.length - 1].t));
  }
  h.push({ t, v, r });
  while (h.length > KEEP) h.shift();
  history.set(key, h);
  return r;
}

function spark(key, w, h) {
  const c = el("canvas", { class: "spark", width: w || 160, height: h || 26 });
  c.dataset.key = key;
  return c;
}

function drawSparks() {
  for (const c of document.querySelectorAll("canvas.spark")) plot(c, history.get(c.dataset.key));
}

function plot(c, h, color) {
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const pts = (h || []).filter(p => p.r !== null && p.r !== undefined);
  if (pts.length < 2) return;
  const max = Math.max(...pts.map(p => p.r), 1e-9);
  g.strokeStyle = color || "#1f77b4";
  g.lineWidth = 1.5;
  g.beginPath();
  pts.forEach((p, i) => {
    const x = (c.width - 2) * (KEEP - pts.length + i) / (KEEP - 1) + 1;
    const y = c.height - 2 - (c.height - 4) * p.r / max;
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#555";
  g.font = "10px Helvetica";
  g.fillText("max " + fmt(max) + "/s", 2, 9);
}

function renderSwitches(s) {
  const box = document.getElementById("switches");
  box.replaceChildren(...Object.entries(s.switches).map(([name, up]) =>
    el("span", { class: up ? "up" : "down", "data-switch": name, title: up ? "up" : "down" },
       name + (up ? " up" : " DOWN"))));
}

function renderDrops(s, t) {
  const rows = [];
  for (const [sw, reasons] of Object.entries(s.drops)) {
    for (const [reason, n] of Object.entries(reasons)) {
      const key = `drop/${sw}/${reason}`;
      const r = rate(key, t, n);
      if (!n) continue;
      rows.push(el("tr", {}, el("td", { class: "l" }, sw), el("td", { class: "l" }, reason),
                   el("td", {}, fmt(r)), el("td", { "data-drop": `${sw}/${reason}` }, fmt(n)),
                   el("td", {}, spark(key))));
    }
  }
  document.getElementById("drops").replaceChildren(
    table(["switch", "reason", "pkt/s", "total", "rate"].map(
      (n, i) => ({ name: n, l: i < 2 })), rows));
}

function renderApi(s, t) {
  const rows = [];
  let total = 0;
  const old = previous ? previous.api : {};
  for (const [fn, a] of Object.entries(s.api).sort()) {
    const calls = Object.values(a.calls).reduce((x, y) => x + y, 0);
    total += calls;
    const r = rate(`api/${fn}`, t, calls);
    const o = old[fn];
    const dn = o ? a.count - o.count : 0;
    const mean = dn > 0 ? 1000 * (a.seconds - o.seconds) / dn : null;
    const errs = Object.entries(a.calls).filter(([e]) => e !== "OK")
      .map(([e, n]) => `${e} ${n}`).join(", ");
    rows.push(el("tr", {}, el("td", { class: "l" }, fn), el("td", {}, fmt(r)),
                 el("td", {}, mean === null ? "–" : mean.toFixed(2)), el("td", {}, calls),
                 el("td", { class: "l" }, errs)));
  }
  rate("api/all", t, total);
  plot(document.getElementById("api-plot"), history.get("api/all"), "#2ca02c");
  document.getElementById("api").replaceChildren(table(
    [{ name: "function", l: true }, "calls/s", "mean ms", "calls", { name: "errors", l: true }],
    rows));
}

function filterText(o) {
  return Object.entries(o || {}).filter(([, v]) => v !== 0 && v !== "0.0.0.0")
    .map(([k, v]) => `${k}=${v}`).join(" ") || "*";
}

function renderFastpath(node, sl, fp, t) {
  const id = `${node}/${sl.name}/${fp.local_id}`;
  const box = el("div", { class: "fastpath", "data-fastpath": id });
  box.append(el("h4", {}, `fastpath ${fp.local_id} on ${fp.npe} (gid ${fp.gid}, ${fp.copt}, `
                + `${fmt(fp.bw_kbps)} kb/s)`));
  box.append(table(["filters", "queues", "buffers", "stats", "SRAM words", "DRAM bytes",
                    "reserved"], [el("tr", {}, el("td", {}, fp.n_filters),
    el("td", {}, fp.n_queues), el("td", {}, fp.n_buffers), el("td", {}, fp.n_stats),
    el("td", {}, fp.sram_words), el("td", {}, fmt(fp.dram_bytes)),
    el("td", {}, fp.reservations.map(r => `if${r.ifn}: ${fmt(r.bw_kbps)} kb/s`).join(", ")
       || "–"))]));
  const st = fp.stats.map(x => {
    const k = `stats/${id}/${x.index}`;
    const pr = rate(k + "/pre_packets", t, x.pre_packets);
    const br = rate(k + "/pre_bytes", t, x.pre_bytes);
    const qr = rate(k + "/post_packets", t, x.post_packets);
    const d = `data-stats`;
    return el("tr", { [d]: `${id}/${x.index}` }, el("td", {}, x.index),
              el("td", { class: "pre_packets" + (pr ? " moving" : "") }, fmt(x.pre_packets)),
              el("td", {}, fmt(x.pre_bytes)), el("td", { class: "post_packets" },
                                                 fmt(x.post_packets)),
              el("td", {}, fmt(x.post_bytes)), el("td", {}, fmt(pr)), el("td", {}, fmt(br)),
              el("td", {}, fmt(qr)), el("td", {}, spark(k + "/pre_packets")));
  });
  box.append(el("h4", {}, "stats"), table(["index", "pre pkts", "pre bytes", "post pkts",
    "post bytes", "pre pkt/s", "pre B/s", "post pkt/s", "pre pkt/s plot"], st));
  box.append(el("h4", {}, "meta-interfaces"), table(
    ["mi", "ifn", { name: "endpoint", l: true }, "reserved kb/s"],
    fp.meta_ifs.map(m => el("tr", {}, el("td", {}, m.mi), el("td", {}, m.ifn),
                            el("td", { class: "l" }, `${m.addr}:${m.port}`),
                            el("td", {}, fmt(m.bw_kbps))))));
  box.append(el("h4", {}, "queues"), table(["qid", "meta-if", "threshold", "kb/s", "length"],
    fp.queues.map(q => el("tr", {}, el("td", {}, q.qid), el("td", {}, q.mi ?? "–"),
                          el("td", {}, q.threshold), el("td", {}, fmt(q.bw_kbps)),
                          el("td", { class: "qlen" }, fmt(q.length))))));
  box.append(el("h4", {}, "filters"), table(
    ["fid", "type", { name: "key", l: true }, { name: "mask", l: true },
     { name: "result", l: true }],
    fp.filters.map(f => el("tr", { "data-filter": `${id}/${f.fid}` }, el("td", {}, f.fid),
                           el("td", {}, f.type), el("td", { class: "l" }, filterText(f.key)),
                           el("td", { class: "l" }, filterText(f.mask)),
                           el("td", { class: "l" }, filterText(f.result))))));
  return box;
}

function renderSlices(s, t) {
  const out = [];
  for (const n of s.nodes) {
    for (const sl of n.slices) {
      const box = el("div", { class: "slice", "data-slice": `${n.name}/${sl.name}` });
      box.append(el("h3", {}, `slice ${sl.name} on ${n.name}`,
                    el("small", {}, `  data ${sl.data_addr}, management ${sl.mgmt_addr}, `
                       + `LC port ${sl.lc_port}`)));
      for (const fp of sl.fastpaths) box.append(renderFastpath(n.name, sl, fp, t));
      if (!sl.fastpaths.length) box.append(el("div", { class: "empty" }, "no fastpath"));
      box.append(el("h4", {}, "endpoints"), table(["eid", "ifn", { name: "forwarded", l: true },
        "slice port"], sl.endpoints.map(e => el("tr", {}, el("td", {}, e.eid),
          el("td", {}, e.ifn), el("td", { class: "l" }, `${e.proto === 17 ? "udp" : "tcp"} `
                                  + `${e.addr}:${e.port}`), el("td", {}, e.slice_port)))));
      box.append(el("h4", {}, "periodic jobs"), table(["pid", "fastpath", "index", "every ms",
        "size", { name: "model", l: true }], sl.periodic.map(p => el("tr", {},
          el("td", {}, p.pid), el("td", {}, p.fpid), el("td", {}, p.index),
          el("td", {}, p.interval), el("td", {}, p.size), el("td", { class: "l" }, p.model)))));
      out.push(box);
    }
  }
  if (!out.length) out.push(el("div", { class: "empty" }, "no slices"));
  document.getElementById("slices").replaceChildren(...out);
}

async function renderTopology(key) {
  if (key === pictureKey) return;
  pictureKey = key;
  const box = document.getElementById("topology");
  const rep = await fetch("/topology.svg?slices=" + encodeURIComponent(key));
  if (rep.ok) {
    box.innerHTML = await rep.text();       // our own SVG, drawn by Graphviz
  } else {
    const body = await rep.json().catch(() => ({ message: rep.statusText }));
    box.replaceChildren(el("div", { class: "empty" }, body.message));
  }
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const rep = await fetch("/state.json", { cache: "no-store" });
    if (!rep.ok) throw new Error(`HTTP ${rep.status}`);
    const s = await rep.json();
    const t = s.time;
    document.getElementById("testbed").textContent = s.testbed;
    renderSwitches(s);
    renderDrops(s, t);
    renderApi(s, t);
    renderSlices(s, t);
    drawSparks();
    await renderTopology(s.picture_slices);
    previous = s;
    status.className = "";
    status.textContent = `updated ${new Date(t * 1000).toLocaleTimeString()} · read `
      + `${s.cost.p4runtime} P4Runtime + ${s.cost.thrift} Thrift in `
      + `${(s.cost.seconds * 1000).toFixed(0)} ms` + (s.errors.length ? ` · ${s.errors.join("; ")}`
      : "");
  } catch (e) {
    status.className = "error";
    status.textContent = `no answer from the controller: ${e.message}`;
  }
  setTimeout(poll, POLL_MS);
}

poll();
