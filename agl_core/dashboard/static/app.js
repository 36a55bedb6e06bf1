/* Agent Lightning dashboard: a hash-routed page over the /api endpoints.
 * Views: #/runs, #/runs/<id>, #/rollouts?<filters>, #/rollouts/<id>, #/resources. */
"use strict";

const POLL_MS = 2000;
const PAGE = 50;
const REWARD_KEYS = ["reward_mean", "heldout_reward", "reward", "train_reward", "val_reward"];
const CHART_ORDER = ["loss", "kl", "tokens_per_s"];

let routeSerial = 0; // bumps on navigation so timers of a left view stop themselves

/* ---------- helpers ---------- */

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // through the CSSOM: the CSP refuses inline style attributes
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/* Replace `el`'s content; like h(), skips null children and flattens arrays. */
function mount(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  const res = await fetch(`api/${path}${query.toString() ? "?" + query : ""}`, { credentials: "same-origin" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

const fmt = AglCharts.fmt;

function fmtTime(epoch) {
  if (!epoch) return "–";
  const d = new Date(epoch * 1000);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} m`;
}

function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

function rewardCell(v) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "–");
  return h("span", { class: `reward ${v > 0 ? "pos" : v < 0 ? "neg" : "zero"}` }, fmt(v));
}

function shortId(id) {
  return id && id.length > 20 ? id.slice(0, 20) + "…" : id;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "") || "runs";
  const [path, query] = raw.split("?");
  return { parts: path.split("/").map(decodeURIComponent), params: Object.fromEntries(new URLSearchParams(query || "")) };
}

function hashFor(path, params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined && v !== 0));
  return `#/${path}${q.toString() ? "?" + q : ""}`;
}

function pager(page, onOffset) {
  const { total, limit, offset } = page;
  const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const from = total ? offset + 1 : 0, to = Math.min(offset + limit, total);
  return h("div", { class: "pager" },
    h("button", { disabled: offset <= 0, onclick: () => onOffset(0) }, "« first"),
    h("button", { disabled: offset <= 0, onclick: () => onOffset(Math.max(0, offset - limit)) }, "‹ prev"),
    h("span", { class: "pager-info" }, `${from}–${to} of ${total.toLocaleString()}`),
    h("button", { disabled: offset + limit >= total, onclick: () => onOffset(offset + limit) }, "next ›"),
    h("button", { disabled: offset + limit >= total, onclick: () => onOffset(last) }, "last »"));
}

function table(columns, rows, rowAttrs = () => ({})) {
  return h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.cls }, c.title)))),
    h("tbody", {}, rows.length
      ? rows.map((r) => h("tr", rowAttrs(r), columns.map((c) => h("td", { class: c.cls }, c.cell(r)))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "nothing here yet"))));
}

function stat(label, value, cls = "") {
  return h("div", { class: `stat ${cls}` }, h("div", { class: "stat-value" }, value), h("div", { class: "stat-label" }, label));
}

/* ---------- runs ---------- */

async function viewRuns(main, params, serial) {
  const offset = +params.offset || 0;
  const [summary, page] = await Promise.all([api("summary"), api("runs", { limit: PAGE, offset })]);
  const r = summary.rollouts;
  mount(main,
    h("div", { class: "stats" },
      stat("runs", summary.runs),
      stat("rollouts succeeded", r.succeeded.toLocaleString(), "ok"),
      stat("running / queued", (r.running + r.queuing + r.requeuing).toLocaleString(), "run"),
      stat("failed", (r.failed + r.cancelled).toLocaleString(), "bad"),
      stat("spans", summary.spans.toLocaleString()),
      stat("resource versions", summary.resources_versions)),
    h("h1", {}, "Runs"),
    table([
      { title: "Run", cell: (x) => h("a", { href: `#/runs/${encodeURIComponent(x.run_id)}`, class: "mono" }, x.run_id) },
      { title: "Algorithm", cell: (x) => badge(x.algorithm, "algo") },
      { title: "Status", cell: (x) => badge(x.status) },
      { title: "Steps", cls: "num", cell: (x) => x.steps },
      { title: "Best held-out reward", cls: "num", cell: (x) => rewardCell(x.best_heldout_reward) },
      { title: "Started", cell: (x) => fmtTime(x.created_at) },
      { title: "Updated", cell: (x) => fmtTime(x.updated_at) },
    ], page.items, (x) => ({ class: "run-row", "data-run-id": x.run_id })),
    pager(page, (o) => (location.hash = hashFor("runs", { offset: o }))));
  if (page.items.some((x) => x.status === "running")) {
    setTimeout(() => serial === routeSerial && viewRuns(main, params, serial).catch(showError), POLL_MS * 2);
  }
}

