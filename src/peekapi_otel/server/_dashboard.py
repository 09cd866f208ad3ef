"""The dashboard served at ``/``: one self-contained page.

It polls the view it shows (``/api/summary``, ``/api/endpoint`` or ``/api/consumer``) and
``/api/alerts``, and receives new requests pushed over ``/api/stream`` (EventSource). The
view, range and filters live in the query string, so every view is a link.

Numbers are rendered in fixed formats (latency ``123.45`` ms, error rate ``12.5%``) so
they can be compared with ``peekapi-otel report`` and checked by tests. Event data is
only ever inserted with ``textContent``: paths and consumer ids come from the network.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

REFRESH_MS: Final = 2000

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>peekapi-otel dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330;
         background: #f7f8fa; }
  @media (max-width: 600px) { body { margin: .75rem; } }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  #status { color: #667; font-size: .85rem; }
  #status.error { color: #b00020; }
  .cards { display: flex; flex-wrap: wrap; gap: .75rem; margin-top: 1rem; }
  .card { background: #fff; border: 1px solid #dde1e8; border-radius: 6px;
          padding: .6rem .9rem; min-width: 8rem; }
  .card .label { color: #667; font-size: .8rem; }
  .card .value { font-size: 1.25rem; font-variant-numeric: tabular-nums; }
  /* Wide tables scroll inside their own box, so the page itself never scrolls sideways. */
  .scroll { overflow-x: auto; max-width: 100%%; }
  table { border-collapse: collapse; background: #fff; border: 1px solid #dde1e8;
          min-width: 40rem; }
  th, td { padding: .3rem .7rem; border-bottom: 1px solid #eef0f4; text-align: left; }
  th { background: #eef1f6; font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.err td { color: #b00020; }
  #chart { background: #fff; border: 1px solid #dde1e8; border-radius: 6px;
           display: block; box-sizing: border-box; width: 100%%; max-width: 720px;
           height: auto; }
  details ul { margin: .3rem 0 0; padding-left: 1.2rem; }
  summary { cursor: pointer; white-space: nowrap; }
  #empty { background: #fff; border: 1px solid #dde1e8; border-radius: 6px;
           padding: .6rem .9rem; margin-top: 1rem; }
  #empty pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f1f3f7;
               padding: .5rem; margin: .4rem 0; }
  #controls { display: flex; flex-wrap: wrap; gap: .5rem; margin-top: .75rem;
              align-items: end; }
  #controls label { display: flex; flex-direction: column; font-size: .8rem; color: #667; }
  #controls input, #controls select { font: inherit; padding: .15rem .3rem; max-width: 11rem; }
  #crumbs { margin-top: .75rem; }
  .state-firing td.state { color: #b00020; font-weight: 600; }
  .state-pending td.state { color: #a15c00; }
  .state-ok td.state { color: #1b7f3b; }
  #chart rect { fill: #4a78c2; }
  #chart text { font-size: 10px; fill: #667; }
</style>
</head>
<body>
<h1>peekapi-otel</h1>
<div id="status">loading&hellip;</div>
<div id="empty" hidden>
  <strong>No events yet.</strong> Point an app instrumented with peekapi-otel at this ingest:
  <pre id="empty-env"></pre>
  or send one event by hand:
  <pre id="empty-curl"></pre>
</div>
<div id="controls">
  <label>Range <select id="f-range">
    <option value="">all time</option><option value="15m">last 15 min</option>
    <option value="1h">last hour</option><option value="24h">last 24 h</option>
    <option value="7d">last 7 days</option></select></label>
  <label>Method <input id="f-method" placeholder="any"></label>
  <label>Path <input id="f-path" placeholder="any"></label>
  <label>Status <select id="f-status"><option value="">any</option>
    <option>2xx</option><option>3xx</option><option>4xx</option><option>5xx</option></select></label>
  <label>Consumer <input id="f-consumer" placeholder="any"></label>
  <button id="f-clear" type="button">clear</button>
</div>
<div id="crumbs" hidden><a id="back" href="?">&larr; all endpoints</a>
  <strong id="view-title"></strong></div>
<div class="cards" id="totals"></div>

<section id="endpoint-view" hidden>
<h2>Over time</h2>
<div class="scroll">
<table id="endpoint-series">
  <thead><tr><th>From</th><th class="num">Requests</th><th class="num">2xx</th>
  <th class="num">3xx</th><th class="num">4xx</th><th class="num">5xx</th>
  <th class="num">Avg ms</th><th class="num">p50 ms</th><th class="num">p95 ms</th>
  <th class="num">p99 ms</th></tr></thead>
  <tbody></tbody>
</table>
</div>
<h2>Top consumers</h2>
<div class="scroll">
<table id="top-consumers">
  <thead><tr><th>Consumer</th><th class="num">Requests</th><th class="num">Errors</th></tr></thead>
  <tbody></tbody>
</table>
</div>
</section>

<section id="consumer-view" hidden>
<div id="seen"></div>
<h2>Its endpoints</h2>
<div class="scroll">
<table id="consumer-endpoints">
  <thead><tr><th>Method</th><th>Path</th><th class="num">Requests</th><th class="num">Errors</th>
  </tr></thead>
  <tbody></tbody>
</table>
</div>
<h2>Errors over time</h2>
<div class="scroll">
<table id="consumer-series">
  <thead><tr><th>From</th><th class="num">Requests</th><th class="num">4xx</th>
  <th class="num">5xx</th><th class="num">Error rate</th></tr></thead>
  <tbody></tbody>
</table>
</div>
</section>

<section id="overview">

<h2 id="chart-title">Requests per second (last 60 s)</h2>
<svg id="chart" width="720" height="140" viewBox="0 0 720 140" role="img"
     aria-label="requests per second"></svg>

<h2>Endpoints</h2>
<div class="scroll">
<table id="endpoints">
  <thead><tr><th>Method</th><th>Path</th><th class="num">Requests</th><th class="num">Errors</th>
  <th class="num">5xx</th><th class="num">Error rate</th><th class="num">Avg ms</th>
  <th class="num">p95 ms</th></tr></thead>
  <tbody></tbody>
</table>
</div>

<h2>Consumers</h2>
<div class="scroll">
<table id="consumers">
  <thead><tr><th>Consumer</th><th>Method</th><th>Path</th><th class="num">Requests</th>
  <th class="num">Errors</th></tr></thead>
  <tbody></tbody>
</table>
</div>

</section>

<h2>Live requests <span id="live-status">connecting&hellip;</span></h2>
<div class="scroll">
<table id="stream">
  <thead><tr><th>Time</th><th>Method</th><th>Path</th><th class="num">Status</th>
  <th class="num">ms</th><th>Consumer</th></tr></thead>
  <tbody></tbody>
</table>
</div>

<section id="alerts-box" hidden>
<h2>Alerts</h2>
<div class="scroll">
<table id="alerts">
  <thead><tr><th>Rule</th><th>Kind</th><th>State</th><th class="num">Value</th>
  <th class="num">Threshold</th><th>Window</th><th>Since</th></tr></thead>
  <tbody></tbody>
</table>
</div>
</section>

<section id="latest-box">
<h2>Latest requests</h2>
<div class="scroll">
<table id="latest">
  <thead><tr><th>Time</th><th>Method</th><th>Path</th><th class="num">Status</th>
  <th class="num">ms</th><th>Consumer</th></tr></thead>
  <tbody></tbody>
</table>
</div>
</section>

<script>
"use strict";
const REFRESH_MS = %(refresh)d;
const SVG = "http://www.w3.org/2000/svg";
const ANON = "(anonymous)";

const ms = (v) => v === null || v === undefined ? "\u2014" : Number(v).toFixed(2);
const FILTERS = ["range", "method", "path", "status", "consumer"];
const STREAM_ROWS = 50;
const pct = (v) => Number(v).toFixed(1) + "%%";

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [name, value] of Object.entries(attrs || {})) tr.setAttribute(name, value);
  for (const [text, numeric] of cells) {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text); else td.textContent = String(text);
    if (numeric) td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows) {
  document.querySelector("#" + id + " tbody").replaceChildren(...rows);
}

function renderTotals(t) {
  const cards = [
    ["Requests", t.requests], ["Error rate", pct(t.error_rate)], ["Errors", t.errors],
    ["5xx", t.server_errors], ["Avg ms", t.avg_ms], ["p95 ms", t.p95_ms],
    ["Consumers", t.consumers],
  ].filter(([, value]) => value !== undefined).map(([label, value]) =>
    [label, label.endsWith("ms") ? ms(value) : value]).map(([label, value]) => {
    const card = document.createElement("div");
    card.className = "card";
    const l = document.createElement("div");
    l.className = "label";
    l.textContent = label;
    const v = document.createElement("div");
    v.className = "value";
    v.textContent = String(value);
    card.append(l, v);
    return card;
  });
  document.getElementById("totals").replaceChildren(...cards);
}

// Unmatched groups the user opened stay open across refreshes.
const openGroups = new Set();

function unmatchedCell(e) {
  const details = document.createElement("details");
  const key = e.method + " " + e.unmatched.status_code;
  details.dataset.group = key;
  details.open = openGroups.has(key);
  details.addEventListener("toggle", () => {
    if (details.open) openGroups.add(key); else openGroups.delete(key);
  });
  const summary = document.createElement("summary");
  summary.textContent = e.path;
  const list = document.createElement("ul");
  for (const p of e.unmatched.paths) {
    const li = document.createElement("li");
    li.textContent = p.path + " (" + p.requests + ")";
    list.appendChild(li);
  }
  const more = e.unmatched.distinct_paths - e.unmatched.paths.length;
  if (more > 0) {
    const li = document.createElement("li");
    li.textContent = "and " + more + " more paths";
    list.appendChild(li);
  }
  details.append(summary, list);
  return details;
}

function renderEmpty(s) {
  const box = document.getElementById("empty");
  box.hidden = s.totals.requests > 0;
  if (box.hidden) return;
  const url = location.origin + s.ingest.events_path;
  const key = s.ingest.api_key_required ? "THE-KEY-SERVE-REQUIRES" : "any-key";
  document.getElementById("empty-env").textContent =
    "PEEKAPI_ENDPOINT=" + url + " PEEKAPI_API_KEY=" + key +
    " \\\\\\n  opentelemetry-instrument uvicorn app:app";
  const event = {method: "GET", path: "/hello", status_code: 200, response_time_ms: 12.5,
    request_size: 0, response_size: 42, consumer_id: null, metadata: null,
    timestamp: new Date().toISOString()};
  document.getElementById("empty-curl").textContent =
    "curl -X POST " + url + " -H 'Content-Type: application/json' -H 'x-api-key: " + key +
    "' \\\\\\n  -d '" + JSON.stringify([event]) + "'";
}

function renderChart(timeline) {
  const svg = document.getElementById("chart");
  const w = 720, h = 140, pad = 18;
  const max = Math.max(1, ...timeline.map((p) => p.requests));
  const bw = (w - 2 * pad) / Math.max(1, timeline.length);
  const nodes = timeline.map((p, i) => {
    const r = document.createElementNS(SVG, "rect");
    const bh = (h - 2 * pad) * p.requests / max;
    r.setAttribute("x", (pad + i * bw).toFixed(1));
    r.setAttribute("y", (h - pad - bh).toFixed(1));
    r.setAttribute("width", Math.max(1, bw - 1).toFixed(1));
    r.setAttribute("height", bh.toFixed(1));
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = p.requests + " req, avg " + ms(p.avg_ms) + " ms";
    r.appendChild(tip);
    return r;
  });
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", pad);
  label.setAttribute("y", 12);
  label.textContent = "max " + max + " req/s";
  svg.replaceChildren(label, ...nodes);
}

// The page's state is its query string: view, range and filters.
function params() { return new URLSearchParams(location.search); }

function link(text, changes) {
  const q = params();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) q.delete(k); else q.set(k, v);
  }
  const a = document.createElement("a");
  a.href = "?" + q.toString();
  a.textContent = text;
  a.addEventListener("click", (ev) => { ev.preventDefault(); go(q); });
  return a;
}

function endpointLink(method, path) {
  return link(path, {view: "endpoint", method: method, path: path});
}

function consumerLink(id) {
  return link(id === null ? ANON : id,
              {view: "consumer", consumer: id === null ? ANON : id});
}

function go(q) {
  history.pushState(null, "", "?" + q.toString());
  showControls();
  restartStream();
  refresh();
}

function showControls() {
  const q = params();
  for (const name of FILTERS) document.getElementById("f-" + name).value = q.get(name) || "";
}

function apiQuery() {
  const q = params();
  const out = new URLSearchParams();
  for (const name of FILTERS) if (q.get(name)) out.set(name, q.get(name));
  return out.toString();
}

function when(second) {
  return new Date(second * 1000).toISOString().replace(".000Z", "Z");
}

function renderView(view, s) {
  document.getElementById("overview").hidden = view !== "";
  document.getElementById("endpoint-view").hidden = view !== "endpoint";
  document.getElementById("consumer-view").hidden = view !== "consumer";
  document.getElementById("crumbs").hidden = view === "";
  const q = params();
  if (view === "endpoint") {
    document.getElementById("view-title").textContent =
      "Endpoint " + q.get("method") + " " + q.get("path");
    renderTotals(s.totals);
    fill("endpoint-series", s.series.map((p) => row([
      [when(p.start)], [p.requests, 1], [p.statuses["2xx"], 1], [p.statuses["3xx"], 1],
      [p.statuses["4xx"], 1], [p.statuses["5xx"], 1], [ms(p.avg_ms), 1], [ms(p.p50_ms), 1],
      [ms(p.p95_ms), 1], [ms(p.p99_ms), 1],
    ], {"data-start": p.start})));
    fill("top-consumers", s.top_consumers.map((c) => row([
      [consumerLink(c.consumer_id)], [c.requests, 1], [c.errors, 1],
    ], {"data-top-consumer": c.consumer_id === null ? ANON : c.consumer_id})));
  } else if (view === "consumer") {
    document.getElementById("view-title").textContent =
      "Consumer " + (s.consumer_id === null ? ANON : s.consumer_id);
    renderTotals({requests: s.requests, errors: s.errors, error_rate: s.error_rate});
    document.getElementById("seen").textContent = s.first_seen === null
      ? "never seen"
      : "first seen " + when(s.first_seen) + ", last seen " + when(s.last_seen);
    fill("consumer-endpoints", s.endpoints.map((e) => row([
      [e.method], [endpointLink(e.method, e.path)], [e.requests, 1], [e.errors, 1],
    ], {"data-consumer-endpoint": e.method + " " + e.path})));
    fill("consumer-series", s.series.filter((p) => p.requests).map((p) => row([
      [when(p.start)], [p.requests, 1], [p.statuses["4xx"], 1], [p.statuses["5xx"], 1],
      [pct(p.error_rate), 1],
    ], {"data-start": p.start})));
  }
}

function render(s) {
  renderEmpty(s);
  renderTotals(s.totals);
  document.getElementById("chart-title").textContent = s.timeline_live
    ? "Requests per second (last 60 s)"
    : "Requests per second (the minute up to the newest event, " +
      new Date(s.timeline_end * 1000).toISOString().replace(".000Z", "Z") + ")";
  renderChart(s.timeline);
  fill("endpoints", s.endpoints.map((e) => row([
    [e.method], [e.unmatched ? unmatchedCell(e) : endpointLink(e.method, e.path)],
    [e.requests, 1], [e.errors, 1],
    [e.server_errors, 1],
    [pct(e.error_rate), 1], [ms(e.avg_ms), 1], [ms(e.p95_ms), 1],
  ], {"data-endpoint": e.method + " " + e.path})));
  const consumerRows = [];
  for (const c of s.consumers) {
    const name = c.consumer_id === null ? ANON : c.consumer_id;
    for (const e of c.endpoints) {
      consumerRows.push(row([[consumerLink(c.consumer_id)], [e.method], [e.path],
                             [e.requests, 1], [e.errors, 1]], {
        "data-consumer": name, "data-endpoint": e.method + " " + e.path,
      }));
    }
  }
  fill("consumers", consumerRows);
  fillLatest(s.latest);
}

let timer = null;

function ruleLink(r) {
  // The rule's own link names its filters and a range covering its window.
  const q = new URL(r.url, location.href).searchParams;
  const a = document.createElement("a");
  a.href = "?" + q.toString();
  a.textContent = r.name;
  a.addEventListener("click", (ev) => { ev.preventDefault(); go(q); });
  return a;
}

function renderAlerts(a) {
  const box = document.getElementById("alerts-box");
  box.hidden = !a.enabled;
  if (!a.enabled) return;
  fill("alerts", a.rules.map((r) => {
    const tr = row([
      [ruleLink(r)],
      [r.kind], [r.state], [r.value === null ? "\u2014" : Number(r.value).toFixed(2), 1],
      [r.threshold, 1], [r.window], [r.activeSince || ""],
    ], {"data-rule": r.name, "data-state": r.state});
    tr.className = "state-" + r.state;
    tr.children[2].className = "state";
    return tr;
  }));
}

async function load(path) {
  const response = await fetch(path, {cache: "no-store"});
  if (!response.ok) {
    let reason = "HTTP " + response.status;
    try { reason = (await response.json()).error || reason; } catch (e) { /* not JSON */ }
    throw new Error(reason);
  }
  return response.json();
}

async function refresh() {
  clearTimeout(timer);
  const status = document.getElementById("status");
  const view = params().get("view") || "";
  const query = apiQuery();
  try {
    if (view === "") {
      render(await load("/api/summary?" + query));
    } else {
      const [s, latest] = await Promise.all([
        load("/api/" + view + "?" + query), load("/api/summary?" + query)]);
      renderEmpty(latest);
      fillLatest(latest.latest);
      renderView(view, s);
    }
    if (view === "") renderView("", null);
    renderAlerts(await load("/api/alerts"));
    status.className = "";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    // Shown on the page rather than thrown: the ingest may simply be restarting.
    status.className = "error";
    status.textContent = "cannot load the " + (view || "summary") + " view: " + err.message;
  } finally {
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

function requestRow(e) {
  const tr = row([
    [e.timestamp], [e.method], [e.path], [e.status_code, 1], [ms(e.response_time_ms), 1],
    [e.consumer_id === null ? ANON : e.consumer_id],
  ]);
  if (e.status_code >= 400) tr.className = "err";
  return tr;
}

function fillLatest(latest) { fill("latest", latest.map(requestRow)); }

// Live requests: pushed by the ingest as they are stored, filtered like the views.
let stream = null;

function restartStream() {
  if (stream !== null) stream.close();
  document.querySelector("#stream tbody").replaceChildren();
  const live = document.getElementById("live-status");
  stream = new EventSource("/api/stream?" + apiQuery());
  stream.onopen = () => { live.textContent = "(live)"; };
  stream.onmessage = (msg) => {
    // One message per stored batch: its events, oldest first.
    const tbody = document.querySelector("#stream tbody");
    const events = JSON.parse(msg.data).slice(-STREAM_ROWS);
    tbody.prepend(...events.reverse().map(requestRow));
    while (tbody.children.length > STREAM_ROWS) tbody.lastChild.remove();
  };
  stream.onerror = () => {
    live.textContent = "(reconnecting\u2026)";
    // EventSource retries by itself unless the server refused the stream outright.
    if (stream.readyState === EventSource.CLOSED) setTimeout(restartStream, 2000);
  };
}

for (const name of FILTERS) {
  document.getElementById("f-" + name).addEventListener("change", (ev) => {
    const q = params();
    if (ev.target.value) q.set(name, ev.target.value); else q.delete(name);
    go(q);
  });
}
document.getElementById("f-clear").addEventListener("click", () => go(new URLSearchParams()));
document.getElementById("back").addEventListener("click", (ev) => {
  ev.preventDefault();
  const q = params();
  for (const k of ["view", "method", "path", "consumer"]) q.delete(k);
  go(q);
});
window.addEventListener("popstate", () => { showControls(); restartStream(); refresh(); });

showControls();
restartStream();
refresh();
</script>
</body>
</html>
""" % {"refresh": REFRESH_MS}  # noqa: UP031 (the page is full of braces; % keeps it readable)


def _inline_hash(tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.DOTALL)
    assert match is not None, tag
    digest = hashlib.sha256(match.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CSP: Final = (
    "default-src 'none'; "
    f"script-src {_inline_hash('script')}; "
    f"style-src {_inline_hash('style')}; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: only its own inline script and style may run."""
