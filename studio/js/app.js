// The studio: sign-in, then pages chosen by the URL's hash (#/experiments, #/runs/<id>, #/pipelines,
// #/schedules). Every page reads the API with the session's token; pages that show something still
// running poll it and stop when it ends or when the user leaves the page.

import { ApiError, call, clearSession, loadSession, saveSession, seg, tokenFor } from "./api.js";
import { drawChart } from "./chart.js";
import { badge, h, replace, table } from "./dom.js";
import { drawGraph } from "./graph.js";
import {
  appendLog,
  canCancel,
  describeSchedule,
  durationSeconds,
  formatDuration,
  formatTime,
  formatValue,
  graphModel,
  isTerminal,
  layoutGraph,
  splitMetrics,
  stepStatuses,
  triggerOf,
} from "./model.js";

const RUN_POLL_MS = 2000;
const LOG_POLL_MS = 1500;
const LIST_POLL_MS = 5000;

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const who = document.getElementById("who");
const nav = document.getElementById("nav");

let session = loadSession();
/** Timers and other teardown of the page on screen; run when the page changes. */
let teardown = [];
/** Bumped on every navigation, so an answer for a page the user left is dropped. */
let generation = 0;

function leavePage() {
  for (const stop of teardown) stop();
  teardown = [];
  generation += 1;
}

/** Call `fn` now and then every `ms` until it returns false or the page changes; errors are shown. */
function every(ms, fn) {
  const mine = generation;
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || mine !== generation) return;
    let again = true;
    try {
      again = (await fn()) !== false;
      clearNotice();
    } catch (error) {
      if (!handleError(error)) return;
    }
    if (again && !stopped && mine === generation) timer = window.setTimeout(tick, ms);
  };
  teardown.push(() => {
    stopped = true;
    if (timer !== null) window.clearTimeout(timer);
  });
  tick();
}

function showNotice(text) {
  replace(notice, text);
  notice.hidden = false;
}

function clearNotice() {
  if (!notice.hidden) {
    notice.hidden = true;
    replace(notice);
  }
}

/** Show an API failure; a 401 signs out. Returns whether the caller may go on polling. */
function handleError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your sign-in has expired or was revoked; sign in again.");
    return false;
  }
  const text = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
  showNotice(text);
  return !(error instanceof ApiError) || error.status === 0 || error.status >= 500;
}

function api(path, options = {}) {
  return call(path, { ...options, token: session && session.token });
}

/** Run `fn` for the current page only: its answer is dropped once the user has moved on. */
async function forPage(fn) {
  const mine = generation;
  try {
    const result = await fn();
    return mine === generation ? result : undefined;
  } catch (error) {
    if (mine === generation) handleError(error);
    return undefined;
  }
}

// -- sign-in --------------------------------------------------------------------------------------

function signOut(message) {
  clearSession();
  session = null;
  leavePage();
  if (message) showNotice(message);
  renderSignIn();
}

async function signInWith(token) {
  const me = await call("me", { token });
  session = { token, me };
  saveSession(session);
  clearNotice();
  route(true);
}