/* ---------- a run's charts ---------- */

/* Per-task-set metrics ("heldout_reward_sampled/math") share the chart of their prefix, one line per set;
 * set sizes ("heldout_n/math") are not charted. */
function chartGroups(keys) {
  const rewards = REWARD_KEYS.filter((k) => keys.includes(k));
  const byTitle = new Map();
  for (const k of keys.filter((k) => !rewards.includes(k) && !k.startsWith("heldout_n/"))) {
    const title = k.split("/")[0];
    byTitle.set(title, [...(byTitle.get(title) || []), k]);
  }
  const rest = [...byTitle.keys()].sort((a, b) => {
    const ia = CHART_ORDER.indexOf(a), ib = CHART_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return [...(rewards.length ? [{ title: "reward", keys: rewards }] : []), ...rest.map((t) => ({ title: t, keys: byTitle.get(t).sort() }))];
}

async function viewRun(main, runId, serial) {
  let run = await api(`runs/${encodeURIComponent(runId)}`);
  const series = {}; // key -> [[step, value]]
  const charts = new Map(); // group title -> chart
  const grid = h("div", { class: "charts", id: "charts" });
  const slider = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: 0.5, id: "smoothing" });
  const sliderValue = h("span", { class: "mono" }, slider.value);
  const statusEl = h("span", {}, badge(run.status));
  const stepsEl = h("span", {}, run.steps);
  const liveEl = h("span", { class: "live", hidden: run.status !== "running" }, "● live");
  slider.addEventListener("input", () => { sliderValue.textContent = slider.value; draw(); });

  mount(main,
    h("div", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ", h("span", { class: "mono" }, run.run_id)),
    h("div", { class: "run-head" },
      h("h1", {}, run.run_id, " ", liveEl),
      h("div", { class: "meta" },
        h("span", {}, "algorithm ", badge(run.algorithm, "algo")),
        h("span", {}, "status ", statusEl),
        h("span", {}, "steps ", stepsEl),
        h("span", {}, "best held-out reward ", rewardCell(run.best_heldout_reward)),
        h("a", { href: hashFor("rollouts", { run_id: run.run_id }) }, `${run.rollouts.toLocaleString()} rollouts →`))),
    h("div", { class: "toolbar" }, h("label", { for: "smoothing" }, "Smoothing "), slider, sliderValue),
    grid,
    h("details", { class: "config" }, h("summary", {}, "Config"), h("pre", {}, JSON.stringify(run.config, null, 2))));

  function draw() {
    const groups = chartGroups(Object.keys(series));
    for (const g of groups) {
      if (!charts.has(g.title)) charts.set(g.title, AglCharts.lineChart(grid, g.title));
      charts.get(g.title).update(g.keys.map((k) => ({ name: k, points: series[k] })), +slider.value);
    }
    if (!groups.length && !grid.querySelector(".empty")) grid.append(h("div", { class: "empty" }, "no metrics recorded yet"));
    else if (groups.length) grid.querySelector(".empty")?.remove();
  }

  let since = -(2 ** 31);
  async function poll() {
    const data = await api(`runs/${encodeURIComponent(runId)}/metrics`, { since_step: since });
    for (const [key, points] of Object.entries(data.series)) {
      series[key] = (series[key] || []).filter((p) => p[0] < since).concat(points);
    }
    if (data.last_step !== null) since = data.last_step; // re-read the last step: it may gain keys
    draw();
    if (data.status !== run.status) {
      run = await api(`runs/${encodeURIComponent(runId)}`);
      statusEl.replaceChildren(badge(run.status));
      liveEl.hidden = run.status !== "running";
    }
    stepsEl.textContent = new Set(Object.values(series).flat().map((p) => p[0])).size;
    if (serial === routeSerial && data.status === "running") setTimeout(() => serial === routeSerial && poll().catch(showError), POLL_MS);
  }
  await poll();
}

/* ---------- rollouts ---------- */

async function viewRollouts(main, params) {
  const filters = { status: params.status || "", mode: params.mode || "", agent: params.agent || "", run_id: params.run_id || "" };
  const offset = +params.offset || 0;
  const page = await api("rollouts", { ...filters, limit: PAGE, offset });
  const go = (changes) => (location.hash = hashFor("rollouts", { ...filters, offset: 0, ...changes }));
  const select = (name, options) => h("select", { name, onchange: (e) => go({ [name]: e.target.value }) },
    options.map((o) => h("option", { value: o, selected: filters[name] === o }, o || `any ${name}`)));
  const text = (name, placeholder) => h("input", {
    name, placeholder, value: filters[name],
    onchange: (e) => go({ [name]: e.target.value.trim() }),
  });
  mount(main,
    h("h1", {}, "Rollouts"),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      select("status", ["", "queuing", "running", "succeeded", "failed", "cancelled", "requeuing"]),
      select("mode", ["", "train", "val", "test"]),
      text("agent", "agent name"),
      text("run_id", "run id"),
      Object.values(filters).some(Boolean) ? h("a", { href: "#/rollouts", class: "clear" }, "clear filters") : null),
    table([
      { title: "Rollout", cell: (x) => h("a", { href: `#/rollouts/${encodeURIComponent(x.rollout_id)}`, class: "mono" }, x.rollout_id) },
      { title: "Status", cell: (x) => badge(x.status) },
      { title: "Mode", cell: (x) => x.mode },
      { title: "Agent", cell: (x) => x.agent || h("span", { class: "muted" }, "–") },
      { title: "Reward", cls: "num", cell: (x) => rewardCell(x.reward) },
      { title: "Duration", cls: "num", cell: (x) => fmtDuration(x.duration_s) },
      { title: "Attempts", cls: "num", cell: (x) => x.num_attempts },
      { title: "Created", cell: (x) => fmtTime(x.created_at) },
      { title: "Input", cls: "preview", cell: (x) => x.input },
    ], page.items, (x) => ({ class: "rollout-row" })),
    pager(page, (o) => go({ offset: o })));
}

