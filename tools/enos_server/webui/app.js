// The local EnOS server's page: devices, point charts (uPlot) with CSV export, and the
// decoded message log. Data comes from /api/* (tools/enos_server/web.py); everything a device
// sent is put into the page as text (textContent), never as HTML.
"use strict";

const LOG_ROWS_MAX = 2000;
const DEVICE_POLL_MS = 2000;
const LOG_POLL_MS = 1000;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

const state = {
  tab: "devices",
  devices: [],
  pointsDevice: "",       // "pk/dk" shown on the Points tab
  pointsSeen: -1,         // the device's point count when its charts were drawn
  reload: false,
  charts: [],             // {name, plot}
  zoomed: false,          // a chart is zoomed in by dragging
  useRange: false,        // the charts show the From/To range, not the whole history
  loading: null,          // the loadPoints() under way
  logSince: 0,
  logFilter: "",
};
// For the browser tests and the curious: the charts, the last render's duration.
window.enos = { state, timings: {} };

const $ = (sel) => document.querySelector(sel);

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function splitDevice(key) {
  const i = key.indexOf("/");
  return { pk: key.slice(0, i), dk: key.slice(i + 1) };
}

function deviceQuery(key) {
  const d = splitDevice(key);
  return "pk=" + encodeURIComponent(d.pk) + "&dk=" + encodeURIComponent(d.dk);
}

function pad(n, w) { return String(n).padStart(w || 2, "0"); }

function clock(t) {
  const d = new Date(t * 1000);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." +
    pad(d.getMilliseconds(), 3);
}

function when(t) { return t ? new Date(t * 1000).toLocaleString() : ""; }

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return when(t);
}

// --- tabs ---

function showTab(name) {
  if (!["devices", "points", "log"].includes(name)) name = "devices";
  state.tab = name;
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + name;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.tab === name);
  }
  if (name === "points") loadPoints();
}

// --- devices ---

async function pollDevices() {
  try {
    const data = await getJSON("/api/devices");
    state.devices = data.devices;
    const s = data.server;
    $("#server-info").textContent = s.coap + (s.coaps ? "  ·  " + s.coaps : "");
    if (!s.vendor) {
      $("#points-status").textContent =
        "The chart library is missing: run `make deps` (npm ci) and reload.";
    }
    renderDevices();
    fillDeviceSelects();
    const cur = state.devices.find((d) => d.pk + "/" + d.dk === state.pointsDevice);
    if (state.tab === "points" && cur && cur.points !== state.pointsSeen && !state.zoomed) {
      loadPoints();
    }
  } catch (e) {
    $("#server-info").textContent = "server unreachable (" + e.message + ")";
  }
}

function commandsText(c) {
  const parts = [];
  for (const k of ["queued", "announced", "delivered", "replied"]) {
    if (c[k]) parts.push(c[k] + " " + k);
  }
  return parts.join(", ") || "–";
}

function renderDevices() {
  const body = $("#device-table tbody");
  body.replaceChildren();
  for (const d of state.devices) {
    const key = d.pk + "/" + d.dk;
    const stateCell = d.last_seen
      ? el("span", { class: d.online ? "pill online" : "pill offline",
                     title: d.offline_at ? "offline after " + when(d.offline_at) : "" },
           d.online ? "online" : "offline")
      : el("span", { class: "pill never" }, "never connected");
    const row = el("tr", { class: "device", dataset: { device: key } },
      el("td", { class: "c-device" }, key),
      el("td", { class: "c-state" }, stateCell),
      el("td", { class: "c-mode" }, d.mode || "–"),
      el("td", { class: "c-lifetime" }, d.lifetime ? d.lifetime + " s" : "–"),
      el("td", { class: "c-seen", title: when(d.last_seen) }, ago(d.last_seen)),
      el("td", { class: "c-points num" },
         d.points + (d.point_names ? " (" + d.point_names + ")" : "")),
      el("td", { class: "c-resends num" }, d.resends),
      el("td", { class: "c-rejected num" }, d.rejected),
      el("td", { class: "c-dead num", title: "not reported by the device yet" },
         d.dead_letters === null ? "–" : d.dead_letters),
      el("td", { class: "c-commands" }, commandsText(d.commands)),
      el("td", { class: "c-auth" }, d.auth));
    row.addEventListener("click", () => {
      selectPointsDevice(key);
      location.hash = "#points";
    });
    body.append(row);
  }
}

