// Ember's dashboard page: polls the JSON endpoints of the page shown (every POLL_MS) and
// redraws it. No framework, no build step: plain DOM, SVG charts and a canvas timeline.
"use strict";

const POLL_MS = 1500;
const TASK_LIMIT = 1000;
const COLORS = ["#ff7a2f", "#2f7aff", "#1a7f37", "#c62828", "#8e44ad", "#b26a00", "#00838f", "#6b7588"];
const STATE_COLORS = { FINISHED: "#1a7f37", RUNNING: "#2f7aff", FAILED: "#c62828" };

let history = [];
let usage = {};
let store = {};
let lastSample = 0;
let selectedTask = null;
let tasks = [];
let timer = null;
let shownLog = null; // {node_id, name, offset}: the file the Logs page follows

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function rows(kind, params) {
  const query = new URLSearchParams(params || {});
  const body = await api(`/api/v0/${kind}?${query}`);
  return body.data.result;
}

// ------------------------------------------------------------------ formatting

const short = (id) => (id ? String(id).slice(0, 10) : "");
// Ids that begin alike (a task's, an actor's and an object's with their job's, a worker's
// with its node's) are told apart by their end; the whole id shows on hover.
const tail = (id) => (id ? `…${String(id).slice(-10)}` : "");
const idCell = (id) => el("span", { class: "mono", title: id ?? "" }, tail(id));
const bytes = (n) => {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};
const when = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
const took = (t) => (t.start_time_ms && t.end_time_ms ? `${((t.end_time_ms - t.start_time_ms) / 1000).toFixed(3)} s` : "");
const state = (s) => el("span", { class: `state-${s}` }, s);

function bar(used, total, text) {
  const share = total > 0 ? Math.min(1, used / total) : 0;
  const inner = el("span");
  inner.style.width = `${(share * 100).toFixed(1)}%`;
  return el("span", {}, el("span", { class: "bar" }, inner), text);
}

function table(id, columns, items, onClick) {
  const head = el("tr", {}, ...columns.map(([title]) => el("th", {}, title)));
  const body = el("tbody");
  for (const item of items) {
    const row = el("tr", {}, ...columns.map(([, cell]) => el("td", {}, cell(item))));
    if (onClick) {
      row.addEventListener("click", () => onClick(item));
      if (selectedTask && item.task_id === selectedTask) row.classList.add("selected");
    }
    body.append(row);
  }
  if (!items.length) body.append(el("tr", {}, el("td", { colspan: columns.length, class: "note" }, "none")));
  $(id).replaceChildren(el("thead", {}, head), body);
}

function matches(item, text, fields) {
  if (!text) return true;
  const needle = text.toLowerCase();
  return fields.some((f) => String(item[f] ?? "").toLowerCase().includes(needle));
}

// ------------------------------------------------------------------ charts

function chart(id, series, maxValue, format) {
  const svg = $(id);
  const width = svg.clientWidth || 300;
  const height = svg.clientHeight || 110;
  const pad = 18;
  const times = history.map((s) => s.time);
  const t0 = times.length ? times[0] : 0;
  const t1 = times.length ? times[times.length - 1] : 1;
  let top = maxValue || 0;
  for (const s of series) for (const v of s.values) top = Math.max(top, v ?? 0);
  top = top || 1;
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (width - 2 * pad);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const parts = [];
  const axis = document.createElementNS(ns, "line");
  Object.entries({ x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, class: "axis" }).forEach(([k, v]) => axis.setAttribute(k, v));
  parts.push(axis);
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  label.textContent = format(top);
  parts.push(label);
  const legend = [];
  series.forEach((s, i) => {
    const known = s.values.map((v, j) => [times[j], v]).filter(([, v]) => v !== null && v !== undefined);
    if (!known.length) return;
    const color = s.color || COLORS[i % COLORS.length];
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("stroke", color);
    line.setAttribute("points", known.map(([t, v]) => `${x(t)},${y(v)}`).join(" "));
    parts.push(line);
    const name = el("span", { class: "legend" }, `${s.name} ${format(known[known.length - 1][1])}`);
    name.style.color = color;
    legend.push(name);
  });
  $(`${id}-legend`).replaceChildren(...legend);
  svg.replaceChildren(...parts);
}