/* ---------- a rollout's trace ---------- */

const KIND_LABEL = { llm: "LLM", agent: "agent", tool: "tool", reward: "reward", message: "message", object: "object", exception: "error", annotation: "note", other: "span" };

/* Spans as a depth-first list of {span, depth}; a span whose parent is not on the page is a root. */
function flattenTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byId.has(s.parent_id)) {
      if (!children.has(s.parent_id)) children.set(s.parent_id, []);
      children.get(s.parent_id).push(s);
    } else roots.push(s);
  }
  const byStart = (a, b) => a.start_time - b.start_time;
  const out = [];
  const walk = (s, depth) => {
    out.push({ span: s, depth, hasChildren: children.has(s.span_id) });
    (children.get(s.span_id) || []).sort(byStart).forEach((c) => walk(c, depth + 1));
  };
  roots.sort(byStart).forEach((r) => walk(r, 0));
  return out;
}

function messagesBlock(title, messages, system) {
  if (!Array.isArray(messages) && !system) return null;
  const items = [];
  if (Array.isArray(system) && system.length) {
    items.push(h("div", { class: "msg msg-system" }, h("div", { class: "msg-role" }, "system"),
      h("div", { class: "msg-text" }, system.map((p) => p.content || "").join(""))));
  }
  for (const m of messages || []) {
    const parts = (m.parts || []).map((p) => {
      if (p.type === "text") return h("div", { class: "msg-text" }, p.content);
      if (p.type === "tool_call") return h("div", { class: "msg-tool" }, "→ call ", h("b", {}, p.name), h("code", {}, JSON.stringify(p.arguments)));
      if (p.type === "tool_call_response") return h("div", { class: "msg-tool" }, "← result ", h("code", {}, typeof p.response === "string" ? p.response : JSON.stringify(p.response)));
      return h("code", {}, JSON.stringify(p));
    });
    items.push(h("div", { class: `msg msg-${m.role}` }, h("div", { class: "msg-role" }, m.role, m.finish_reason ? ` · ${m.finish_reason}` : ""), parts));
  }
  return h("section", {}, h("h4", {}, title), items);
}

