// otel-llm dashboard: plain JavaScript and SVG, no build step, no external resources.
// Reads /api/v1 (relative URLs, so the page also works behind a path prefix) and redraws
// every 30 s. Text from the API only ever goes into textContent / attributes, never HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 30000;
  const TOKEN_KEY = "otel-llm-token";
  const $ = (id) => document.getElementById(id);
  let timer = null;

  // --- formatting ---------------------------------------------------------------------------
  const fmtInt = (n) => (n == null ? "–" : Math.round(n).toLocaleString("en-US"));
  const fmtUsd = (n) => {
    if (n == null) return "–";
    if (n === 0) return "$0";
    if (Math.abs(n) >= 100) return "$" + n.toLocaleString("en-US", { maximumFractionDigits: 0 });
    if (Math.abs(n) >= 1) return "$" + n.toFixed(2);
    return "$" + n.toPrecision(2);
  };
  const fmtMs = (n) => (n == null ? "–" : n >= 10000 ? (n / 1000).toFixed(1) + " s" : Math.round(n) + " ms");
  const fmtPct = (n) => (n == null ? "–" : (n >= 99.95 || n === 0 ? n.toFixed(0) : n.toFixed(1)) + "%");
  const compact = (n) => {
    if (n >= 1e9) return (n / 1e9).toFixed(1) + "B";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n));
  };
  const utc = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "") : "");

  // --- DOM helpers ------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    return node;
  }
  function tip(node, text) {
    node.appendChild(svgEl("title", {}, text));
    return node;
  }
  // Drawn at the container's own width, so 11px text stays 11px on any screen.
  function widthOf(container, fallback) {
    return Math.max(320, Math.round(container.clientWidth || fallback));
  }
  function empty(container, text) {
    container.replaceChildren(el("div", { class: "empty" }, text || "no data in this window"));
  }

  // --- charts -----------------------------------------------------------------------------
  // Vertical bars over time: points = [{label, value, tip}].
  function columnChart(container, points, format) {
    if (!points.length || points.every((p) => !p.value)) return empty(container);
    const W = widthOf(container, 720), H = 220, L = 56, R = 10, T = 12, B = 26;
    const max = Math.max(...points.map((p) => p.value || 0)) || 1;
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    axes(svg, W, H, L, R, T, B, max, format);
    const step = (W - L - R) / points.length;
    const width = Math.max(1, step * 0.8);
    points.forEach((p, i) => {
      const h = ((p.value || 0) / max) * (H - T - B);
      const x = L + i * step + (step - width) / 2;
      svg.appendChild(tip(svgEl("rect", { class: "bar", x, y: H - B - h, width, height: h }), p.tip));
    });
    xLabels(svg, points, L, step, H);
    container.replaceChildren(svg);
  }

  // A line over time, gaps where a bucket has no value.
  function lineChart(container, points, format) {
    const values = points.map((p) => p.value).filter((v) => v != null);
    if (!values.length) return empty(container);
    const W = widthOf(container, 720), H = 200, L = 56, R = 10, T = 12, B = 26;
    const max = Math.max(...values) || 1;
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    axes(svg, W, H, L, R, T, B, max, format);
    const step = (W - L - R) / points.length;
    let path = "";
    let pen = false;
    points.forEach((p, i) => {
      if (p.value == null) { pen = false; return; }
      const x = L + i * step + step / 2;
      const y = H - B - (p.value / max) * (H - T - B);
      path += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      pen = true;
      svg.appendChild(tip(svgEl("circle", { class: "dot", cx: x, cy: y, r: 2.5 }), p.tip));
    });
    svg.insertBefore(svgEl("path", { class: "line", d: path }), svg.firstChild);
    xLabels(svg, points, L, step, H);
    container.replaceChildren(svg);
  }

  function axes(svg, W, H, L, R, T, B, max, format) {
    for (const f of [0, 0.5, 1]) {
      const y = H - B - f * (H - T - B);
      svg.appendChild(svgEl("line", { class: "axis", x1: L, x2: W - R, y1: y, y2: y }));
      svg.appendChild(svgEl("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, format(max * f)));
    }
  }

  function xLabels(svg, points, L, step, H) {
    const every = Math.max(1, Math.ceil(points.length / 8));
    points.forEach((p, i) => {
      if (i % every) return;
      svg.appendChild(svgEl("text", { x: L + i * step + step / 2, y: H - 8, "text-anchor": "middle" }, p.label));
    });
  }

  // Horizontal bars: rows = [{label, parts: [{value, cls, tip}]}], sorted by the caller.
  function barList(container, rows, format) {
    rows = rows.filter((r) => r.parts.some((p) => p.value > 0)).slice(0, 10);
    if (!rows.length) return empty(container);
    const W = widthOf(container, 640), row = 26, L = 220, R = 80, H = rows.length * row + 6;
    const max = Math.max(...rows.map((r) => r.parts.reduce((s, p) => s + p.value, 0))) || 1;
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    rows.forEach((r, i) => {
      const y = 3 + i * row;
      const name = r.label.length > 34 ? r.label.slice(0, 33) + "…" : r.label;
      svg.appendChild(tip(svgEl("text", { class: "label", x: L - 8, y: y + 15, "text-anchor": "end" }, name), r.label));
      let x = L;
      let total = 0;
      for (const p of r.parts) {
        const w = (p.value / max) * (W - L - R);
        svg.appendChild(tip(svgEl("rect", { class: "bar " + (p.cls || ""), x, y: y + 3, width: Math.max(w, 0.5), height: row - 8 }), p.tip));
        x += w;
        total += p.value;
      }
      svg.appendChild(svgEl("text", { x: x + 6, y: y + 15 }, format(total)));
    });
    container.replaceChildren(svg);
  }

  // --- API ----------------------------------------------------------------------------------
  class Unauthorized extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch("api/v1/" + path, { headers });
    if (response.status === 401) throw new Unauthorized("a bearer token is needed");
    const body = await response.json();
    if (!response.ok) {
      const message = body && body.error ? body.error.message : response.statusText;
      throw new Error(path.split("?")[0] + ": " + message);
    }
    return body;
  }

  function query(extra) {
    const params = new URLSearchParams({ days: $("days").value, ...(extra || {}) });
    if ($("project").value) params.set("project_id", $("project").value);
    return params.toString();
  }

  function intervalFor(days) {
    return days <= 2 ? "hour" : days <= 31 ? "day" : "week";
  }

  // --- rendering ----------------------------------------------------------------------------
  function renderCards(summary, overview) {
    const cards = [
      ["Calls", fmtInt(summary.total_calls)],
      ["Tokens", compact(summary.total_tokens)],
      ["Cost", fmtUsd(summary.total_cost_usd)],
      ["Avg latency", fmtMs(summary.avg_inference_time_ms)],
      ["p95 latency", fmtMs(summary.p95_inference_time_ms)],
      ["Success rate", fmtPct(summary.success_rate)],
      ["Cost today", fmtUsd(overview.today.cost_usd)],
      ["Cost this month", fmtUsd(overview.month.cost_usd)],
    ];
    $("cards").replaceChildren(...cards.map(([label, value]) => {
      const card = el("div", { class: "card" });
      card.append(el("div", { class: "label" }, label), el("div", { class: "value" }, value));
      return card;
    }));
  }

  function renderProjects(overview) {
    const select = $("project");
    const current = select.value;
    const names = overview.projects.map((p) => p.project_id).filter((p) => p);
    if (current && !names.includes(current)) names.push(current);
    select.replaceChildren(el("option", { value: "" }, "all projects"),
      ...names.sort().map((name) => el("option", { value: name }, name)));
    select.value = current;
  }

  function renderTimeline(timeline) {
    const interval = timeline.interval;
    const label = (iso) => interval === "hour" ? iso.slice(11, 16) : iso.slice(5, 10);
    $("interval-label").textContent = "per " + interval + " (UTC)";
    columnChart($("chart-cost"), timeline.buckets.map((b) => ({
      label: label(b.start), value: b.cost_usd,
      tip: `${utc(b.start)}: ${fmtUsd(b.cost_usd)}, ${fmtInt(b.calls)} calls, ${fmtInt(b.errors)} errors`,
    })), fmtUsd);
    lineChart($("chart-latency"), timeline.buckets.map((b) => ({
      label: label(b.start), value: b.avg_inference_time_ms,
      tip: `${utc(b.start)}: ${fmtMs(b.avg_inference_time_ms)} average over ${fmtInt(b.calls)} calls`,
    })), fmtMs);
  }

  function renderModels(byProvider) {
    const name = (p) => (p.provider || "?") + " / " + (p.model || "?");
    const byCost = [...byProvider.providers].sort((a, b) => b.cost_usd - a.cost_usd);
    barList($("chart-model-cost"), byCost.map((p) => ({
      label: name(p), parts: [{ value: p.cost_usd, tip: `${name(p)}: ${fmtUsd(p.cost_usd)} over ${fmtInt(p.calls)} calls` }],
    })), fmtUsd);
    const byTokens = [...byProvider.providers].sort((a, b) => b.total_tokens - a.total_tokens);
    barList($("chart-model-tokens"), byTokens.map((p) => ({
      label: name(p),
      parts: [
        { value: p.input_tokens, cls: "in", tip: `${name(p)}: ${fmtInt(p.input_tokens)} input tokens` },
        { value: p.output_tokens, cls: "out", tip: `${name(p)}: ${fmtInt(p.output_tokens)} output tokens` },
      ],
    })), compact);
  }

  function renderErrors(errors) {
    barList($("chart-errors"), errors.by_category.map((c) => ({
      label: c.category, parts: [{ value: c.rate, cls: "bad", tip: `${c.category}: ${fmtInt(c.count)} failed calls (${fmtPct(c.rate)})` }],
    })), fmtPct);
  }

  function renderAlerts(alerts) {
    const body = $("alerts").tBodies[0];
    if (!alerts.enabled || !alerts.alerts.length) {
      const row = el("tr");
      row.appendChild(el("td", { colspan: "7", class: "muted" }, alerts.enabled ? "No active alerts." : "Alerting is not configured."));
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...alerts.alerts.map((a) => {
      const row = el("tr");
      const sev = el("td"); sev.appendChild(el("span", { class: "pill " + a.severity }, a.severity));
      const state = el("td"); state.appendChild(el("span", { class: "pill " + a.state }, a.state));
      const traces = el("td");
      a.trace_ids.slice(0, 3).forEach((id, i) => {
        const link = a.trace_links[i];
        traces.appendChild(link ? el("a", { href: link, target: "_blank", rel: "noopener" }, id.slice(0, 8)) : el("span", {}, id.slice(0, 8)));
        traces.appendChild(document.createTextNode(" "));
      });
      row.append(sev, el("td", {}, a.rule), state, el("td", {}, `${a.value_text} ${a.op} ${a.threshold_text}`),
        el("td", {}, utc(a.active_since)), el("td", { class: "wrap" }, a.annotations.summary || ""), traces);
      return row;
    }));
  }

  function renderCalls(calls) {
    const body = $("calls").tBodies[0];
    if (!calls.calls.length) {
      const row = el("tr");
      row.appendChild(el("td", { colspan: "9", class: "muted" }, "No calls in this window."));
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...calls.calls.map((c) => {
      const row = el("tr");
      const status = el("td");
      status.appendChild(c.success ? el("span", { class: "pill" }, "ok") : el("span", { class: "pill error", title: c.error_category || "" }, c.error_type || "error"));
      const trace = el("td");
      if (c.trace_url) trace.appendChild(el("a", { href: c.trace_url, target: "_blank", rel: "noopener" }, c.trace_id.slice(0, 8)));
      else if (c.trace_id) trace.appendChild(el("span", { class: "muted", title: c.trace_id }, c.trace_id.slice(0, 8)));
      const tokens = c.input_tokens == null && c.output_tokens == null ? "–" : `${fmtInt(c.input_tokens)} / ${fmtInt(c.output_tokens)}`;
      row.append(el("td", {}, utc(c.time)), el("td", {}, c.project_id || ""), el("td", {}, c.operation),
        el("td", {}, [c.provider, c.model].filter((x) => x).join(" / ")), el("td", { class: "num" }, tokens),
        el("td", { class: "num" }, c.cost_usd == null ? "–" : fmtUsd(c.cost_usd)), el("td", { class: "num" }, fmtMs(c.duration_ms)),
        status, trace);
      return row;
    }));
  }

  // --- refresh loop -------------------------------------------------------------------------
  async function refresh() {
    clearTimeout(timer);
    const days = Number($("days").value);
    try {
      const [summary, overview, timeline, byProvider, errors, alerts, calls] = await Promise.all([
        api("metrics/summary?" + query()),
        api("overview"),
        api("metrics/timeline?" + query({ interval: intervalFor(days) })),
        api("metrics/by-provider?" + query()),
        api("metrics/errors?" + query()),
        api("alerts"),
        api("calls?" + query({ limit: "25" })),
      ]);
      $("login").hidden = true;
      renderProjects(overview);
      renderCards(summary, overview);
      renderTimeline(timeline);
      renderModels(byProvider);
      renderErrors(errors);
      renderAlerts(alerts);
      renderCalls(calls);
      $("status").className = "status";
      $("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
      document.body.dataset.state = "ready";
    } catch (error) {
      if (error instanceof Unauthorized) {
        $("login").hidden = false;
        $("status").textContent = "sign in needed";
      } else {
        $("status").className = "status error";
        $("status").textContent = String(error.message || error);
      }
      document.body.dataset.state = "error";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("days").addEventListener("change", refresh);
    $("project").addEventListener("change", refresh);
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value);
      $("token").value = "";
      refresh();
    });
    refresh();
  });
})();
