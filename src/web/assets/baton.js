// baton's run pages: follow a workflow run and a log over server-sent events. Everything
// received is written with textContent or attributes, never parsed as HTML.
"use strict";

const SYMBOLS = {
  pending: "○", created: "○", running: "◔", canceling: "◔", succeeded: "✔", completed: "✔",
  failed: "✖", error: "✖", skipped: "⤼", canceled: "■", aborted: "■",
};

function setText(root, selector, text) {
  for (const el of root.querySelectorAll(selector)) el.textContent = text;
}

function setBadge(root, state) {
  setText(root, ".sym", SYMBOLS[state] || "•");
  setText(root, ".word", state);
  for (const el of root.querySelectorAll("[data-state]")) el.dataset.state = state;
}

// A run page's step elements (its box and its table row) by step index, found once: a
// 1,000-step page then updates a step without searching the document.
const stepElements = new Map();

function indexSteps() {
  for (const el of document.querySelectorAll("[data-step]")) {
    const list = stepElements.get(el.dataset.step) || [];
    list.push(el);
    stepElements.set(el.dataset.step, list);
  }
}

function updateStep(step) {
  const elements = stepElements.get(String(step.i)) || [];
  // Events come in order, so the first failure seen live is the run's first failed step
  // (one that failed before the page loaded is already marked).
  if (step.state === "failed" && !document.querySelector(".first-failed")) {
    for (const el of elements) el.classList.add("first-failed");
  }
  for (const el of elements) {
    el.dataset.state = step.state;
    setBadge(el, step.state);
    setText(el, ".dur", step.duration);
    setText(el, ".att", String(step.attempts));
    const err = el.querySelector(".err");
    if (err) err.textContent = step.error || "";
    for (const link of el.querySelectorAll("a.run")) {
      if (step.run) {
        link.setAttribute("href", step.run);
        link.hidden = false;
      }
    }
  }
}

function updateRun(run) {
  const state = document.getElementById("run-state");
  if (state) setBadge(state, run.state);
  const error = document.getElementById("run-error");
  if (error) {
    error.textContent = run.error || "";
    error.hidden = !run.error;
  }
  for (const form of document.querySelectorAll("[data-when]")) {
    form.hidden = form.dataset.when === "active" ? run.ended : !run.retryable;
  }
}

function followRun(page) {
  const events = new EventSource(page.dataset.events);
  events.addEventListener("steps", (e) => JSON.parse(e.data).forEach(updateStep));
  events.addEventListener("run", (e) => {
    const run = JSON.parse(e.data);
    updateRun(run);
    if (run.ended) events.close();
  });
}

function followLog(log) {
  const events = new EventSource(log.dataset.follow);
  events.addEventListener("log", (e) => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(document.createTextNode(JSON.parse(e.data)));
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  events.addEventListener("end", () => events.close());
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.getElementById("run");
  if (page && page.dataset.ended !== "true") {
    indexSteps();
    followRun(page);
  }
  const log = document.getElementById("log");
  if (log && log.dataset.follow) followLog(log);
});