function spanDetail(s) {
  const facts = [
    ["kind", KIND_LABEL[s.kind]], ["model", s.model], ["agent", s.agent], ["tool", s.tool],
    ["input tokens", s.input_tokens], ["output tokens", s.output_tokens], ["response token ids", s.response_token_ids],
    ["policy version", s.policy_version], ["reward", s.reward],
    ["duration", s.end_time ? fmtDuration(s.end_time - s.start_time) : "open"], ["status", s.status.code + (s.status.description ? `: ${s.status.description}` : "")],
    ["span id", s.span_id], ["trace id", s.trace_id], ["attempt", s.attempt_id],
  ].filter(([, v]) => v !== null && v !== undefined);
  const show = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));
  return h("div", { class: "span-detail", id: "span-detail" },
    h("h3", {}, s.name),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    messagesBlock("Input messages", s.input_messages, s.system_instructions),
    messagesBlock("Output messages", s.output_messages),
    s.tool_arguments !== null ? h("section", {}, h("h4", {}, "Tool arguments"), h("pre", {}, show(s.tool_arguments))) : null,
    s.tool_result !== null ? h("section", {}, h("h4", {}, "Tool result"), h("pre", {}, show(s.tool_result))) : null,
    h("section", {}, h("h4", {}, "Attributes"),
      h("table", { class: "attrs" }, Object.entries(s.attributes).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, show(v)))))),
    s.events.length ? h("section", {}, h("h4", {}, "Events"), h("pre", {}, JSON.stringify(s.events, null, 2))) : null);
}

