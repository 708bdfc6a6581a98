// The web UI's one script. It calls the same /v1 endpoints as any client
// (the session cookie stands for the token), and follows a run's
// server-sent events to colour its DAG live. No framework, no build step.
"use strict";

const api = async (method, path, body) => {
  // The header marks a request as the UI's own (the server refuses a
  // cookie-authenticated change without it: another site cannot send it).
  const init = { method, headers: { "X-Weft-UI": "1" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (!r.ok) {
    const detail = (data && data.detail) || r.statusText;
    throw new Error(detail);
  }
  return data;
};

const el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

// ---- runs list ----

async function refreshRuns() {
  const body = document.getElementById("runs-body");
  const filters = new FormData(document.getElementById("run-filters"));
  const q = new URLSearchParams({ limit: "50" });
  for (const [k, v] of filters) if (v) q.set(k, v);
  try {
    const page = await api("GET", "/v1/runs?" + q);
    body.replaceChildren(...page.runs.map((r) => el("tr", { "data-run": r.run_id },
      el("td", {}, el("a", { href: "/ui/runs/" + r.run_id }, r.run_id.slice(0, 8))),
      el("td", {}, r.workflow),
      el("td", {}, el("span", { class: "status " + r.status }, r.status)),
      el("td", {}, r.created_at),
      el("td", {}, r.updated_at))));
    if (!page.runs.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "5" }, "No runs yet.")));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "error" }, e.message)));
  }
}

function runsPage() {
  refreshRuns();
  setInterval(refreshRuns, 2000);
  document.getElementById("run-filters").addEventListener("input", refreshRuns);
  const start = document.getElementById("start-run");
  if (!start) return;
  start.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = document.getElementById("start-error");
    error.textContent = "";
    let input;
    try { input = JSON.parse(document.getElementById("start-input").value || "{}"); } catch (e) {
      error.textContent = "The input is not JSON: " + e.message;
      return;
    }
    try {
      const workflow = document.getElementById("start-workflow").value;
      const run = await api("POST", "/v1/runs", { workflow, input });
      location.href = "/ui/runs/" + run.run_id;
    } catch (e) {
      error.textContent = e.message;
    }
  });
}

// ---- one run ----

// A step's state from the journal entries seen so far.
const stepStates = new Map();
const STATE_OF = {
  step_scheduled: "scheduled",
  attempt_started: "running",
  shard_started: "running",
  gate_opened: "waiting",
  step_completed: "completed",
  step_failed: "failed",
  step_skipped: "skipped",
};

function paintNodes() {
  for (const g of document.querySelectorAll("svg.dag g.node")) {
    const steps = g.dataset.steps.split(" ");
    const states = steps.map((s) => stepStates.get(s) || "pending");
    const stateText = g.querySelector("text.state");
    if (steps.length === 1) {
      g.setAttribute("class", "node " + states[0]);
      stateText.textContent = states[0];
    } else {
      const counts = {};
      for (const s of states) counts[s] = (counts[s] || 0) + 1;
      const order = ["failed", "running", "waiting", "scheduled", "pending", "completed", "skipped"];
      const lead = order.find((s) => counts[s]) || "pending";
      g.setAttribute("class", "node group " + lead);
      stateText.textContent = order.filter((s) => counts[s]).map((s) => counts[s] + " " + s).join(", ");
    }
  }
}