function fillDeviceSelects() {
  const keys = state.devices.map((d) => d.pk + "/" + d.dk);
  for (const [sel, first] of [["#points-device", null], ["#log-device", "all devices"]]) {
    const s = $(sel);
    const want = (first ? [""] : []).concat(keys);
    const have = Array.from(s.options).map((o) => o.value);
    if (want.join("\n") === have.join("\n")) continue;
    const value = s.value;
    s.replaceChildren(...want.map((k) => el("option", { value: k }, k || first)));
    s.value = want.includes(value) ? value : want[0] || "";
  }
  if (!state.pointsDevice) {
    const first = state.devices.find((d) => d.points > 0) || state.devices[0];
    if (first) selectPointsDevice(first.pk + "/" + first.dk);
  }
}

// --- points ---

function selectPointsDevice(key) {
  if (key !== state.pointsDevice) {
    state.pointsDevice = key;
    state.pointsSeen = -1;
    state.zoomed = false;
    state.useRange = false;
    setRange(null, null);
  }
  $("#points-device").value = key;
  if (state.tab === "points") loadPoints();
}

function toLocalInput(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
    pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

function fromLocalInput(text) {
  return text ? new Date(text).getTime() : null;
}

function setRange(fromMs, toMs) {
  $("#range-from").value = toLocalInput(fromMs === null ? null : Math.floor(fromMs / 1000) * 1000);
  $("#range-to").value = toLocalInput(toMs === null ? null : Math.ceil(toMs / 1000) * 1000);
  updateCsvLink();
}

function rangeQuery() {
  const f = fromLocalInput($("#range-from").value);
  const t = fromLocalInput($("#range-to").value);
  return (f !== null ? "&from=" + f : "") + (t !== null ? "&to=" + (t + 999) : "");
}

// The export links follow the range fields: the whole history when they are empty.
function updateCsvLink() {
  const a = $("#csv-all");
  if (!state.pointsDevice) { a.removeAttribute("href"); return; }
  const base = "/api/points.csv?" + deviceQuery(state.pointsDevice) + rangeQuery();
  a.href = base;
  for (const link of document.querySelectorAll("#point-list a.csv")) {
    link.href = base + "&name=" + encodeURIComponent(link.dataset.point);
  }
}

// One load at a time; a request during a load runs once the load is over.
async function loadPoints() {
  if (state.loading) {
    state.reload = true;
    return state.loading;
  }
  state.loading = drawPoints();
  try {
    await state.loading;
  } catch (e) {
    $("#points-status").textContent = e.message;
  } finally {
    state.loading = null;
  }
  if (state.reload) {
    state.reload = false;
    await loadPoints();
  }
}

async function drawPoints() {
  const key = state.pointsDevice;
  if (!key || typeof uPlot === "undefined") return;
  const started = performance.now();
  const q = deviceQuery(key) + (state.useRange ? rangeQuery() : "");
  const status = $("#points-status");
  status.textContent = "loading…";
  const dev = state.devices.find((d) => d.pk + "/" + d.dk === key);
  const names = await getJSON("/api/points?" + deviceQuery(key));
  const series = await Promise.all(names.filter((p) => p.numeric).map((p) =>
    getJSON("/api/series?" + q + "&name=" + encodeURIComponent(p.name))));
  if (key !== state.pointsDevice) return;
  for (const c of state.charts) c.plot.destroy();
  state.charts = [];
  const list = $("#point-list");
  list.replaceChildren();
  let total = 0;
  names.forEach((p, i) => {
    const s = series.find((x) => x.name === p.name);
    const csv = el("a", { class: "csv", dataset: { point: p.name }, download: "" }, "CSV");
    const head = el("h3", {}, p.name + " ",
      el("span", { class: "meta" },
         p.count + " values, latest " + JSON.stringify(p.latest) + " · "), csv);
    const card = el("div", { class: "point", dataset: { point: p.name } }, head);
    list.append(card);
    if (!s) {
      card.append(el("p", { class: "hint" }, "Not numeric: the values are in the CSV."));
      return;
    }
    if (s.skipped) {
      card.append(el("p", { class: "hint" },
                     s.skipped + " values that are not numbers are left out of the chart."));
    }
    total += s.t.length;
    const box = el("div", { class: "chart" });
    card.append(box);
    const plot = new uPlot(chartOptions(p.name, COLORS[i % COLORS.length], box),
                           [s.t.map((ms) => ms / 1000), s.v], box);
    state.charts.push({ name: p.name, plot });
  });
  if (!names.length) list.append(el("p", { class: "hint" }, "No measurement points yet."));
  state.pointsSeen = dev ? dev.points : -1;
  state.zoomed = false;
  // Measured after the browser has laid out and painted the charts.
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const ms = performance.now() - started;
  window.enos.timings.points = { ms, values: total, charts: state.charts.length };
  status.textContent = total + " values in " + state.charts.length + " charts, drawn in " +
    Math.round(ms) + " ms";
  updateCsvLink();
}

function chartOptions(name, color, box) {
  return {
    width: Math.max(300, box.clientWidth || 900),
    height: 220,
    cursor: { drag: { x: true, y: false }, sync: { key: "points" } },
    scales: { x: { time: true } },
    series: [{}, { label: name, stroke: color, width: 1.5, points: { show: false } }],
    axes: [{}, { size: 60 }],
    hooks: { setScale: [(u, key) => { if (key === "x") zoomed(u); }] },
  };
}

let syncing = false;

function zoomed(u) {
  if (syncing) return;
  const { min, max } = u.scales.x;
  if (min === null || max === null) return;
  syncing = true;
  for (const c of state.charts) {
    if (c.plot !== u) c.plot.setScale("x", { min, max });
  }
  syncing = false;
  const full = u.data[0].length ? [u.data[0][0], u.data[0][u.data[0].length - 1]] : [min, max];
  state.zoomed = min > full[0] || max < full[1];
  if (state.zoomed) setRange(min * 1000, max * 1000);
  else if (!state.useRange) setRange(null, null);
}

// --- message log ---

function logFilterKey() {
  return $("#log-device").value;
}

async function pollLog() {
  if ($("#log-pause").checked) return;
  const filter = logFilterKey();
  if (filter !== state.logFilter) {
    state.logFilter = filter;
    state.logSince = 0;
    $("#log-table tbody").replaceChildren();
  }
  let data;
  try {
    data = await getJSON("/api/log?since=" + state.logSince + "&limit=" + LOG_ROWS_MAX +
                         (filter ? "&device=" + encodeURIComponent(filter) : ""));
  } catch (e) {
    $("#log-status").textContent = e.message;
    return;
  }
  if (filter !== state.logFilter) return;
  const body = $("#log-table tbody");
  for (const e of data.entries) {
    if (e.seq <= state.logSince) continue;
    body.append(...logRows(e));
    state.logSince = e.seq;
  }
  while (body.rows.length > 2 * LOG_ROWS_MAX) body.deleteRow(0);
  applyKindFilter();
  $("#log-status").textContent = data.last + " datagrams logged" +
    (data.oldest > 1 ? " (the oldest " + (data.oldest - 1) + " dropped)" : "");
}

function applyKindFilter() {
  const show = { coap: $("#log-coap").checked, dtls: $("#log-dtls").checked, error: true };
  for (const r of document.querySelectorAll("#log-table tr.entry")) {
    const visible = show[r.dataset.kind];
    r.hidden = !visible;
    if (!visible && r.nextSibling && r.nextSibling.classList.contains("detail")) {
      r.nextSibling.hidden = true;
    }
  }
}

function payloadBrief(p) {
  if (!p || p.kind === "empty") return "";
  const t = p.kind === "json" ? p.text.replace(/\s*\n\s*/g, "") : p.text;
  return (t.length > 60 ? t.slice(0, 60) + "…" : t) + " (" + p.size + " B)";
}

function logRows(e) {
  const dir = e.dir === "up" ? "to server" : "to device";
  const cells = [
    el("td", { class: "c-seq num" }, e.seq),
    el("td", { class: "c-time" }, clock(e.t)),
    el("td", { class: "c-device" }, e.device || "–"),
    el("td", { class: "c-dir " + e.dir }, dir),
    el("td", { class: "c-transport" }, e.transport || ""),
  ];
  let detail;
  if (e.kind === "coap" && !e.coap.error) {
    const c = e.coap;
    const topic = c.options.find((o) => o.number === 2100);
    const path = el("td", { class: "c-path" }, c.path || "");
    if (!c.path && c.request_path) {
      path.append(el("span", { class: "answer", title: "answer to" }, "↩ " + c.request_path));
    }
    if (topic) path.append(el("span", { class: "command" }, " command: " + topic.value));
    cells.push(el("td", { class: "c-type" }, c.type),
      el("td", { class: "c-code code-" + c.code[0] },
         c.code + (c.code_number ? " " + c.code_name : "")),
      el("td", { class: "c-mid num" }, c.mid),
      el("td", { class: "c-token" }, c.token),
      path,
      el("td", { class: "c-payload" }, payloadBrief(c.payload)));
    detail = coapDetail(c);
  } else if (e.kind === "dtls") {
    cells.push(el("td", { class: "c-type" }, "DTLS"),
      el("td", { class: "c-code" }, e.dtls.event || ""),
      el("td", {}), el("td", {}),
      el("td", { class: "c-path" }, e.dtls.summary),
      el("td", { class: "c-payload" }, e.dtls.size + " B"));
    detail = el("pre", {}, JSON.stringify(e.dtls.records, null, 2));
  } else {
    cells.push(el("td", { class: "c-type" }, "?"), el("td", { colSpan: 5, class: "c-path" },
      e.error || (e.coap && e.coap.error) || ""));
  }
  const row = el("tr", { class: "entry " + e.kind, dataset: { seq: e.seq, kind: e.kind } },
                 ...cells);
  const rows = [row];
  if (detail) {
    const d = el("tr", { class: "detail", hidden: true }, el("td", { colSpan: 11 }, detail));
    row.addEventListener("click", () => { d.hidden = !d.hidden; });
    rows.push(d);
  }
  return rows;
}

function coapDetail(c) {
  const box = el("div", { class: "coap-detail" });
  const opts = el("table", { class: "options" });
  for (const o of c.options) {
    opts.append(el("tr", {}, el("td", {}, o.number), el("td", {}, o.name),
                   el("td", {}, String(o.value))));
  }
  box.append(el("h4", {}, "Options"), c.options.length ? opts : el("p", {}, "none"));
  box.append(el("h4", {}, "Payload (" + c.payload.size + " B, " + c.payload.kind + ")"),
             el("pre", {}, c.payload.text));
  return box;
}

// --- start ---

function start() {
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  $("#points-device").addEventListener("change", (ev) => selectPointsDevice(ev.target.value));
  $("#range-apply").addEventListener("click", () => { state.useRange = true; loadPoints(); });
  $("#range-reset").addEventListener("click", () => {
    state.useRange = false;
    setRange(null, null);
    loadPoints();
  });
  $("#range-from").addEventListener("change", updateCsvLink);
  $("#range-to").addEventListener("change", updateCsvLink);
  $("#log-device").addEventListener("change", pollLog);
  $("#log-coap").addEventListener("change", applyKindFilter);
  $("#log-dtls").addEventListener("change", applyKindFilter);
  showTab(location.hash.slice(1));
  pollDevices();
  pollLog();
  setInterval(pollDevices, DEVICE_POLL_MS);
  setInterval(pollLog, LOG_POLL_MS);
}

start();