function waterfall(spans, detailPane) {
  const rows = flattenTree(spans);
  if (!rows.length) return h("div", { class: "empty" }, "no spans recorded for this rollout");
  const t0 = Math.min(...spans.map((s) => s.start_time));
  const t1 = Math.max(...spans.map((s) => s.end_time || s.start_time));
  const span = Math.max(t1 - t0, 1e-6);
  const collapsed = new Set();
  const body = h("div", { class: "wf-body" });

  function render() {
    const hiddenUnder = [];
    body.replaceChildren();
    for (const { span: s, depth, hasChildren } of rows) {
      while (hiddenUnder.length && hiddenUnder[hiddenUnder.length - 1] >= depth) hiddenUnder.pop();
      if (hiddenUnder.length) continue;
      if (collapsed.has(s.span_id)) hiddenUnder.push(depth);
      const left = ((s.start_time - t0) / span) * 100;
      const width = Math.min(Math.max((((s.end_time || s.start_time) - s.start_time) / span) * 100, 0.4), 100 - left);
      // The duration label goes after the bar, before it when the bar ends near the right edge,
      // or inside it when the bar spans nearly everything.
      const labelPos = left + width <= 80 ? `left:${left + width}%` : left >= 20 ? `right:${100 - left}%` : `right:${100 - left - width}%`;
      const labelCls = left + width <= 80 ? "after" : left >= 20 ? "before" : "inside";
      const tokens = (s.input_tokens !== null || s.output_tokens !== null ? `${s.input_tokens ?? "?"}→${s.output_tokens ?? "?"} tok` : "") + (s.response_token_ids !== null ? " · ids" : "");
      const row = h("div", {
        class: `wf-row kind-${s.kind}${s.status.code === "ERROR" ? " error" : ""}`, "data-span-id": s.span_id, "data-token-ids": s.response_token_ids,
        onclick: () => {
          body.querySelectorAll(".selected").forEach((e) => e.classList.remove("selected"));
          row.classList.add("selected");
          detailPane.replaceChildren(spanDetail(s));
        },
      },
        h("div", { class: "wf-name", style: `padding-left:${8 + depth * 16}px` },
          h("span", {
            class: `twisty${hasChildren ? "" : " leaf"}`,
            onclick: (e) => { e.stopPropagation(); collapsed.has(s.span_id) ? collapsed.delete(s.span_id) : collapsed.add(s.span_id); render(); },
          }, hasChildren ? (collapsed.has(s.span_id) ? "▸" : "▾") : "·"),
          h("span", { class: `kind kind-${s.kind}` }, KIND_LABEL[s.kind]),
          h("span", { class: "span-name" }, s.name)),
        h("div", { class: "wf-info" },
          s.reward !== null ? rewardCell(s.reward) : tokens ? h("span", { class: "muted" }, tokens) : ""),
        h("div", { class: "wf-track" }, h("div", { class: "wf-lane" },
          h("div", { class: "wf-bar", style: `left:${left}%;width:${width}%` }),
          h("span", { class: `wf-dur ${labelCls}`, style: labelPos }, s.end_time ? fmtDuration(s.end_time - s.start_time) : ""))));
      body.append(row);
    }
  }
  render();
  return h("div", { class: "waterfall" },
    h("div", { class: "wf-row wf-head" }, h("div", { class: "wf-name" }, "span"), h("div", { class: "wf-info" }, "tokens / reward"),
      h("div", { class: "wf-track" }, h("span", {}, "0"), h("span", { class: "right" }, fmtDuration(span)))),
    body);
}

async function viewTrace(main, rolloutId, params) {
  const offset = +params.offset || 0;
  const [ro, page] = await Promise.all([
    api(`rollouts/${encodeURIComponent(rolloutId)}`),
    api(`rollouts/${encodeURIComponent(rolloutId)}/spans`, { limit: 500, offset }),
  ]);
  const detail = h("div", { class: "detail-pane" }, h("div", { class: "empty" }, "select a span to see its messages and attributes"));
  mount(main,
    h("div", { class: "crumbs" }, h("a", { href: "#/rollouts" }, "Rollouts"), " / ", h("span", { class: "mono" }, ro.rollout_id)),
    h("h1", {}, "Trace ", h("span", { class: "mono small" }, ro.rollout_id)),
    h("div", { class: "meta" },
      h("span", {}, "status ", badge(ro.status)), h("span", {}, "mode ", ro.mode),
      ro.agent ? h("span", {}, "agent ", h("b", {}, ro.agent)) : null,
      h("span", {}, "reward ", rewardCell(ro.reward)),
      h("span", {}, "duration ", fmtDuration(ro.duration_s)),
      h("span", {}, "attempts ", ro.num_attempts),
      ro.resources_version ? h("span", {}, "resources ", h("a", { href: "#/resources" }, `v${ro.resources_version}`)) : null,
      ro.run_id ? h("a", { href: `#/runs/${encodeURIComponent(ro.run_id)}` }, `run ${ro.run_id} →`) : null),
    h("pre", { class: "input" }, ro.input),
    ro.attempts.some((a) => a.error) ? h("div", { class: "error-box" }, ro.attempts.filter((a) => a.error).map((a) => h("div", {}, `attempt ${a.sequence}: ${a.error}`))) : null,
    h("div", { class: "trace-layout" }, h("div", { class: "trace-main" }, waterfall(page.items, detail),
      page.total > page.limit ? pager(page, (o) => (location.hash = hashFor(`rollouts/${encodeURIComponent(rolloutId)}`, { offset: o }))) : null),
    detail));
  const first = main.querySelector(".wf-body .kind-llm") || main.querySelector(".wf-body .wf-row");
  if (first) first.click();
}