function usedChart(id, pick, format, extra) {
  const used = history.map((s) => (pick(s) ? pick(s)[0] : null));
  const total = history.map((s) => (pick(s) ? pick(s)[1] : null));
  const series = [{ name: "used", values: used }, { name: "total", values: total, color: "#9aa6bd" }];
  if (extra) series.push(extra);
  chart(id, series, 0, format);
}

function taskChart(id) {
  const states = new Set();
  history.forEach((s) => Object.keys(s.tasks).forEach((k) => states.add(k)));
  const series = [...states].sort().map((name, i) => ({
    name, color: STATE_COLORS[name] || COLORS[(i + 3) % COLORS.length],
    values: history.map((s) => s.tasks[name] || 0),
  }));
  chart(id, series, 0, (v) => String(Math.round(v)));
}

async function pollHistory() {
  const body = await api(`/api/ember/history?since=${lastSample}`);
  history = history.concat(body.samples).slice(-300);
  usage = body.usage;
  store = body.store;
  if (history.length) lastSample = history[history.length - 1].time;
}

// ------------------------------------------------------------------ pages

// A node's resources in use: from the control store's live table (the last sample's).
function inUse(node, name) {
  const now = usage[node.node_id];
  const total = (now ? now.total : node.resources_total || {})[name] || 0;
  const free = now ? now.available[name] ?? total : total;
  return [total - free, total];
}

function resources(node) {
  return Object.keys(node.resources_total || {})
    .filter((k) => !k.startsWith("node:") && k !== "memory" && k !== "object_store_memory")
    .sort()
    .map((k) => {
      const [used, total] = inUse(node, k);
      return `${k} ${+used.toFixed(2)}/${total}`;
    })
    .join(", ");
}

function memoryBar(node) {
  const [used, total] = inUse(node, "memory");
  return bar(used, total, `${bytes(used)} / ${bytes(total)}`);
}

async function overview() {
  await pollHistory();
  usedChart("chart-cpu", (s) => s.resources.cpu, (v) => v.toFixed(1));
  usedChart("chart-memory", (s) => s.resources.memory, bytes);
  usedChart("chart-store", (s) => s.store, bytes, {
    name: "spilled", color: "#c62828", values: history.map((s) => (s.store ? s.store[2] : null)),
  });
  taskChart("chart-tasks");
  const nodes = (await rows("nodes", { limit: 1000, detail: true })).result;
  table("nodes-table", [
    ["Node", (n) => el("span", { class: "mono" }, short(n.node_id))],
    ["Address", (n) => n.node_ip],
    ["State", (n) => state(n.state)],
    ["Head", (n) => (n.is_head_node ? "head" : "")],
    ["Resources (used/total)", resources],
    ["Memory reserved", memoryBar],
    ["Object store (spilled)", (n) => {
      const [shm, spilled] = store[n.node_id] || [0, 0];
      const total = (n.resources_total || {}).object_store_memory || 0;
      return bar(shm, total, `${bytes(shm)} / ${bytes(total)}${spilled ? ` (${bytes(spilled)})` : ""}`);
    }],
  ], nodes);
}

async function jobs() {
  const found = (await rows("jobs", { limit: 1000 })).result;
  table("jobs-table", [
    ["Job", (j) => el("span", { class: "mono" }, j.job_id)],
    ["Status", (j) => state(j.status)],
    ["Namespace", (j) => j.namespace ?? ""],
    ["Driver", (j) => (j.driver_info ? `${j.driver_info.node_ip_address} pid ${j.driver_info.pid}` : "")],
    ["Entrypoint", (j) => j.entrypoint ?? ""],
  ], found);
}

function showTask(task) {
  selectedTask = task.task_id;
  const detail = $("task-detail");
  const fields = Object.entries(task).filter(([k]) => k !== "error_message" && k !== "events");
  detail.replaceChildren(
    el("h3", {}, `${task.name || task.func_or_class_name} `, state(task.state)),
    task.error_message ? el("pre", { class: "error", id: "task-error" }, `${task.error_type || "Error"}: ${task.error_message}`) : null,
    el("dl", {}, ...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, typeof v === "object" && v !== null ? JSON.stringify(v) : v ?? "")])),
  );
  detail.hidden = false;
}

