// The operator dashboard: polls GET /v1/admin/dashboard every second with the admin
// token (kept in sessionStorage, so it lives as long as the tab) and draws with uPlot.
// No build step, no cookies, nothing loaded from elsewhere.
"use strict";

(function () {
  const TOKEN_KEY = "smsgw.adminToken";
  const POLL_MS = 1000;
  const HISTORY = 180; // points kept per series: three minutes at one per second
  const STATUSES = [
    ["accepted", "#2f5fd0"], ["sent", "#5aa05a"], ["delivered", "#2e7d32"],
    ["undelivered", "#9c6ade"], ["failed", "#c62828"], ["expired", "#e09b00"],
    ["retried", "#8d99ae"],
  ];
  const TIERS = [["vip", "#c2185b"], ["premium", "#f57c00"], ["standard", "#1976d2"]];
  const PALETTE = ["#1976d2", "#c2185b", "#388e3c", "#f57c00", "#7b1fa2", "#00838f", "#5d4037"];

  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat("en-US");
  const state = {
    polls: 0, last: null, timer: null,
    throughput: { x: [], y: STATUSES.map(() => []) },
    queue: { x: [], y: TIERS.map(() => []) },
    latency: { x: [], names: [], y: [] },
    charts: {},
  };
  window.smsgwDashboard = state; // for operators poking around, and for the browser test

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403) {
      const problem = await response.json().catch(() => ({}));
      const error = new Error(problem.detail || "The admin token was refused.");
      error.auth = true;
      throw error;
    }
    if (!response.ok) throw new Error("HTTP " + response.status + " from " + path);
    return response.json();
  }

  function width(el) { return Math.max(280, el.clientWidth); }

  function lineChart(el, series, yLabel) {
    const opts = {
      width: width(el), height: 220,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { label: yLabel, size: 60 }],
      legend: { live: false },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, points: { show: false } }))],
    };
    return new uPlot(opts, [[], ...series.map(() => [])], el);
  }

  function barChart(el) {
    const names = [];
    const opts = {
      width: width(el), height: 220,
      scales: {
        x: { time: false, range: (u) => [-0.5, Math.max(1, names.length) - 0.5] },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
      },
      axes: [
        { splits: () => names.map((_, i) => i), values: (u, splits) => splits.map((i) => names[i] || "") },
        { label: "messages", size: 60 },
      ],
      legend: { show: false },
      series: [{}, {
        label: "messages", fill: "#2f5fd0cc", stroke: "#2f5fd0", width: 1,
        paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false },
      }],
    };
    const chart = new uPlot(opts, [[], []], el);
    chart.names = names;
    return chart;
  }

  function push(history, at, values) {
    history.x.push(at);
    values.forEach((v, i) => history.y[i].push(v));
    if (history.x.length > HISTORY) {
      history.x.shift();
      history.y.forEach((s) => s.shift());
    }
  }

  function drawThroughput(view, at) {
    const totals = view.messages;
    const last = state.last;
    let rates = STATUSES.map(() => 0);
    if (last) {
      const dt = Math.max(0.001, at - last.at);
      rates = STATUSES.map(([name]) => Math.max(0, (totals[name] - last.messages[name]) / dt));
    }
    push(state.throughput, at, rates);
    state.charts.throughput.setData([state.throughput.x, ...state.throughput.y]);
    STATUSES.forEach(([name], i) => {
      const total = $("total-" + name);
      if (total) total.textContent = fmt.format(totals[name]);
      const rate = $("rate-" + name);
      if (rate) rate.textContent = rates[i].toFixed(0) + " /s";
    });
  }

  function drawQueue(view, at) {
    const byTier = Object.fromEntries(view.queue.map((q) => [q.tier, q]));
    push(state.queue, at, TIERS.map(([tier]) => (byTier[tier] ? byTier[tier].depth : 0)));
    state.charts.queue.setData([state.queue.x, ...state.queue.y]);
    $("queue-table").tBodies[0].innerHTML = TIERS.map(([tier, color]) => {
      const q = byTier[tier] || { depth: 0, oldest_age_seconds: 0 };
      return `<tr><td><span class="badge" style="background:${color}">${tier}</span></td>` +
        `<td>${fmt.format(q.depth)} due</td><td>oldest waiting ${q.oldest_age_seconds.toFixed(1)} s</td></tr>`;
    }).join("");
  }

  function drawProviders(view, at) {
    const names = view.providers.map((p) => p.name).sort();
    const h = state.latency;
    if (!state.charts.latency || names.join() !== h.names.join()) {
      // The set of providers changed: start the latency chart again with the new series.
      h.names = names; h.x = []; h.y = names.map(() => []);
      const el = $("latency-chart");
      if (state.charts.latency) state.charts.latency.destroy();
      el.innerHTML = "";
      state.charts.latency = lineChart(el, names.map((n, i) => [n, PALETTE[i % PALETTE.length]]), "ms");
    }
    const byName = Object.fromEntries(view.providers.map((p) => [p.name, p]));
    push(h, at, names.map((n) => byName[n].latency_ms ?? 0));
    state.charts.latency.setData([h.x, ...h.y]);
    $("providers-table").tBodies[0].innerHTML = view.providers.map((p) => `<tr>
      <td>${escape(p.name)}</td>
      <td><span class="badge ${p.state}">${p.state.replace("_", "-")}</span></td>
      <td>${p.error_rate == null ? "–" : (p.error_rate * 100).toFixed(1) + " %"}</td>
      <td>${p.latency_ms == null ? "–" : p.latency_ms.toFixed(1) + " ms"}</td>
      <td>${fmt.format(p.sent_total)}</td><td>${fmt.format(p.failed_total)}</td></tr>`).join("");
  }

  function drawTenants(view) {
    const chart = state.charts.tenants;
    const top = view.top_tenants.slice(0, 8);
    chart.names.length = 0;
    top.forEach((t) => chart.names.push(t.name.length > 14 ? t.name.slice(0, 13) + "…" : t.name));
    chart.setData([top.map((_, i) => i), top.map((t) => t.messages)]);
    $("tenants-empty").hidden = top.length > 0;
  }

  function drawReplication(view) {
    const r = view.replication;
    $("replica-lag").textContent = r ? (r.lag_seconds.toFixed(1) + " s") : "–";
    $("replica-role").textContent = !r ? "unknown" :
      r.reporting === "replica" ? fmt.format(r.lag_bytes) + " bytes behind" : "reports read the primary";
  }

  // Money is integer micro-units; shown in units with the currency's code.
  function money(micros, currency) {
    return escape(currency) + " " + (micros / 1e6).toFixed(2);
  }

  function drawMargin(view) {
    const m = view.margin;
    const totals = m ? m.totals : [];
    const losses = m ? m.losses : [];
    $("margin-span").textContent = m && m.until
      ? "00:00 to " + new Date(m.until).toISOString().slice(11, 16) + " UTC (folded hours)"
      : "folded hours, UTC";
    $("margin-table").querySelector("tbody").innerHTML = totals.map((t) =>
      "<tr><td>" + escape(t.currency) + "</td><td>" + fmt.format(t.messages) + "</td><td>" +
      money(t.revenue, t.currency) + "</td><td>" + money(t.cost, t.currency) + "</td><td" +
      (t.margin < 0 ? ' class="loss"' : "") + ">" + money(t.margin, t.currency) + "</td></tr>").join("");
    $("margin-empty").hidden = totals.length > 0;
    $("losses-table").querySelector("tbody").innerHTML = losses.map((d) =>
      "<tr><td>" + escape(d.country) + "</td><td>" + fmt.format(d.messages) + "</td><td>" +
      money(d.revenue, d.currency) + "</td><td>" + money(d.cost, d.currency) +
      '</td><td class="loss">' + money(d.margin, d.currency) + "</td></tr>").join("");
    $("losses-empty").hidden = losses.length > 0;
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  async function poll() {
    try {
      const view = await api("/v1/admin/dashboard");
      const at = Date.parse(view.at) / 1000;
      drawThroughput(view, at);
      drawQueue(view, at);
      drawProviders(view, at);
      drawTenants(view);
      drawMargin(view);
      drawReplication(view);
      $("in-flight").textContent = fmt.format(view.in_flight);
      state.last = { at, messages: view.messages };
      state.polls += 1;
      const status = $("status");
      status.textContent = "updated " + new Date(at * 1000).toLocaleTimeString();
      status.classList.remove("stale");
    } catch (error) {
      if (error.auth) { signOut(error.message); return; }
      const status = $("status");
      status.textContent = "not updating: " + error.message;
      status.classList.add("stale");
    }
    state.timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    if (!state.charts.throughput) {
      state.charts.throughput = lineChart($("throughput-chart"), STATUSES, "msg/s");
      state.charts.queue = lineChart($("queue-chart"), TIERS, "messages");
      state.charts.tenants = barChart($("tenants-chart"));
    }
    poll();
  }

  function signOut(message) {
    clearTimeout(state.timer);
    sessionStorage.removeItem(TOKEN_KEY);
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("status").textContent = "";
  }

  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    try {
      await api("/v1/admin/dashboard");
      $("login-error").textContent = "";
      start();
    } catch (error) {
      signOut(error.message);
    }
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(state.charts)) {
      const el = $(name + "-chart");
      if (chart && el) chart.setSize({ width: width(el), height: 220 });
    }
  });

  if (token()) start();
})();
