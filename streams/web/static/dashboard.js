// leadscore live dashboard: plain DOM and inline SVG, no dependencies.
// Everything the API returns is untrusted (lead ids, rule ids, reasons): it only
// ever reaches the page through textContent, Text nodes and setAttribute on
// inert attributes, never through innerHTML.
"use strict";

(() => {
  const POLL_MS = 2000;
  const LEAD_REFRESH_TICKS = 5; // the looked-up lead refreshes every 10 s
  const FEED_LIMIT = 30;
  const TOP_LIMIT = 10;
  const WAITING_LIMIT = 20;
  const SLA_LABEL = { on_time: "on time", breached: "SLA breached", escalated: "escalated" };
  const TOKEN_KEY = "leadscore.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STAGES = ["lead", "mql", "sql", "disqualified"];
  const STAGE_LABEL = { lead: "Lead", mql: "MQL", sql: "SQL", disqualified: "Disqualified" };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers

  function build(node, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key === "text") node.textContent = String(value);
      else if (key === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  }

  const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
  const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

  function placeholder(text, tag = "p") {
    return el(tag, { class: "placeholder", text });
  }

  function truncate(text, maxChars) {
    const s = String(text);
    return s.length <= maxChars ? s : s.slice(0, Math.max(1, maxChars - 1)) + "…";
  }

  // ---------------------------------------------------------------- formatting

  function fmtNumber(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "–";
    const rounded = Math.round(value * 10) / 10;
    return String(Object.is(rounded, -0) ? 0 : rounded);
  }

  function fmtSigned(value) {
    const text = fmtNumber(value);
    return value > 0 ? "+" + text : text.replace("-", "−");
  }

  function fmtPercent(rate) {
    if (typeof rate !== "number" || !Number.isFinite(rate)) return "–";
    const pct = rate * 100;
    return (pct > 0 && pct < 10 ? pct.toFixed(1) : Math.round(pct).toString()) + "%";
  }

  function fmtHours(hours) {
    if (typeof hours !== "number" || !Number.isFinite(hours)) return "–";
    if (hours < 1) return Math.max(1, Math.round(hours * 60)) + " min";
    if (hours < 48) return fmtNumber(hours) + " h";
    return fmtNumber(hours / 24) + " d";
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
  });
  const monthFormat = new Intl.DateTimeFormat(undefined, { month: "short", timeZone: "UTC" });

  function dayLabel(day, withMonth) {
    const date = new Date(day + "T00:00:00Z");
    if (Number.isNaN(date.getTime())) return String(day);
    const dom = String(date.getUTCDate());
    return withMonth || dom === "1" ? `${monthFormat.format(date)} ${dom}` : dom;
  }

  function fmtTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso ?? "");
    const today = new Date().toDateString() === date.toDateString();
    return today ? timeFormat.format(date) : dateTimeFormat.format(date);
  }

  function timeNode(iso) {
    const date = new Date(iso);
    return el("time", {
      datetime: String(iso ?? ""),
      title: Number.isNaN(date.getTime()) ? null : date.toString(),
      text: fmtTime(iso),
    });
  }

  function stageChip(stage) {
    const known = STAGES.includes(stage);
    return el("span", { class: "chip stage-" + (known ? stage : "unknown"), text: known ? STAGE_LABEL[stage] : String(stage) });
  }

  // ---------------------------------------------------------------- API and auth

  function storage() {
    try {
      return window.sessionStorage;
    } catch {
      return null; // storage disabled: the token lives for this page only
    }
  }

  const hashParams = new URLSearchParams(location.hash.slice(1));
  let token = hashParams.get("token") || storage()?.getItem(TOKEN_KEY) || null;
  if (hashParams.has("token")) {
    if (token) storage()?.setItem(TOKEN_KEY, token);
    hashParams.delete("token"); // keep the secret out of the address bar and history
    const rest = hashParams.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  let waitingForToken = false;

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { headers, cache: "no-store", credentials: "same-origin" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 401 && path !== "/health") askForToken();
    return { status: response.status, ok: response.ok, body };
  }

  function askForToken() {
    const form = $("token-form");
    if (!waitingForToken) {
      waitingForToken = true;
      $("token-error").textContent = token ? "That token was not accepted." : "";
      if (token) storage()?.removeItem(TOKEN_KEY);
      form.hidden = false;
      $("token-input").focus();
    }
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    token = value;
    storage()?.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    $("token-form").hidden = true;
    waitingForToken = false;
    refreshNow();
  });

  // ---------------------------------------------------------------- charts

  // Charts draw at their container's pixel width (crisp text at any size) and
  // redraw when it changes; the redraw waits a frame so ResizeObserver never loops.
  const charts = new Map(); // container -> {draw(width), width}
  const resizeObserver = new ResizeObserver((entries) => {
    requestAnimationFrame(() => {
      for (const entry of entries) {
        const chart = charts.get(entry.target);
        const width = Math.floor(entry.target.clientWidth);
        if (chart && width > 0 && width !== chart.width) {
          chart.width = width;
          chart.draw(width);
        }
      }
    });
  });

  function drawChart(container, draw) {
    let chart = charts.get(container);
    if (!chart) {
      chart = { draw, width: 0 };
      charts.set(container, chart);
      resizeObserver.observe(container);
    }
    chart.draw = draw;
    chart.width = Math.floor(container.clientWidth) || 320;
    draw(chart.width);
  }

  function funnelChart(stages, width) {
    const rowH = 40;
    const gap = 14; // before the disqualified row: it leaves the funnel, it is not a step of it
    const labelW = width < 380 ? 92 : 112;
    const countW = 64;
    const barMax = Math.max(40, width - labelW - countW);
    const counts = STAGES.map((stage) => Math.max(0, Number(stages[stage]) || 0));
    const max = Math.max(1, ...counts);
    const total = counts.reduce((a, b) => a + b, 0);
    const height = STAGES.length * rowH + gap;
    const rows = STAGES.map((stage, i) => {
      const count = counts[i];
      const y = i * rowH + (stage === "disqualified" ? gap : 0);
      const w = count > 0 ? Math.max(3, (count / max) * barMax) : 0;
      const x = labelW + (barMax - w) / 2; // centred: the funnel narrows stage by stage
      const share = total > 0 ? Math.round((count / total) * 100) + "%" : "";
      return svg("g", { class: "funnel-row", "data-stage": stage, "data-count": count },
        svg("title", { text: `${STAGE_LABEL[stage]}: ${count} lead${count === 1 ? "" : "s"}` }),
        svg("text", { class: "label", x: 0, y: y + rowH / 2, dy: "0.35em", text: STAGE_LABEL[stage] }),
        svg("rect", { class: "track", x: labelW, y: y + 6, width: barMax, height: rowH - 12, rx: 6 }),
        svg("rect", { class: "bar fill-" + stage, x, y: y + 6, width: w, height: rowH - 12, rx: 6 }),
        svg("text", { class: "count", x: width - countW + 12, y: y + rowH / 2 - 2, dy: "0.35em", text: count }),
        svg("text", { class: "share", x: width - countW + 12, y: y + rowH / 2 + 12, dy: "0.35em", text: share }),
      );
    });
    const divider = svg("line", { class: "divider", x1: 0, x2: width, y1: 3 * rowH + gap / 2, y2: 3 * rowH + gap / 2 });
    return svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Leads per stage: " + STAGES.map((s, i) => `${STAGE_LABEL[s]} ${counts[i]}`).join(", "),
    }, rows, divider);
  }

  function lastDays(perDay, asOf, count) {
    const byDay = new Map((perDay || []).map((d) => [String(d.day), d]));
    let end = new Date(asOf);
    const latest = [...byDay.keys()].sort().pop();
    if (Number.isNaN(end.getTime()) || (latest && latest > end.toISOString().slice(0, 10))) {
      end = latest ? new Date(latest + "T00:00:00Z") : new Date();
    }
    const days = [];
    for (let i = count - 1; i >= 0; i--) {
      const day = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), end.getUTCDate() - i));
      const key = day.toISOString().slice(0, 10);
      days.push(byDay.get(key) || { day: key, total: 0, counts: {} });
    }
    return days;
  }

  const dayCount = (width) => (width < 420 ? 7 : 14);

  function perDayChart(days, width) {
    const height = 150;
    const top = 14, bottom = 22, left = 28, right = 4;
    const plotH = height - top - bottom;
    const slot = (width - left - right) / days.length;
    const barW = Math.max(4, Math.min(28, slot * 0.62));
    const max = Math.max(1, ...days.map((d) => Number(d.total) || 0));
    const y = (v) => top + plotH - (v / max) * plotH;
    const parts = [
      svg("line", { class: "gridline", x1: left, x2: width - right, y1: y(max), y2: y(max) }),
      svg("line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) }),
      svg("text", { class: "tick", x: left - 6, y: y(max), dy: "0.35em", "text-anchor": "end", text: max }),
      svg("text", { class: "tick", x: left - 6, y: y(0), dy: "0.35em", "text-anchor": "end", text: 0 }),
    ];
    days.forEach((d, i) => {
      const cx = left + slot * (i + 0.5);
      const counts = Object.entries(d.counts || {}).filter(([, n]) => Number(n) > 0);
      // One segment per stage reached, stacked in funnel order, coloured like the funnel.
      const reached = new Map();
      for (const [kind, n] of counts) {
        const to = String(kind).split(">")[1];
        const stage = STAGES.includes(to) ? to : "unknown";
        reached.set(stage, (reached.get(stage) || 0) + Number(n));
      }
      let acc = 0;
      const segments = [...STAGES, "unknown"].filter((s) => reached.has(s)).map((stage) => {
        const y0 = y(acc), y1 = y(acc + reached.get(stage));
        acc += reached.get(stage);
        return svg("rect", { class: "bar fill-" + stage, x: cx - barW / 2, y: y1, width: barW, height: Math.max(0, y0 - y1) });
      });
      const detail = counts.map(([kind, n]) => `${kind.replace(">", " → ")} ${n}`).join(", ");
      const label = `${d.day}: ${Number(d.total) || 0} transition${Number(d.total) === 1 ? "" : "s"}${detail ? " (" + detail + ")" : ""}`;
      const every = slot < 26 ? 2 : 1;
      parts.push(svg("g", { class: "day", "data-day": d.day, "data-total": Number(d.total) || 0 },
        svg("title", { text: label }),
        svg("rect", { class: "hit", x: cx - slot / 2, y: top, width: slot, height: plotH }),
        segments,
        (days.length - 1 - i) % every === 0
          ? svg("text", { class: "tick", x: cx, y: height - 6, "text-anchor": "middle",
            text: dayLabel(d.day, i === 0 && slot >= 40) })
          : null,
      ));
    });
    return svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Transitions per day: " + days.map((d) => `${d.day} ${Number(d.total) || 0}`).join(", "),
    }, parts);
  }

  function breakdownChart(explanation, width) {
    const fit = [...(explanation.fit || [])].sort((a, b) => b.points - a.points);
    const engagement = [...(explanation.engagement || [])].sort((a, b) => b.points - a.points);
    const groups = [["fit", "Fit", fit], ["engagement", "Engagement", engagement]].filter(([, , rules]) => rules.length);
    const points = [...fit, ...engagement].map((r) => Number(r.points) || 0);
    const lo = Math.min(0, ...points), hi = Math.max(0, ...points);
    const labelW = Math.min(170, Math.max(110, width * 0.38));
    const pad = 46; // room for the value beside each bar
    const plotL = labelW + (lo < 0 ? pad : 8), plotR = width - (hi > 0 ? pad : 8);
    const x = (v) => plotL + ((v - lo) / (hi - lo || 1)) * (plotR - plotL);
    const rowH = 26, headH = 24;
    const maxChars = Math.floor((labelW - 10) / 7);
    const parts = [];
    let yPos = 0;
    for (const [kind, title, rules] of groups) {
      parts.push(svg("text", { class: "group-title kind-" + kind, x: 0, y: yPos + 16, text: title }));
      yPos += headH;
      for (const rule of rules) {
        const v = Number(rule.points) || 0;
        const x0 = x(0), x1 = x(v);
        const barX = Math.min(x0, x1), barW = Math.max(v === 0 ? 0 : 2, Math.abs(x1 - x0));
        const id = String(rule.rule_id);
        parts.push(svg("g", {
          class: "rule-bar kind-" + kind + (v < 0 ? " negative" : ""),
          "data-rule": id, "data-kind": kind, "data-points": v,
        },
          svg("title", { text: `${id} (${kind}): ${fmtSigned(v)} points` }),
          svg("text", { class: "label", x: 0, y: yPos + rowH / 2, dy: "0.35em", text: truncate(id, maxChars) }),
          svg("rect", { class: "bar", x: barX, y: yPos + 5, width: barW, height: rowH - 10, rx: 3 }),
          svg("text", {
            class: "value", y: yPos + rowH / 2, dy: "0.35em",
            x: v < 0 ? barX - 6 : barX + barW + 6, "text-anchor": v < 0 ? "end" : "start",
            text: fmtSigned(v),
          }),
        ));
        yPos += rowH;
      }
      yPos += 6;
    }
    const height = yPos;
    parts.push(svg("line", { class: "zero", x1: x(0), x2: x(0), y1: 0, y2: height }));
    return svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Score breakdown: " + [...fit, ...engagement].map((r) => `${r.rule_id} ${fmtSigned(r.points)}`).join(", "),
    }, parts);
  }

  // ---------------------------------------------------------------- health

  async function refreshHealth() {
    const health = $("health");
    try {
      const { status, body } = await api("/health");
      if (body && typeof body.rules_version === "string") $("rules-version").textContent = "rules " + body.rules_version;
      const state = status === 200 ? "ok" : status === 503 ? "starting" : "error";
      health.dataset.state = state;
      $("health-text").textContent = { ok: "live", starting: "starting", error: `error ${status}` }[state];
    } catch {
      health.dataset.state = "offline";
      $("health-text").textContent = "offline";
    }
  }

  // ---------------------------------------------------------------- funnel, conversion, per day

  function unavailable(container, status) {
    container.replaceChildren(placeholder(status === 401 ? "Needs an API token." : `Unavailable (HTTP ${status}).`));
  }

  async function refreshFunnel() {
    const { status, ok, body } = await api("/funnel");
    if (!ok || !body || !body.stages) {
      for (const id of ["funnel", "conversion", "per-day"]) {
        charts.delete($(id));
        unavailable($(id), status);
      }
      return;
    }
    $("funnel-asof").textContent = body.as_of ? "as of " + fmtTime(body.as_of) : "";
    drawChart($("funnel"), (width) => $("funnel").replaceChildren(funnelChart(body.stages, width)));
    drawChart($("per-day"), (width) => {
      const days = lastDays(body.transitions_per_day, body.as_of, dayCount(width));
      const total = days.reduce((sum, d) => sum + (Number(d.total) || 0), 0);
      $("perday-total").textContent = `${total} in ${days.length} days`;
      $("per-day").replaceChildren(perDayChart(days, width));
    });
    renderConversion(body.mql_to_sql || {});
    renderFollowUp(body.sales_follow_up);
  }

  function renderConversion(conv) {
    const rate = typeof conv.conversion_rate === "number" ? conv.conversion_rate : null;
    const reached = Number(conv.reached_mql) || 0;
    const converted = Number(conv.converted) || 0;
    const meter = el("div", { class: "meter", role: "presentation" },
      el("span", { style: `width: ${rate === null ? 0 : Math.min(100, Math.max(0, rate * 100))}%` }));
    const median = typeof conv.median_hours_to_sql === "number" ? conv.median_hours_to_sql : null;
    $("conversion").replaceChildren(
      el("div", { class: "kpi" },
        rate === null
          ? el("span", { class: "kpi-value kpi-empty", text: "no MQLs yet" })
          : el("span", { class: "kpi-value", "data-rate": rate, text: fmtPercent(rate) }),
        el("span", { class: "kpi-label", text: "conversion rate" })),
      meter,
      el("p", { class: "muted small", text: `${converted} of ${reached} MQL${reached === 1 ? "" : "s"} reached SQL` }),
      el("div", { class: "kpi kpi-small" },
        median === null
          ? el("span", { class: "kpi-value kpi-empty", text: "no SQLs yet" })
          : el("span", { class: "kpi-value", text: fmtHours(median) }),
        el("span", { class: "kpi-label", text: "median time to SQL" })),
    );
  }

  // ---------------------------------------------------------------- live feed

  let feedKey = null;
  const seenTransitions = new Set();

  function transitionRow(t, { clickable, fresh }) {
    const lead = String(t.lead_id ?? "");
    const content = [
      el("span", { class: "t-time" }, timeNode(t.occurred_at)),
      el("span", { class: "t-lead mono", title: lead, text: lead }),
      el("span", { class: "t-stages" }, stageChip(t.from_stage), el("span", { class: "arrow", "aria-label": "to", text: "→" }), stageChip(t.to_stage)),
      el("span", { class: "t-reason", title: String(t.reason ?? ""), text: String(t.reason ?? "") }),
    ];
    const row = clickable
      ? el("button", { type: "button", class: "t-row", "data-lead": lead, title: "Look up " + lead, on: { click: () => lookup(lead, true) } }, content)
      : el("div", { class: "t-row" }, content);
    return el("li", { class: fresh ? "fresh" : null, "data-transition": String(t.transition_id ?? "") }, row);
  }

  async function refreshFeed() {
    const { status, ok, body } = await api(`/transitions/recent?limit=${FEED_LIMIT}`);
    const feed = $("feed");
    if (!ok || !body || !Array.isArray(body.transitions)) {
      feedKey = null;
      feed.replaceChildren(placeholder(status === 401 ? "Needs an API token." : `Unavailable (HTTP ${status}).`, "li"));
      return;
    }
    const transitions = body.transitions;
    const key = transitions.map((t) => t.transition_id).join("|");
    if (key === feedKey) return; // unchanged: keep the DOM (and focus, hover) as it is
    const firstLoad = feedKey === null;
    feedKey = key;
    if (!transitions.length) {
      feed.replaceChildren(placeholder("No transitions yet. They appear here as leads change stage.", "li"));
      return;
    }
    feed.replaceChildren(...transitions.map((t) => {
      const fresh = !firstLoad && !seenTransitions.has(t.transition_id);
      seenTransitions.add(t.transition_id);
      return transitionRow(t, { clickable: true, fresh });
    }));
  }

  // ---------------------------------------------------------------- hottest leads

  async function refreshTop() {
    const stage = $("top-stage").value;
    const { status, ok, body } = await api(`/leads/top?stage=${encodeURIComponent(stage)}&limit=${TOP_LIMIT}`);
    const list = $("top-leads");
    if (stage !== $("top-stage").value) return; // the selector moved on meanwhile
    if (!ok || !body || !Array.isArray(body.leads)) {
      list.replaceChildren(placeholder(status === 401 ? "Needs an API token." : `Unavailable (HTTP ${status}).`, "li"));
      return;
    }
    if (!body.leads.length) {
      list.replaceChildren(placeholder(`No ${STAGE_LABEL[stage] || stage} leads right now.`, "li"));
      return;
    }
    const maxEngagement = Math.max(1, ...body.leads.map((l) => Number(l.engagement_score) || 0));
    list.replaceChildren(...body.leads.map((lead, i) => {
      const id = String(lead.lead_id ?? "");
      const engagement = Number(lead.engagement_score) || 0;
      return el("li", { "data-lead": id },
        el("button", { type: "button", class: "top-row", title: "Look up " + id, on: { click: () => lookup(id, true) } },
          el("span", { class: "rank", text: i + 1 }),
          el("span", { class: "top-lead mono", text: id }),
          el("span", { class: "top-scores" },
            el("span", { class: "score fit", title: "fit score" }, el("abbr", { text: "fit" }), " ", fmtNumber(lead.fit_score)),
            el("span", { class: "score engagement", title: "engagement score" }, el("abbr", { text: "eng" }), " ", fmtNumber(engagement))),
          el("span", { class: "spark", "aria-hidden": "true" },
            el("span", { style: `width: ${Math.max(2, (engagement / maxEngagement) * 100)}%` })),
        ));
    }));
  }

  $("top-stage").addEventListener("change", () => {
    $("top-leads").replaceChildren(placeholder("Loading…", "li"));
    refreshTop().catch(() => {});
  });

  // ---------------------------------------------------------------- waiting for a rep

  // A countdown to a lead's SLA instant, ticking every second between polls. The
  // instants are the server's: each row keeps how far they are from this page's clock,
  // so a skewed client clock shows the same time left as the worker counts.
  function fmtCountdown(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const days = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600), m = Math.floor((total % 3600) / 60), sec = total % 60;
    const clock = `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
    return days > 0 ? `${days} d ${clock}` : clock;
  }

  function slaStatus(row, now) {
    if (now < Number(row.dataset.due)) return "on_time";
    const escalate = row.dataset.escalate;
    return escalate && now >= Number(escalate) ? "escalated" : "breached";
  }

  function tickCountdowns() {
    const now = Date.now();
    for (const row of document.querySelectorAll("#waiting .w-row")) {
      const left = Number(row.dataset.due) - now;
      const status = slaStatus(row, now);
      row.querySelector(".countdown").textContent = left > 0 ? fmtCountdown(left) + " left" : "overdue " + fmtCountdown(left);
      if (row.dataset.status !== status) {
        row.dataset.status = status;
        const chip = row.querySelector(".chip");
        chip.className = "chip sla-" + status;
        chip.textContent = SLA_LABEL[status];
      }
    }
  }

  let waitingKey = null;

  async function refreshWaiting() {
    const { status, ok, body } = await api(`/sales/waiting?limit=${WAITING_LIMIT}`);
    const list = $("waiting");
    if (!ok || !body || !Array.isArray(body.leads)) {
      waitingKey = null;
      $("waiting-summary").textContent = "";
      list.replaceChildren(placeholder(status === 401 ? "Needs an API token." : `Unavailable (HTTP ${status}).`, "li"));
      return;
    }
    const sla = body.sla_hours === null ? "no SLA set" : `SLA ${fmtHours(body.sla_hours)}` + (body.business_hours ? ` (working hours: ${body.business_hours})` : "");
    $("waiting-summary").textContent = `${body.waiting} waiting · ${body.overdue} overdue · ${sla}`;
    const key = body.leads.map((l) => `${l.lead_id}@${l.due_at}`).join("|");
    if (key === waitingKey) return; // the same leads: the countdowns tick on their own
    waitingKey = key;
    if (body.sla_hours === null) {
      list.replaceChildren(placeholder("No sales follow-up: the rules have no sales section.", "li"));
      return;
    }
    if (!body.leads.length) {
      list.replaceChildren(placeholder("No SQL is waiting for a rep.", "li"));
      return;
    }
    const shift = Date.now() - new Date(body.as_of).getTime(); // this page's clock ahead of the worker's
    list.replaceChildren(...body.leads.map((lead) => {
      const id = String(lead.lead_id ?? "");
      const due = new Date(lead.due_at).getTime() + shift;
      const escalate = lead.escalate_at ? new Date(lead.escalate_at).getTime() + shift : null;
      return el("li", { "data-lead": id },
        el("button", {
          type: "button", class: "w-row", title: "Look up " + id, "data-due": due, "data-escalate": escalate,
          on: { click: () => lookup(id, true) },
        },
        el("span", {}, el("span", { class: "chip" })),
        el("span", { class: "countdown", "aria-live": "off" }),
        el("span", { class: "w-lead mono", text: id }),
        el("span", { class: "w-due" }, "due ", timeNode(lead.due_at)),
        el("span", { class: "top-scores" },
          el("span", { class: "score fit", title: "fit score" }, el("abbr", { text: "fit" }), " ", fmtNumber(lead.fit_score)),
          el("span", { class: "score engagement", title: "engagement score" }, el("abbr", { text: "eng" }), " ", fmtNumber(lead.engagement_score)))));
    }));
    tickCountdowns();
  }

  function renderFollowUp(figures) {
    if (!figures) return;
    const decided = (Number(figures.met) || 0) + (Number(figures.breached) || 0);
    const parts = [decided ? `SLA kept ${fmtPercent(figures.within_sla_share)} of ${decided}` : "no SLA decided yet"];
    if (typeof figures.median_hours_to_first_action === "number") {
      parts.push(`median ${fmtHours(figures.median_hours_to_first_action)} to first action`);
    }
    if (figures.escalated) parts.push(`${figures.escalated} escalated`);
    $("follow-up").textContent = parts.join(" · ");
  }

  setInterval(tickCountdowns, 1000);

  // ---------------------------------------------------------------- lead lookup

  let lookupSeq = 0;
  let currentLead = null; // the lead shown, refreshed now and then while shown

  async function lookup(leadId, scroll, quiet = false) {
    const id = String(leadId).trim();
    if (!id) return;
    const seq = ++lookupSeq;
    const result = $("lookup-result");
    $("lookup-input").value = id;
    if (!quiet) {
      result.replaceChildren(placeholder("Looking up " + id + "…"));
      history.replaceState(null, "", location.pathname + location.search + "#lead=" + encodeURIComponent(id));
    }
    if (scroll) $("lookup").scrollIntoView({ behavior: "smooth", block: "start" });
    let answer;
    try {
      answer = await api("/leads/" + encodeURIComponent(id));
    } catch {
      if (seq === lookupSeq && !quiet) result.replaceChildren(placeholder("The worker did not answer. Try again in a moment."));
      return;
    }
    if (seq !== lookupSeq) return; // a newer lookup started meanwhile
    const { status, ok, body } = answer;
    if (ok && body) {
      currentLead = id;
      renderLead(body, id);
    } else if (!quiet) {
      currentLead = null;
      charts.delete($("breakdown"));
      if (status === 404) {
        result.replaceChildren(el("div", { class: "notice" },
          el("p", { class: "notice-title" }, "No such lead: ", el("span", { class: "mono", text: id })),
          el("p", { class: "muted", text: "No events have been scored for this id yet. Check the spelling (ids are case-sensitive), or try again once its first events arrive." })));
      } else if (status === 401) {
        result.replaceChildren(placeholder("This worker needs an API token: enter it above, then look up again."));
      } else {
        result.replaceChildren(placeholder(`Could not look up this lead (HTTP ${status}).`));
      }
    }
  }

  function mergedIds(lead, requested) {
    const absorbed = (lead.absorbed_ids || []).map(String);
    const other = requested !== String(lead.lead_id);
    if (!absorbed.length && !other) return null;
    // An email looked up is the lead's email; another id is one merged into it.
    const via = !other ? "" : requested.includes("@") ? `${requested} is this lead's email` : `${requested} is merged into this lead`;
    if (!absorbed.length) return el("p", { class: "muted small merged-ids" }, via);
    const shown = absorbed.slice(-5);
    return el("p", { class: "muted small merged-ids" },
      via ? via + " · " : "",
      `one person: also ${absorbed.length === 1 ? "the id" : "the ids"} `,
      shown.flatMap((mergedId, i) => [i ? ", " : "", el("span", { class: "mono", text: mergedId })]),
      absorbed.length > shown.length ? ` and ${absorbed.length - shown.length} more` : "");
  }

  function renderLead(lead, requested) {
    const explanation = lead.explanation || {};
    const criteria = explanation.criteria || null;
    const breakdown = el("div", { id: "breakdown", class: "chart breakdown" });
    const hasRules = (explanation.fit || []).length + (explanation.engagement || []).length > 0;

    const head = el("div", { class: "lead-head" },
      el("div", { class: "lead-title" },
        el("h3", { class: "mono", text: String(lead.lead_id ?? "") }),
        stageChip(lead.stage)),
      el("span", { class: "muted small" }, "as of ", timeNode(lead.as_of), lead.rules_version ? ` · rules ${lead.rules_version}` : ""));

    const stats = el("div", { class: "stats" },
      el("div", { class: "stat kind-fit" }, el("span", { class: "stat-label", text: "Fit" }), el("span", { class: "stat-value", text: fmtNumber(lead.fit_score) })),
      el("div", { class: "stat kind-engagement" }, el("span", { class: "stat-label", text: "Engagement" }), el("span", { class: "stat-value", text: fmtNumber(lead.engagement_score) })));

    const main = el("div", { class: "lead-main" },
      stats,
      explanation.disqualified_by
        ? el("p", { class: "notice notice-warn" }, "Disqualified by rule ", el("span", { class: "mono", text: String(explanation.disqualified_by) }))
        : null,
      el("div", { class: "subhead" },
        el("h4", { text: "Score breakdown" }),
        el("span", { class: "legend" },
          el("span", { class: "swatch kind-fit" }), "fit",
          el("span", { class: "swatch kind-engagement" }), "engagement")),
      breakdown);

    const side = el("div", { class: "lead-side" }, criteriaBlock(criteria), recentBlock(lead.recent_transitions || []));

    $("lookup-result").replaceChildren(head, mergedIds(lead, requested) || "", el("div", { class: "lead-cols" }, main, side));
    if (hasRules) {
      charts.delete(breakdown);
      drawChart(breakdown, (width) => breakdown.replaceChildren(breakdownChart(explanation, width)));
    } else {
      breakdown.replaceChildren(placeholder("No rule has scored this lead yet."));
    }
  }

  function criteriaBlock(criteria) {
    if (!criteria) return el("div", { class: "criteria-block" }, el("h4", { text: "Qualification" }), placeholder("No framework state."));
    const met = criteria.met || [], unmet = criteria.unmet || [], unknown = criteria.unknown || [];
    const item = (name, state, mark, label) => el("li", { class: "criterion " + state, "data-state": state, title: `${name}: ${label}` },
      el("span", { class: "mark", "aria-hidden": "true", text: mark }), el("span", { text: String(name) }),
      el("span", { class: "visually-hidden", text: " (" + label + ")" }));
    return el("div", { class: "criteria-block" },
      el("div", { class: "subhead" },
        el("h4", { text: `${criteria.framework || "Framework"} criteria` }),
        el("span", { class: "chip " + (criteria.ready ? "ready" : "not-ready"), text: criteria.ready ? "ready for sales" : "not ready" })),
      el("p", { class: "muted small", text: `${met.length} met · ${criteria.require ?? "?"} required` }),
      el("ul", { class: "criteria" },
        met.map((n) => item(n, "met", "✓", "met")),
        unmet.map((n) => item(n, "unmet", "✕", "unmet")),
        unknown.map((n) => item(n, "unknown", "?", "unknown"))));
  }

  function recentBlock(transitions) {
    return el("div", { class: "recent-block" },
      el("h4", { text: "Recent transitions" }),
      transitions.length
        ? el("ol", { class: "feed compact" }, transitions.map((t) => transitionRow(t, { clickable: false, fresh: false })))
        : placeholder("None yet: this lead has not changed stage."));
  }

  $("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lookup($("lookup-input").value, false).catch(() => {});
  });

  // ---------------------------------------------------------------- polling

  let ticks = 0;
  let timer = null;
  let loopGeneration = 0; // a restart supersedes the running loop instead of doubling it

  async function tick() {
    ticks += 1;
    const jobs = [refreshHealth()];
    if (!waitingForToken) {
      jobs.push(refreshFeed(), refreshFunnel(), refreshTop(), refreshWaiting());
      if (currentLead && ticks % LEAD_REFRESH_TICKS === 0) jobs.push(lookup(currentLead, false, true));
    }
    const results = await Promise.allSettled(jobs);
    if (results.every((r) => r.status === "fulfilled")) {
      $("updated").textContent = "updated " + timeFormat.format(new Date());
    }
  }

  async function loop(generation) {
    if (!document.hidden) await tick();
    if (generation === loopGeneration) timer = setTimeout(() => loop(generation).catch(() => {}), POLL_MS);
  }

  function restartLoop() {
    loopGeneration += 1;
    clearTimeout(timer);
    loop(loopGeneration).catch(() => {});
  }

  function refreshNow() {
    restartLoop();
    if (currentLead) lookup(currentLead, false, true).catch(() => {});
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshNow();
  });

  restartLoop();
  if (hashParams.get("lead")) lookup(hashParams.get("lead"), false).catch(() => {});
})();