async function refreshRun(id) {
  const run = await api("GET", "/v1/runs/" + id);
  const status = document.getElementById("run-status");
  status.textContent = run.status;
  status.className = "status " + run.status;
  const finished = !["pending", "running", "paused"].includes(run.status);
  document.getElementById("cancel-run").disabled = finished;
  document.getElementById("resume-run").disabled = finished;
  const rows = [];
  const gates = [];
  for (const step of run.steps) {
    if (step.state && !stepStates.has(step.step_id)) stepStates.set(step.step_id, step.state.split(" ")[0]);
    if (step.state === "waiting") gates.push(step.step_id);
    for (const a of step.attempts || []) {
      const outcome = a.kind || a.status || "";
      const stats = a.stats || {};
      rows.push(el("tr", {},
        el("td", {}, step.step_id), el("td", {}, a.attempt ?? ""),
        el("td", { class: "outcome " + outcome }, outcome),
        el("td", {}, stats.fuel_consumed ?? ""),
        el("td", {}, stats.wall_time_us !== undefined ? (stats.wall_time_us / 1000).toFixed(1) : ""),
        el("td", {}, stats.peak_memory_bytes !== undefined ? Math.round(stats.peak_memory_bytes / 1024) : "")));
    }
  }
  document.getElementById("attempts-body").replaceChildren(...rows);
  const gateBox = document.getElementById("gates");
  gateBox.replaceChildren(...(gates.length ? [el("h2", {}, "Waiting for a decision")] : []),
    ...gates.map((g) => {
      const approve = el("button", { type: "button", class: "approve", "data-gate": g }, "Approve " + g);
      const reject = el("button", { type: "button", class: "reject", "data-gate": g }, "Reject " + g);
      approve.addEventListener("click", () => decide(id, g, true));
      reject.addEventListener("click", () => decide(id, g, false));
      return el("p", {}, approve, " ", reject);
    }));
  if (run.output) document.getElementById("output").textContent = JSON.stringify(run.output, null, 2);
  paintNodes();
  const logs = await api("GET", "/v1/runs/" + id + "/logs");
  document.getElementById("logs").textContent =
    logs.map((l) => `${l.step_id}#${l.attempt} ${l.level} ${l.message}`).join("\n") || "(none)";
}

async function decide(id, gate, approved) {
  const note = document.getElementById("action-note");
  try {
    const signalId = "ui-" + Date.now() + "-" + Math.random().toString(36).slice(2);
    await api("POST", `/v1/runs/${id}/steps/${encodeURIComponent(gate)}/signal`,
      { signal_id: signalId, data: { approved, by: "web UI" } });
    note.textContent = (approved ? "Approved " : "Rejected ") + gate + ".";
  } catch (e) {
    note.textContent = e.message;
  }
}

function runPage(id) {
  const note = document.getElementById("action-note");
  document.getElementById("cancel-run").addEventListener("click", async () => {
    try {
      const r = await api("POST", `/v1/runs/${id}/cancel`);
      note.textContent = r.requested ? "Cancel requested." : "The run had already ended.";
    } catch (e) { note.textContent = e.message; }
  });
  document.getElementById("resume-run").addEventListener("click", async () => {
    try {
      await api("POST", `/v1/runs/${id}/resume`);
      note.textContent = "A worker will take the run up.";
    } catch (e) { note.textContent = e.message; }
  });
  let pending = null;
  const refreshSoon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refreshRun(id).catch((e) => { note.textContent = e.message; }); }, 150);
  };
  refreshRun(id).catch((e) => { note.textContent = e.message; });
  const events = new EventSource(`/v1/runs/${id}/events`);
  const onEntry = (ev) => {
    const entry = JSON.parse(ev.data);
    const state = STATE_OF[entry.kind];
    if (state && entry.step_id) {
      // A step that completed does not go back to running (a retry's start comes before).
      const now = stepStates.get(entry.step_id);
      if (!(now === "completed" || now === "failed" || now === "skipped") || state !== "running") {
        stepStates.set(entry.step_id, state);
      }
      paintNodes();
    }
    if (entry.kind === "run_finished") events.close();
    refreshSoon();
  };
  for (const kind of [...Object.keys(STATE_OF), "attempt_finished", "shard_finished", "run_paused", "run_finished",
    "run_resumed", "run_stopping", "signal_received"]) {
    events.addEventListener(kind, onEntry);
  }
  events.onmessage = onEntry;
}

// ---- dead letters ----

async function dlqPage() {
  const body = document.getElementById("dlq-body");
  try {
    const rows = await api("GET", "/v1/dlq");
    body.replaceChildren(...rows.map((d) => el("tr", {},
      el("td", {}, el("a", { href: "/ui/runs/" + d.run_id }, d.run_id.slice(0, 8))),
      el("td", {}, d.workflow), el("td", {}, d.step_id), el("td", {}, d.error_type),
      el("td", {}, d.message), el("td", {}, d.at))));
    if (!rows.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "6" }, "The queue is empty.")));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "error" }, e.message)));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "runs") runsPage();
  if (page === "run") runPage(document.body.dataset.run);
  if (page === "dlq") dlqPage();
  if (page === "run" || page === "workflows") paintNodes();
});