/* ---------- resources ---------- */

function resourceBody(name, r) {
  if (r.resource_type === "prompt_template") {
    return h("div", { class: "res" }, h("div", { class: "res-name" }, name, " ", badge("prompt", "algo"), h("span", { class: "muted" }, ` ${r.engine}`)), h("pre", { class: "prompt" }, r.template));
  }
  if (r.resource_type === "checkpoint") {
    return h("div", { class: "res" }, h("div", { class: "res-name" }, name, " ", badge("checkpoint", "algo")),
      h("div", { class: "mono" }, r.path, r.step !== null && r.step !== undefined ? `  (step ${r.step})` : ""));
  }
  if (r.resource_type === "llm") {
    return h("div", { class: "res" }, h("div", { class: "res-name" }, name, " ", badge("llm", "algo")),
      h("div", { class: "mono" }, `${r.model} @ ${r.endpoint}`, r.policy_version !== null && r.policy_version !== undefined ? `  policy v${r.policy_version}` : ""));
  }
  return h("div", { class: "res" }, h("div", { class: "res-name" }, name), h("pre", {}, JSON.stringify(r, null, 2)));
}

async function viewResources(main, params) {
  const offset = +params.offset || 0;
  const page = await api("resources", { limit: 20, offset });
  const scoreOf = (m) => ["score", "val_score", "heldout_reward", "reward"].map((k) => [k, m[k]]).find(([, v]) => typeof v === "number");
  mount(main,
    h("h1", {}, "Resources"),
    h("p", { class: "muted" }, "Every version published to the store, newest first: prompt templates with their scores, model endpoints and checkpoints."),
    h("div", { class: "res-list" }, page.items.length ? page.items.map((u) => {
      const score = scoreOf(u.metadata || {});
      const rest = Object.entries(u.metadata || {}).filter(([k]) => !score || k !== score[0]);
      return h("div", { class: "res-card", "data-version": u.version },
        h("div", { class: "res-head" }, h("span", { class: "version" }, `v${u.version}`),
          score ? h("span", { class: "score" }, `${score[0]} `, rewardCell(score[1])) : null,
          h("span", { class: "muted" }, fmtTime(u.created_at)), h("span", { class: "mono muted" }, u.resources_id)),
        Object.entries(u.resources).map(([n, r]) => resourceBody(n, r)),
        rest.length ? h("div", { class: "res-meta" }, rest.map(([k, v]) => h("span", {}, `${k}: `, h("b", {}, typeof v === "number" ? fmt(v) : JSON.stringify(v))))) : null);
    }) : h("div", { class: "empty" }, "no resources published yet")),
    pager(page, (o) => (location.hash = hashFor("resources", { offset: o }))));
}

/* ---------- router ---------- */

function showError(err) {
  document.getElementById("view").replaceChildren(h("div", { class: "error-box" }, `Could not load: ${err.message}`));
}

async function route() {
  const serial = ++routeSerial;
  const { parts, params } = parseHash();
  const main = document.getElementById("view");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  try {
    if (parts[0] === "runs" && parts[1]) await viewRun(main, parts[1], serial);
    else if (parts[0] === "rollouts" && parts[1]) await viewTrace(main, parts[1], params);
    else if (parts[0] === "rollouts") await viewRollouts(main, params);
    else if (parts[0] === "resources") await viewResources(main, params);
    else await viewRuns(main, params, serial);
  } catch (err) {
    if (serial === routeSerial) showError(err);
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