function drawTasks() {
  const text = $("tasks-search").value;
  const shown = tasks.filter((t) => matches(t, text, ["task_id", "name", "func_or_class_name", "state", "node_id", "worker_id", "error_type", "type"]));
  table("tasks-table", [
    ["Task", (t) => idCell(t.task_id)],
    ["Name", (t) => t.name || t.func_or_class_name],
    ["State", (t) => state(t.state)],
    ["Type", (t) => t.type],
    ["Node", (t) => el("span", { class: "mono" }, short(t.node_id))],
    ["Worker", (t) => idCell(t.worker_id)],
    ["Started", (t) => when(t.start_time_ms)],
    ["Took", took],
    ["Error", (t) => t.error_type || ""],
  ], shown, showTask);
  const chosen = tasks.find((t) => t.task_id === selectedTask);
  if (chosen) showTask(chosen);
}

async function tasksPage() {
  await pollHistory();
  taskChart("chart-tasks-page");
  const params = new URLSearchParams({ limit: TASK_LIMIT, detail: true });
  const wanted = $("tasks-state").value;
  if (wanted) {
    params.append("filter_keys", "state");
    params.append("filter_predicates", "=");
    params.append("filter_values", wanted);
  }
  const found = await rows("tasks", params);
  tasks = found.result;
  $("tasks-count").textContent = found.total > tasks.length ? `(${tasks.length} of ${found.total} shown)` : `(${found.total})`;
  drawTasks();
}

async function actors() {
  const found = (await rows("actors", { limit: 1000, detail: true })).result;
  const text = $("actors-search").value;
  table("actors-table", [
    ["Actor", (a) => idCell(a.actor_id)],
    ["Class", (a) => a.class_name],
    ["Name", (a) => a.name || ""],
    ["State", (a) => state(a.state)],
    ["Restarts", (a) => a.num_restarts ?? 0],
    ["Node", (a) => el("span", { class: "mono" }, short(a.node_id))],
    ["PID", (a) => a.pid ?? ""],
    ["Logs", (a) => el("a", { href: `#logs?${a.actor_id}` }, "logs")],
  ], found.filter((a) => matches(a, text, ["actor_id", "class_name", "name", "state", "node_id"])));
}

async function objects() {
  const found = (await rows("objects", { limit: 1000, detail: true })).result;
  table("objects-table", [
    ["Object", (o) => idCell(o.object_id)],
    ["Size", (o) => (o.object_size >= 0 ? bytes(o.object_size) : "")],
    ["Reference", (o) => o.reference_type ?? ""],
    ["Task status", (o) => o.task_status ?? ""],
    ["Held by (pid)", (o) => (o.pid >= 0 ? o.pid : "")],
    ["Address", (o) => o.ip ?? ""],
    ["Call site", (o) => o.call_site ?? ""],
  ], found);
}

async function followLog() {
  if (!shownLog) return;
  const { node_id, name, offset } = shownLog;
  const query = new URLSearchParams({ node_id, filename: name, offset: offset ?? -1 });
  const piece = await api(`/api/v0/logs/file?${query}`);
  if (!shownLog || shownLog.name !== name) return;
  const pre = $("log-text");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = offset === undefined ? piece.data : pre.textContent + piece.data;
  if (pre.textContent.length > 1 << 20) pre.textContent = pre.textContent.slice(-(1 << 19));
  if (atEnd || offset === undefined) pre.scrollTop = pre.scrollHeight;
  shownLog.offset = piece.next;
}

function showLog(file) {
  shownLog = { node_id: file.node_id, name: file.name };
  $("log-name").textContent = `${file.name} (node ${short(file.node_id)})`;
  $("log-text").hidden = false;
  followLog();
}

async function logs() {
  const body = await api(`/api/v0/logs`);
  const files = body.data.result;
  $("logs-note").textContent = (body.data.warnings || []).join("; ");
  const wanted = location.hash.split("?")[1] || "";
  const search = $("logs-search");
  if (wanted && !search.value) search.value = wanted;
  const text = search.value;
  table("logs-table", [
    ["File", (f) => f.name],
    ["Node", (f) => el("span", { class: "mono" }, short(f.node_id))],
    ["Kind", (f) => f.category],
    ["PID", (f) => f.pid || ""],
    ["Actor", (f) => (f.actor_id ? idCell(f.actor_id) : "")],
    ["Size", (f) => bytes(f.size)],
    ["Modified", (f) => when(f.mtime * 1000)],
  ], files.filter((f) => matches(f, text, ["name", "node_id", "pid", "actor_id", "worker_id", "category"])), showLog);
  await followLog();
}