function renderSignIn() {
  nav.hidden = true;
  replace(who);
  const id = h("input", { id: "client-id", name: "client_id", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { id: "client-secret", name: "client_secret", type: "password", autocomplete: "current-password", required: true });
  const token = h("textarea", { id: "bearer-token", name: "token", rows: 3, required: true, spellcheck: "false" });
  const guarded = (fn) => async (event) => {
    event.preventDefault();
    const button = event.target.querySelector("button");
    button.disabled = true;
    try {
      await fn();
    } catch (error) {
      showNotice(error instanceof ApiError ? `Sign-in failed: ${error.message}` : `Sign-in failed: ${error}`);
    } finally {
      button.disabled = false;
    }
  };
  document.title = "Sign in · amlpipe studio";
  replace(
    main,
    h("h1", {}, "Sign in"),
    h(
      "div",
      { className: "columns" },
      h(
        "form",
        { className: "card", id: "sign-in-sp", onsubmit: guarded(async () => signInWith(await tokenFor(id.value.trim(), secret.value))) },
        h("h2", {}, "Service principal"),
        h("p", {}, "An id and secret from ", h("code", {}, "amlpipe sp create"), " or .amlpipe/config.json."),
        h("label", { for: "client-id" }, "Client id"),
        id,
        h("label", { for: "client-secret" }, "Client secret"),
        secret,
        h("button", { type: "submit" }, "Sign in"),
      ),
      h(
        "form",
        { className: "card", id: "sign-in-token", onsubmit: guarded(() => signInWith(token.value.trim())) },
        h("h2", {}, "Bearer token"),
        h("p", {}, "A token from ", h("code", {}, "amlpipe token"), " or your organisation's issuer (Entra ID)."),
        h("label", { for: "bearer-token" }, "Token"),
        token,
        h("button", { type: "submit" }, "Use token"),
      ),
    ),
  );
  id.focus();
}

// -- pages ----------------------------------------------------------------------------------------

function link(href, text) {
  return h("a", { href }, text);
}

function runLink(id) {
  return link(`#/runs/${seg(id)}`, id.slice(0, 8));
}

function runColumns() {
  return [
    ["Run", (r) => runLink(r.Id)],
    ["Status", (r) => badge(r.Status.StatusCode)],
    ["Trigger", (r) => triggerOf(r)],
    ["Created", (r) => formatTime(r.Status.CreationTime)],
    ["Duration", (r) => formatDuration(durationSeconds(r.Status.CreationTime, r.Status.EndTime))],
    ["Description", (r) => r.Description || ""],
  ];
}

function experimentsPage() {
  document.title = "Experiments · amlpipe studio";
  const body = h("div", {}, h("p", {}, "Loading…"));
  replace(main, h("h1", {}, "Experiments"), body);
  every(LIST_POLL_MS, async () => {
    const answer = await api("experiments");
    const items = answer.value.slice().sort((a, b) => (b.CreatedDate || "").localeCompare(a.CreatedDate || ""));
    replace(
      body,
      table("Experiments", [
        ["Experiment", (e) => link(`#/experiments/${seg(e.Name)}`, e.Name)],
        ["Created", (e) => formatTime(e.CreatedDate)],
      ], items, { empty: "No experiments yet: submit a pipeline run." }),
    );
  });
}

function experimentPage(name) {
  document.title = `${name} · amlpipe studio`;
  const body = h("div", {}, h("p", {}, "Loading…"));
  replace(main, h("p", { className: "crumbs" }, link("#/experiments", "Experiments"), " / "), h("h1", {}, name), body);
  every(LIST_POLL_MS, async () => {
    const answer = await api(`PipelineRuns?experimentName=${seg(name)}&top=100`);
    replace(body, table(`Runs of ${name}`, runColumns(), answer.value, { empty: "No runs in this experiment." }));
  });
}

function pipelinesPage() {
  document.title = "Pipelines · amlpipe studio";
  const published = h("div", {}, h("p", {}, "Loading…"));
  const endpoints = h("div", {}, h("p", {}, "Loading…"));
  replace(main, h("h1", {}, "Pipelines"), h("h2", {}, "Pipeline endpoints"), endpoints, h("h2", {}, "Published pipelines"), published);
  every(LIST_POLL_MS, async () => {
    const [pipes, eps] = await Promise.all([api("pipelines?active_only=false"), api("PipelineEndpoints?active_only=false")]);
    const names = new Map(pipes.value.map((p) => [p.Id, p.Name]));
    replace(
      endpoints,
      table("Pipeline endpoints", [
        ["Endpoint", (e) => e.Name],
        ["Status", (e) => badge(e.Status)],
        ["Default version", (e) => e.DefaultVersion],
        [
          "Versions",
          (e) =>
            h(
              "ul",
              { className: "versions" },
              e.PipelineVersionList.map((v) =>
                h(
                  "li",
                  {},
                  `v${v.Version}: ${names.get(v.PipelineId) || "pipeline"} `,
                  h("code", {}, v.PipelineId.slice(0, 8)),
                  v.Version === e.DefaultVersion ? " (default)" : "",
                ),
              ),
            ),
        ],
        ["URL", (e) => h("code", { className: "url" }, e.Url)],
      ], eps.value, { empty: "No pipeline endpoints." }),
    );
    replace(
      published,
      table("Published pipelines", [
        ["Name", (p) => p.Name],
        ["Id", (p) => h("code", {}, p.Id)],
        ["Status", (p) => badge(p.Status)],
        ["Steps", (p) => p.TotalRunSteps],
        ["Published", (p) => formatTime(p.CreatedDate)],
        ["Runs", (p) => link(`#/pipelines/${seg(p.Id)}/runs`, "runs")],
      ], pipes.value, { empty: "No published pipelines." }),
    );
  });
}

function pipelineRunsPage(pipelineId) {
  document.title = "Pipeline runs · amlpipe studio";
  const body = h("div", {}, h("p", {}, "Loading…"));
  replace(main, h("p", { className: "crumbs" }, link("#/pipelines", "Pipelines"), " / "), h("h1", {}, `Runs of pipeline ${pipelineId.slice(0, 8)}`), body);
  every(LIST_POLL_MS, async () => {
    const answer = await api(`PipelineRuns?pipelineId=${seg(pipelineId)}&top=100`);
    replace(body, table("Runs", [...runColumns(), ["Experiment", (r) => link(`#/experiments/${seg(r.RunHistoryExperimentName)}`, r.RunHistoryExperimentName)]], answer.value, { empty: "No runs of this pipeline." }));
  });
}

function schedulesPage() {
  document.title = "Schedules · amlpipe studio";
  const body = h("div", {}, h("p", {}, "Loading…"));
  replace(main, h("h1", {}, "Schedules"), body);
  every(LIST_POLL_MS, async () => {
    const [schedules, pipes, eps] = await Promise.all([
      api("schedules?active_only=false"),
      api("pipelines?active_only=false"),
      api("PipelineEndpoints?active_only=false"),
    ]);
    const targets = new Map([...pipes.value.map((p) => [p.Id, `pipeline ${p.Name}`]), ...eps.value.map((e) => [e.Id, `endpoint ${e.Name}`])]);
    replace(
      body,
      table("Schedules", [
        ["Schedule", (x) => x.Name],
        ["Status", (x) => badge(x.Status)],
        ["Trigger", (x) => describeSchedule(x)],
        ["Runs", (x) => targets.get(x.PipelineEndpointId || x.PipelineId) || x.PipelineEndpointId || x.PipelineId],
        ["Experiment", (x) => link(`#/experiments/${seg(x.ExperimentName)}`, x.ExperimentName)],
        ["Next due", (x) => formatTime(x.NextDue)],
        ["Last fired", (x) => formatTime(x.LastFired)],
        ["Last run", (x) => (x.LastRunId ? runLink(x.LastRunId) : "—")],
        ["Last error", (x) => (x.LastError ? h("span", { className: "error-text" }, x.LastError) : "—")],
      ], schedules.value, { empty: "No schedules." }),
    );
  });
}

// -- a run ----------------------------------------------------------------------------------------

function metricsView(metrics, empty) {
  const { charts, scalars } = splitMetrics(metrics);
  if (!charts.length && !scalars.length) return h("p", { className: "empty" }, empty);
  return h(
    "div",
    { className: "metrics" },
    scalars.length
      ? h("dl", { className: "scalars" }, scalars.map((m) => [h("dt", {}, m.name), h("dd", { dataset: { metric: m.name } }, formatValue(m.value))]))
      : null,
    h("div", { className: "charts" }, charts.map((c) => drawChart(c.name, c.values))),
  );
}

function runPage(runId, openStep) {
  document.title = `Run ${runId.slice(0, 8)} · amlpipe studio`;
  const header = h("div", { className: "run-header" });
  const graphBox = h("div", { className: "graph-box", tabindex: "-1" });
  const stepBox = h("section", { className: "step-panel", "aria-labelledby": "step-title" });
  const params = h("div", {});
  const runMetrics = h("div", {});
  replace(
    main,
    h("p", { className: "crumbs" }, link("#/experiments", "Experiments"), " / ", h("span", { id: "crumb-experiment" })),
    header,
    h("div", { className: "run-body" }, h("section", { className: "graph-section", "aria-label": "Pipeline graph" }, h("h2", {}, "Graph"), graphBox), stepBox),
    h("div", { className: "columns" }, h("section", {}, h("h2", {}, "Parameters"), params), h("section", {}, h("h2", {}, "Run metrics"), runMetrics)),
  );

  let graph = null;
  let model = null;
  let layout = null;
  let run = null;
  let selected = openStep || null;
  let stepGeneration = 0;
  let confirming = false;

  let panelOpen = false;
  // Opening a step stays on the page (no hashchange, no reload of the run): the address records the
  // step so a reload or a shared link opens it again, and focus stays on the graph.
  const select = (name) => {
    if (name === selected) return;
    selected = name;
    window.history.replaceState(null, "", `#/runs/${seg(runId)}/${seg(name)}`);
    drawGraphNow();
    panelOpen = true;
    openStepPanel(name);
  };

  const drawHeader = () => {
    const status = run.Status.StatusCode;
    const crumb = document.getElementById("crumb-experiment");
    replace(crumb, link(`#/experiments/${seg(run.RunHistoryExperimentName)}`, run.RunHistoryExperimentName));
    const actions = h("div", { className: "actions" });
    if (session.me && canCancel(session.me.role, run)) {
      if (confirming) {
        actions.append(
          h("span", { id: "confirm-text" }, "Cancel this run? Steps running now are stopped."),
          h("button", { className: "danger", id: "confirm-cancel", onclick: cancelRun }, "Yes, cancel the run"),
          h("button", { onclick: () => { confirming = false; drawHeader(); } }, "No, keep it running"),
        );
      } else {
        actions.append(h("button", { className: "danger", id: "cancel-run", onclick: () => { confirming = true; drawHeader(); document.getElementById("confirm-cancel").focus(); } }, "Cancel run…"));
      }
    } else if (run.CancelRequested && !isTerminal(status)) {
      actions.append(h("span", {}, "Cancel requested…"));
    }
    replace(
      header,
      h("h1", {}, "Run ", h("code", {}, runId)),
      h("p", { className: "run-status", "aria-live": "polite" }, badge(status), " ", run.Status.StatusDetail || ""),
      h(
        "dl",
        { className: "facts" },
        h("dt", {}, "Trigger"), h("dd", { id: "run-trigger" }, triggerOf(run)),
        h("dt", {}, "Created"), h("dd", {}, formatTime(run.Status.CreationTime)),
        h("dt", {}, "Duration"), h("dd", {}, formatDuration(durationSeconds(run.Status.CreationTime, run.Status.EndTime))),
        h("dt", {}, "Pipeline"), h("dd", {}, run.PipelineId ? h("code", {}, run.PipelineId) : "unpublished graph"),
      ),
      actions,
    );
  };

  const cancelRun = async () => {
    const button = document.getElementById("confirm-cancel");
    if (button) button.disabled = true;
    const answer = await forPage(() => api(`PipelineRuns/${seg(runId)}/cancel`, { method: "POST" }));
    confirming = false;
    if (answer) {
      run = { ...run, ...answer, StepRuns: run.StepRuns };
      drawHeader();
    } else if (button) {
      button.disabled = false;
    }
  };

  const drawGraphNow = () => {
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.step : undefined;
    const statuses = stepStatuses(graph, run.StepRuns);
    replace(graphBox, drawGraph(model, layout, statuses, selected, select));
    if (focused !== undefined) {
      const again = graphBox.querySelector(`[data-step="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  };

  const openStepPanel = (name) => {
    stepGeneration += 1;
    const mine = stepGeneration;
    const step = graph.steps.find((x) => x.name === name);
    if (!step) {
      replace(stepBox, h("h2", { id: "step-title" }, "Steps"), h("p", { className: "empty" }, `This run has no step '${name}'.`));
      return;
    }
    const logBox = h("pre", { className: "log", id: "step-log", tabindex: "0", "aria-label": `Output of ${name}` });
    const metricsBox = h("div", { id: "step-metrics" });
    const facts = h("dl", { className: "facts" });
    const artifacts = h("div", {});
    replace(
      stepBox,
      h("h2", { id: "step-title" }, name),
      facts,
      h("h3", {}, "Log"),
      logBox,
      h("h3", {}, "Metrics"),
      metricsBox,
      h("h3", {}, "Outputs"),
      step.outputs.length
        ? h("ul", {}, step.outputs.map((o) => h("li", {}, "PipelineData ", h("code", {}, o.name), ` on ${o.datastore || "workspaceblobstore"}`)))
        : h("p", { className: "empty" }, "This step declares no PipelineData outputs."),
      artifacts,
    );
    const current = () => stepStatuses(graph, run.StepRuns).get(name);
    const drawFacts = () => {
      const st = current();
      replace(
        facts,
        h("dt", {}, "Status"), h("dd", {}, badge(st.status), st.detail ? ` ${st.detail}` : ""),
        h("dt", {}, "Attempt"), h("dd", {}, st.attempt || "—"),
        h("dt", {}, "Duration"), h("dd", {}, formatDuration(durationSeconds(st.start, st.end))),
        h("dt", {}, "Reuse"), h("dd", {}, st.reused ? `Reused: ${st.reuseReason || ""}` : st.reuseReason || "—"),
      );
    };
    drawFacts();
    let tail = null;
    every(LOG_POLL_MS, async () => {
      if (mine !== stepGeneration) return false;
      drawFacts();
      const chunk = await api(`PipelineRuns/${seg(runId)}/steps/${seg(name)}/logs?offset=${tail && tail.runId ? tail.offset : 0}`);
      if (mine !== stepGeneration) return false;
      const before = tail;
      tail = appendLog(tail, chunk);
      if (tail !== before) {
        const follow = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
        replace(logBox, tail.text || (chunk.runId ? "" : "This step has not started yet."));
        if (follow) logBox.scrollTop = logBox.scrollHeight;
      }
      const caughtUp = chunk.nextOffset >= chunk.size;
      return !(isTerminal(current().status) && caughtUp && chunk.runId);
    });
    let lastMetrics = "";
    every(LOG_POLL_MS * 2, async () => {
      if (mine !== stepGeneration) return false;
      const ended = isTerminal(current().status);
      const answer = await api(`PipelineRuns/${seg(runId)}/steps/${seg(name)}/metrics`);
      if (mine !== stepGeneration) return false;
      const text = JSON.stringify(answer.metrics);
      if (text !== lastMetrics) {
        lastMetrics = text;
        replace(metricsBox, metricsView(answer.metrics, "No metrics logged."));
      }
      if (ended) {
        const files = await api(`PipelineRuns/${seg(runId)}/steps/${seg(name)}/artifacts`);
        if (mine !== stepGeneration) return false;
        replace(
          artifacts,
          h("h4", {}, "Files"),
          table("Files", [
            ["File", (f) => h("code", {}, f.name)],
            ["Size", (f) => `${f.size} B`],
          ], files.value, { empty: "No files in outputs/ or logs/." }),
        );
      }
      return !ended;
    });
  };

  every(RUN_POLL_MS, async () => {
    const fresh = await api(`PipelineRuns/${seg(runId)}`);
    if (!graph) {
      graph = await api(`PipelineRuns/${seg(runId)}/graph`);
      model = graphModel(graph);
      layout = layoutGraph(model);
    }
    run = fresh;
    drawHeader();
    drawGraphNow();
    replace(
      params,
      table("Parameters", [
        ["Name", ([k]) => k],
        ["Value", ([, v]) => h("code", {}, v)],
      ], Object.entries(run.ParameterAssignments || {}), { empty: "No parameters." }),
    );
    if (selected && !panelOpen) {
      panelOpen = true;
      openStepPanel(selected);
    } else if (!selected && !stepBox.childElementCount) {
      replace(stepBox, h("h2", { id: "step-title" }, "Steps"), h("p", { className: "empty" }, "Choose a step in the graph to see its log, metrics and outputs."));
    }
    const done = isTerminal(run.Status.StatusCode);
    const metrics = await api(`PipelineRuns/${seg(runId)}/metrics`);
    replace(runMetrics, metricsView(metrics.metrics, "No run-level metrics (run.parent.log)."));
    return !done;
  });
}

// -- routing --------------------------------------------------------------------------------------

function markNav(page) {
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

/** Show the page the address names; `moveFocus` (after an in-page navigation, not on first load) puts
 * keyboard focus on the new content, as a screen reader user expects. */
function route(moveFocus = true) {
  leavePage();
  clearNotice();
  if (!session) {
    renderSignIn();
    return;
  }
  nav.hidden = false;
  replace(
    who,
    h("span", { id: "who-role" }, `${session.me.role || "no role"}`),
    " ",
    h("code", { title: session.me.id }, session.me.id.slice(0, 8)),
    " ",
    h("button", { id: "sign-out", onclick: () => signOut("Signed out.") }, "Sign out"),
  );
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [page, id, sub] = parts;
  markNav(page === "runs" ? "experiments" : page || "experiments");
  if (page === "runs" && id) runPage(id, sub);
  else if (page === "experiments" && id) experimentPage(id);
  else if (page === "pipelines" && id && sub === "runs") pipelineRunsPage(id);
  else if (page === "pipelines") pipelinesPage();
  else if (page === "schedules") schedulesPage();
  else experimentsPage();
  if (moveFocus) main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => route(true));
route(false);
