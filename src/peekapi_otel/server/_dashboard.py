"""The live dashboard served at ``/``: one self-contained page that polls ``/api/summary``.

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
<div class="cards" id="totals"></div>

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

<h2>Latest requests</h2>
<div class="scroll">
<table id="latest">
  <thead><tr><th>Time</th><th>Method</th><th>Path</th><th class="num">Status</th>
  <th class="num">ms</th><th>Consumer</th></tr></thead>
  <tbody></tbody>
</table>
</div>

<script>
"use strict";
const REFRESH_MS = %(refresh)d;
const SVG = "http://www.w3.org/2000/svg";
const ANON = "(anonymous)";

const ms = (v) => Number(v).toFixed(2);
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
    ["5xx", t.server_errors], ["Avg ms", ms(t.avg_ms)], ["p95 ms", ms(t.p95_ms)],
    ["Consumers", t.consumers],
  ].map(([label, value]) => {
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

function render(s) {
  renderEmpty(s);
  renderTotals(s.totals);
  document.getElementById("chart-title").textContent = s.timeline_live
    ? "Requests per second (last 60 s)"
    : "Requests per second (the minute up to the newest event, " +
      new Date(s.timeline_end * 1000).toISOString().replace(".000Z", "Z") + ")";
  renderChart(s.timeline);
  fill("endpoints", s.endpoints.map((e) => row([
    [e.method], [e.unmatched ? unmatchedCell(e) : e.path], [e.requests, 1], [e.errors, 1],
    [e.server_errors, 1],
    [pct(e.error_rate), 1], [ms(e.avg_ms), 1], [ms(e.p95_ms), 1],
  ], {"data-endpoint": e.method + " " + e.path})));
  const consumerRows = [];
  for (const c of s.consumers) {
    const name = c.consumer_id === null ? ANON : c.consumer_id;
    for (const e of c.endpoints) {
      consumerRows.push(row([[name], [e.method], [e.path], [e.requests, 1], [e.errors, 1]], {
        "data-consumer": name, "data-endpoint": e.method + " " + e.path,
      }));
    }
  }
  fill("consumers", consumerRows);
  fill("latest", s.latest.map((e) => {
    const tr = row([
      [e.timestamp], [e.method], [e.path], [e.status_code, 1], [ms(e.response_time_ms), 1],
      [e.consumer_id === null ? ANON : e.consumer_id],
    ]);
    if (e.status_code >= 400) tr.className = "err";
    return tr;
  }));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/summary", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    status.className = "";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    // Shown on the page rather than thrown: the ingest may simply be restarting.
    status.className = "error";
    status.textContent = "cannot load /api/summary: " + err.message;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

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