// A "task_runs" row is one worker's finished runs, flat: task id, name, start, end (seconds),
// failed, attempt, argument ids; repeated (_core/task_events.py, RUN_FIELDS).
const RUN_FIELDS = 7;

async function timeline() {
  const [body, nodes] = await Promise.all([
    api(`/api/ember/task_runs?${new URLSearchParams({ limit: TASK_LIMIT })}`),
    rows("nodes", { limit: 1000 }),
  ]);
  const ips = Object.fromEntries(nodes.result.map((n) => [n.node_id, n.node_ip]));
  const found = [];
  // A row per worker, named as Ray's timeline names it: its node (address and id), its pid.
  const labels = new Map();
  for (const w of body.data.result.result) {
    const key = w.worker_id || w.node_id;
    const node = [ips[w.node_id], short(w.node_id)].filter(Boolean).join(" ");
    labels.set(key, `Node ${node} · worker ${w.worker_pid || "?"} (${short(w.worker_id)})`);
    for (let i = 0; i < w.runs.length; i += RUN_FIELDS) {
      found.push({
        worker_id: key,
        name: w.runs[i + 1],
        start_time_ms: w.runs[i + 2] * 1000,
        end_time_ms: w.runs[i + 3] * 1000,
        state: w.runs[i + 4] ? "FAILED" : "FINISHED",
      });
    }
  }
  const canvas = $("timeline");
  const ctx = canvas.getContext("2d");
  const workers = [...new Set(found.map((t) => t.worker_id))];
  const rowHeight = 22;
  ctx.font = "11px ui-monospace, monospace";
  const left = 10 + Math.max(100, ...[...labels.values()].map((l) => ctx.measureText(l).width));
  canvas.width = canvas.clientWidth || 1200;
  canvas.height = Math.max(60, 20 + rowHeight * workers.length);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  $("timeline-note").textContent = found.length ? "" : "No task has run yet.";
  if (!found.length) return;
  // (a loop, not Math.min(...found): a spread of 100,000 arguments may overflow the stack)
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const t of found) {
    t0 = Math.min(t0, t.start_time_ms);
    t1 = Math.max(t1, t.end_time_ms);
  }
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (canvas.width - left - 10);
  ctx.font = "11px ui-monospace, monospace";
  workers.forEach((w, i) => {
    ctx.fillStyle = "#6b7588";
    ctx.fillText(labels.get(w), 4, 16 + rowHeight * i);
  });
  for (const t of found) {
    const row = workers.indexOf(t.worker_id);
    const x0 = x(t.start_time_ms);
    const width = Math.max(2, x(t.end_time_ms) - x0);
    ctx.fillStyle = STATE_COLORS[t.state] || "#ff7a2f";
    ctx.fillRect(x0, 4 + rowHeight * row, width, rowHeight - 6);
    if (width > 40) {
      ctx.fillStyle = "#fff";
      ctx.fillText((t.name || "").slice(0, Math.floor(width / 7)), x0 + 3, 16 + rowHeight * row);
    }
  }
  ctx.fillStyle = "#6b7588";
  ctx.fillText(`${((t1 - t0) / 1000).toFixed(2)} s`, canvas.width - 60, canvas.height - 4);
}

const PAGES = { overview, jobs, tasks: tasksPage, actors, objects, logs, timeline };

function current() {
  const name = location.hash.slice(1).split("?")[0];
  return PAGES[name] ? name : "overview";
}

async function refresh() {
  clearTimeout(timer);
  const name = current();
  try {
    await PAGES[name]();
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("status").classList.remove("error");
  } catch (e) {
    $("status").textContent = String(e.message || e);
    $("status").classList.add("error");
  }
  timer = setTimeout(refresh, POLL_MS);
}

function show() {
  const name = current();
  document.querySelectorAll(".page").forEach((p) => p.classList.toggle("shown", p.id === `page-${name}`));
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === `#${name}`));
  refresh();
}

window.addEventListener("hashchange", show);
$("tasks-search").addEventListener("input", drawTasks);
$("tasks-state").addEventListener("change", refresh);
show();
