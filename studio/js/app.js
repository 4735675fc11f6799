// The studio: sign-in, then pages chosen by the URL's hash (#/experiments, #/runs/<id>, #/pipelines,
// #/schedules). Every page reads the API with the session's token; pages that show something still
// running poll it and stop when it ends or when the user leaves the page.
//
// Redraws never take focus away: a part of the page is rebuilt only when what it shows changed, and a
// rebuilt part gives focus back to the element that had it (found again by its key).

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
/** Most log text kept on screen; older lines are dropped (amlpipe run logs shows them all). */
const LOG_KEEP_CHARS = 2_000_000;

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const who = document.getElementById("who");
const nav = document.getElementById("nav");

let session = loadSession();
/** Timers and other teardown of the page on screen; run when the page changes. */
let teardown = [];
/** Bumped on every navigation: an answer for a page the user left is dropped (see api()). */
let generation = 0;
/** Which poll loop put the notice up: only that loop's next success takes it down. */
let noticeOwner = null;

/** Thrown by api() when the page changed while the request was out: callers drop it silently. */
class StalePage extends Error {}

function leavePage() {
  for (const stop of teardown) stop();
  teardown = [];
  generation += 1;
}

function showNotice(text, owner = null) {
  replace(notice, text);
  notice.hidden = false;
  noticeOwner = owner;
}

function clearNotice(owner = null) {
  if (!notice.hidden && (owner === null || owner === noticeOwner)) {
    notice.hidden = true;
    replace(notice);
    noticeOwner = null;
  }
}

/** Whether a failed request is worth trying again: the service is away, busy, or throttling. */
function transient(error) {
  return error instanceof ApiError && (error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500);
}

/** Show an API failure; a 401 signs out. */
function report(error, owner = null) {
  if (error instanceof StalePage) return;
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your sign-in has expired or was revoked; sign in again.");
    return;
  }
  showNotice(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), owner);
}

let loops = 0;
/**
 * Call `fn` now and then every `ms` until it returns false or the page changes. A transient failure
 * (unreachable, 408, 429, 5xx) is shown and tried again, slower each time; any other failure is shown
 * and stops the loop. While the tab is hidden the loop waits. `onStop` runs when it stops by itself.
 */
function every(ms, fn, onStop) {
  const mine = generation;
  const owner = `loop-${(loops += 1)}`;
  let timer = null;
  let stopped = false;
  let failures = 0;
  const later = (delay) => {
    if (!stopped && mine === generation) timer = window.setTimeout(tick, delay);
  };
  const tick = async () => {
    timer = null;
    if (stopped || mine !== generation) return;
    if (document.hidden) {
      later(ms);
      return;
    }
    try {
      const again = (await fn()) !== false;
      failures = 0;
      clearNotice(owner);
      if (again) later(ms);
      else if (onStop) onStop();
    } catch (error) {
      if (error instanceof StalePage || mine !== generation) return;
      report(error, owner);
      if (transient(error)) {
        failures += 1;
        later(Math.min(ms * 2 ** failures, 30000));
      }
    }
  };
  teardown.push(() => {
    stopped = true;
    if (timer !== null) window.clearTimeout(timer);
  });
  tick();
}

/** An API call for the page on screen: throws StalePage if the user moved on while it was out. */
async function api(path, options = {}) {
  const mine = generation;
  const answer = await call(path, { ...options, token: session && session.token });
  if (mine !== generation) throw new StalePage();
  return answer;
}

/**
 * Rebuild `container` with `build()` only when `key` (what it shows) changed; give focus back to the
 * element with the same data-key, link target or id as the one that had it.
 */
function refresh(container, key, build) {
  if (container.dataset.shown === key) return false;
  const focused = container.contains(document.activeElement) ? document.activeElement : null;
  const mark = focused && (focused.dataset.key || focused.getAttribute("href") || focused.id);
  replace(container, build());
  container.dataset.shown = key;
  if (mark) {
    const again = [...container.querySelectorAll("[data-key], a[href], [id]")].find(
      (el) => el.dataset.key === mark || el.getAttribute("href") === mark || el.id === mark,
    );
    if (again) again.focus({ preventScroll: true });
  }
  return true;
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

// -- lists ----------------------------------------------------------------------------------------

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

/** A list page: a heading and a body polled every LIST_POLL_MS, rebuilt only when its data changed
 * (or, when `ticking(data)` says something in it is still running, as its durations grow). */
function listPage(title, crumbs, load, build, ticking = () => false) {
  document.title = `${title} · amlpipe studio`;
  const body = h("div", {}, h("p", {}, "Loading…"));
  replace(main, crumbs, h("h1", {}, title), body);
  every(LIST_POLL_MS, async () => {
    const data = await load();
    const clock = ticking(data) ? `|${Math.floor(Date.now() / LIST_POLL_MS)}` : "";
    refresh(body, JSON.stringify(data) + clock, () => build(data));
  });
}

/** Whether a list of runs has one still going (its duration is counted to now). */
const anyRunning = (runs) => runs.some((r) => !r.Status.EndTime);

function experimentsPage() {
  listPage("Experiments", null, async () => (await api("experiments")).value, (value) =>
    table(
      "Experiments",
      [
        ["Experiment", (e) => link(`#/experiments/${seg(e.Name)}`, e.Name)],
        ["Created", (e) => formatTime(e.CreatedDate)],
      ],
      value.slice().sort((a, b) => (b.CreatedDate || "").localeCompare(a.CreatedDate || "")),
      { empty: "No experiments yet: submit a pipeline run." },
    ),
  );
}

function experimentPage(name) {
  const crumbs = h("p", { className: "crumbs" }, link("#/experiments", "Experiments"), " / ");
  listPage(name, crumbs, async () => (await api(`PipelineRuns?experimentName=${seg(name)}&top=100`)).value, (value) =>
    table(`Runs of ${name}`, runColumns(), value, { empty: "No runs in this experiment." }),
  anyRunning);
}

function pipelineRunsPage(pipelineId) {
  const crumbs = h("p", { className: "crumbs" }, link("#/pipelines", "Pipelines"), " / ");
  const columns = [...runColumns(), ["Experiment", (r) => link(`#/experiments/${seg(r.RunHistoryExperimentName)}`, r.RunHistoryExperimentName)]];
  listPage(`Runs of pipeline ${pipelineId.slice(0, 8)}`, crumbs, async () => (await api(`PipelineRuns?pipelineId=${seg(pipelineId)}&top=100`)).value, (value) =>
    table("Runs", columns, value, { empty: "No runs of this pipeline." }),
  anyRunning);
}

function pipelinesPage() {
  listPage(
    "Pipelines",
    null,
    async () => {
      const [pipes, eps] = await Promise.all([api("pipelines?active_only=false"), api("PipelineEndpoints?active_only=false")]);
      return { pipes: pipes.value, eps: eps.value };
    },
    ({ pipes, eps }) => {
      const names = new Map(pipes.map((p) => [p.Id, p.Name]));
      return [
        h("h2", {}, "Pipeline endpoints"),
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
        ], eps, { empty: "No pipeline endpoints." }),
        h("h2", {}, "Published pipelines"),
        table("Published pipelines", [
          ["Name", (p) => p.Name],
          ["Id", (p) => h("code", {}, p.Id)],
          ["Status", (p) => badge(p.Status)],
          ["Steps", (p) => p.TotalRunSteps],
          ["Published", (p) => formatTime(p.CreatedDate)],
          ["Runs", (p) => link(`#/pipelines/${seg(p.Id)}/runs`, "runs")],
        ], pipes, { empty: "No published pipelines." }),
      ];
    },
  );
}

function schedulesPage() {
  listPage(
    "Schedules",
    null,
    async () => {
      const [schedules, pipes, eps] = await Promise.all([
        api("schedules?active_only=false"),
        api("pipelines?active_only=false"),
        api("PipelineEndpoints?active_only=false"),
      ]);
      return { schedules: schedules.value, pipes: pipes.value, eps: eps.value };
    },
    ({ schedules, pipes, eps }) => {
      const targets = new Map([...pipes.map((p) => [p.Id, `pipeline ${p.Name}`]), ...eps.map((e) => [e.Id, `endpoint ${e.Name}`])]);
      return table("Schedules", [
        ["Schedule", (x) => x.Name],
        ["Status", (x) => badge(x.Status)],
        ["Trigger", (x) => describeSchedule(x)],
        ["Runs", (x) => targets.get(x.PipelineEndpointId || x.PipelineId) || x.PipelineEndpointId || x.PipelineId],
        ["Experiment", (x) => link(`#/experiments/${seg(x.ExperimentName)}`, x.ExperimentName)],
        ["Next due", (x) => h("span", { className: "next-due" }, formatTime(x.NextDue))],
        ["Last fired", (x) => formatTime(x.LastFired)],
        ["Last run", (x) => (x.LastRunId ? runLink(x.LastRunId) : "—")],
        ["Last error", (x) => (x.LastError ? h("span", { className: "error-text" }, x.LastError) : "—")],
      ], schedules, { empty: "No schedules." });
    },
  );
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

/** What an empty log means, by the step's status. */
function emptyLogText(status) {
  if (status === "NotStarted" || status === "Queued") return "This step has not started yet.";
  if (status === "Bypassed") return "Bypassed: this step did not run.";
  if (status === "Canceled") return "Canceled before it printed anything.";
  return isTerminal(status) ? "This step printed nothing." : "No output yet.";
}

function runPage(runId, openStep) {
  document.title = `Run ${runId.slice(0, 8)} · amlpipe studio`;
  const crumb = h("span", {});
  const header = h("div", { className: "run-header" });
  const liveStatus = h("p", { className: "run-status", "aria-live": "polite", tabindex: "-1" });
  const facts = h("dl", { className: "facts" });
  const actions = h("div", { className: "actions" });
  const graphBox = h("div", { className: "graph-box" });
  const stepBox = h("section", { className: "step-panel", "aria-labelledby": "step-title" });
  const params = h("div", {});
  const runMetrics = h("div", {});
  header.append(h("h1", {}, "Run ", h("code", {}, runId)), liveStatus, facts, actions);
  replace(
    main,
    h("p", { className: "crumbs" }, link("#/experiments", "Experiments"), " / ", crumb),
    header,
    h("div", { className: "run-body" }, h("section", { className: "graph-section", "aria-label": "Pipeline graph" }, h("h2", {}, "Graph"), graphBox), stepBox),
    h("div", { className: "columns" }, h("section", {}, h("h2", {}, "Parameters"), params), h("section", {}, h("h2", {}, "Run metrics"), runMetrics)),
  );

  let graph = null;
  let model = null;
  let layout = null;
  let run = null;
  let selected = openStep || null;
  let panelOpen = false;
  let stepGeneration = 0;
  let confirming = false;
  let metricsKey = null;
  /** Redraws the open step's facts; the run poll calls it with every run it reads. */
  let onRun = () => {};

  // Opening a step stays on the page (no hashchange, no reload of the run): the address records the
  // step so a reload or a shared link opens it again, and focus stays on the graph.
  const select = (name) => {
    if (name === selected) return;
    selected = name;
    window.history.replaceState(null, "", `#/runs/${seg(runId)}/${seg(name)}`);
    drawGraphNow();
    panelOpen = true;
    openStepPanel(name);
    // In a narrow window the panel is below the graph: bring it into view (focus stays on the step).
    if (window.matchMedia("(max-width: 900px)").matches) stepBox.scrollIntoView({ block: "start" });
  };

  const drawHeader = () => {
    const status = run.Status.StatusCode;
    refresh(crumb, run.RunHistoryExperimentName, () => link(`#/experiments/${seg(run.RunHistoryExperimentName)}`, run.RunHistoryExperimentName));
    refresh(liveStatus, `${status}|${run.Status.StatusDetail || ""}`, () => [badge(status), " ", run.Status.StatusDetail || ""]);
    const duration = formatDuration(durationSeconds(run.Status.CreationTime, run.Status.EndTime));
    refresh(facts, `${triggerOf(run)}|${duration}|${run.PipelineId}`, () => [
      h("dt", {}, "Trigger"), h("dd", { id: "run-trigger" }, triggerOf(run)),
      h("dt", {}, "Created"), h("dd", {}, formatTime(run.Status.CreationTime)),
      h("dt", {}, "Duration"), h("dd", {}, duration),
      h("dt", {}, "Pipeline"), h("dd", {}, run.PipelineId ? h("code", {}, run.PipelineId) : "unpublished graph"),
    ]);
    const offer = session.me && canCancel(session.me.role, run);
    const state = offer ? (confirming ? "confirm" : "offer") : run.CancelRequested && !isTerminal(status) ? "requested" : "none";
    refresh(actions, state, () => {
      if (state === "confirm") {
        return [
          h("span", { id: "confirm-text" }, "Cancel this run? Steps running now are stopped."),
          h("button", { className: "danger", id: "confirm-cancel", onclick: cancelRun }, "Yes, cancel the run"),
          h("button", { id: "keep-running", onclick: () => { confirming = false; drawHeader(); document.getElementById("cancel-run").focus(); } }, "No, keep it running"),
        ];
      }
      if (state === "offer") {
        return h("button", { className: "danger", id: "cancel-run", onclick: () => { confirming = true; drawHeader(); document.getElementById("confirm-cancel").focus(); } }, "Cancel run…");
      }
      return state === "requested" ? h("span", {}, "Cancel requested…") : [];
    });
  };

  const cancelRun = async () => {
    const button = document.getElementById("confirm-cancel");
    if (button) button.disabled = true;
    try {
      const answer = await api(`PipelineRuns/${seg(runId)}/cancel`, { method: "POST" });
      confirming = false;
      run = { ...run, ...answer, StepRuns: run.StepRuns };
      drawHeader();
      liveStatus.focus(); // the buttons are gone: keep the keyboard on the run's status
    } catch (error) {
      report(error);
      if (button) button.disabled = false;
    }
  };

  const drawGraphNow = () => {
    const statuses = stepStatuses(graph, run.StepRuns);
    const key = JSON.stringify([selected, [...statuses].map(([n, st]) => [n, st.status, st.reused, st.attempt])]);
    if (graphBox.dataset.shown === key) return;
    const focused = graphBox.contains(document.activeElement) ? document.activeElement.dataset.step : undefined;
    replace(graphBox, drawGraph(model, layout, statuses, selected, select));
    graphBox.dataset.shown = key;
    if (focused !== undefined) {
      const again = graphBox.querySelector(`[data-step="${CSS.escape(focused)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  };

  const openStepPanel = (name) => {
    stepGeneration += 1;
    const mine = stepGeneration;
    const step = graph.steps.find((x) => x.name === name);
    delete stepBox.dataset.live;
    if (!step) {
      replace(stepBox, h("h2", { id: "step-title" }, "Steps"), h("p", { className: "empty" }, `This run has no step '${name}'.`));
      return;
    }
    const logBox = h("pre", { className: "log", id: "step-log", tabindex: "0", "aria-label": `Output of ${name}` });
    const dropped = h("p", { className: "empty", hidden: true });
    const metricsBox = h("div", { id: "step-metrics" });
    const stepFacts = h("dl", { className: "facts" });
    const artifacts = h("div", {});
    replace(
      stepBox,
      h("h2", { id: "step-title" }, name),
      stepFacts,
      h("h3", {}, "Log"),
      dropped,
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
    // Nothing more will happen to the step: it ended, or the run did (a step of an ended run that is
    // still NotStarted never starts).
    const over = () => isTerminal(current().status) || isTerminal(run.Status.StatusCode);
    const drawFacts = () => {
      const st = current();
      const duration = formatDuration(durationSeconds(st.start, st.end));
      refresh(stepFacts, JSON.stringify([st.status, st.detail, st.attempt, duration, st.reused, st.reuseReason]), () => [
        h("dt", {}, "Status"), h("dd", {}, badge(st.status), st.detail ? ` ${st.detail}` : ""),
        h("dt", {}, "Attempt"), h("dd", {}, st.attempt || "—"),
        h("dt", {}, "Duration"), h("dd", {}, duration),
        h("dt", {}, "Reuse"), h("dd", {}, st.reused ? `Reused: ${st.reuseReason || ""}` : st.reuseReason || "—"),
      ]);
    };
    drawFacts();
    onRun = () => {
      if (mine === stepGeneration) drawFacts();
    };

    let stillPolling = 2;
    const stopped = () => {
      stillPolling -= 1;
      if (stillPolling === 0 && mine === stepGeneration) stepBox.dataset.live = "done";
    };
    let tail = null;
    let shownChars = 0;
    const showEmpty = () => {
      if (!shownChars) replace(logBox, emptyLogText(current().status));
    };
    const append = (text) => {
      if (!shownChars) replace(logBox);
      logBox.append(document.createTextNode(text));
      shownChars += text.length;
      while (shownChars > LOG_KEEP_CHARS && logBox.firstChild) {
        shownChars -= logBox.firstChild.textContent.length;
        logBox.firstChild.remove();
        dropped.hidden = false;
        replace(dropped, "Earlier output is not shown here: amlpipe run logs prints all of it.");
      }
    };
    every(LOG_POLL_MS, async () => {
      if (mine !== stepGeneration) return false;
      drawFacts();
      // Read until caught up (a long log arrives in chunks of at most 1 MiB), then wait for more.
      for (;;) {
        const offset = tail ? tail.offset : 0;
        const chunk = await api(`PipelineRuns/${seg(runId)}/steps/${seg(name)}/logs?offset=${offset}`);
        if (mine !== stepGeneration) return false;
        const follow = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
        tail = appendLog(tail, chunk);
        if (tail.restart) {
          replace(logBox);
          shownChars = 0;
          dropped.hidden = true;
        }
        if (tail.added) append(tail.added);
        showEmpty();
        if (follow) logBox.scrollTop = logBox.scrollHeight;
        if (tail.pending) continue; // a new attempt: read it from its first byte now
        const caughtUp = chunk.nextOffset >= chunk.size;
        if (!caughtUp && tail.added) continue;
        if (!over()) return true;
        return chunk.runId !== null && !caughtUp; // over: only what is left to read keeps the tail going
      }
    }, stopped);
    let lastMetrics = "";
    every(LOG_POLL_MS * 2, async () => {
      if (mine !== stepGeneration) return false;
      const ended = over();
      const answer = await api(`PipelineRuns/${seg(runId)}/steps/${seg(name)}/metrics`);
      if (mine !== stepGeneration) return false;
      const text = JSON.stringify(answer.metrics);
      if (text !== lastMetrics) {
        lastMetrics = text;
        replace(metricsBox, metricsView(answer.metrics, "No metrics logged."));
      }
      if (ended) {
        const files = answer.runId ? await api(`PipelineRuns/${seg(runId)}/steps/${seg(name)}/artifacts`) : { value: [] };
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
    }, stopped);
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
    onRun();
    refresh(params, JSON.stringify(run.ParameterAssignments || {}), () =>
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
    // The run's own metrics (run.parent.log) change only while steps run: read them when a step's
    // status moved, and every 10 s while the run is going.
    const key = graphBox.dataset.shown + run.Status.StatusCode + (done ? "" : Math.floor(Date.now() / 10000));
    if (key !== metricsKey) {
      const metrics = await api(`PipelineRuns/${seg(runId)}/metrics`);
      metricsKey = key;
      refresh(runMetrics, JSON.stringify(metrics.metrics), () => metricsView(metrics.metrics, "No run-level metrics (run.parent.log)."));
    }
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

/** The page the address names: its parts, or null for an address that is not a page (#main). */
function pageParts() {
  const hash = window.location.hash;
  if (hash && hash !== "#" && !hash.startsWith("#/")) return null;
  try {
    return hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return ["not-found"];
  }
}

/** Show the page the address names; `moveFocus` (after an in-page navigation, not on first load) puts
 * keyboard focus on the new content, as a screen reader user expects. */
function route(moveFocus = true) {
  const parts = pageParts();
  if (parts === null) return; // a fragment inside the page, not a page of the studio
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
  const [page, id, sub] = parts;
  markNav(page === "runs" ? "experiments" : page || "experiments");
  if (page === "runs" && id) runPage(id, sub);
  else if (page === "experiments" && id) experimentPage(id);
  else if (page === "pipelines" && id && sub === "runs") pipelineRunsPage(id);
  else if (page === "pipelines") pipelinesPage();
  else if (page === "schedules") schedulesPage();
  else if (!page || page === "experiments") experimentsPage();
  else replace(main, h("h1", {}, "Not found"), h("p", {}, "The studio has no such page. ", link("#/experiments", "Experiments")));
  if (moveFocus) main.focus({ preventScroll: true });
}

// The skip link moves focus to the content without changing the address (the address is the page).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => route(true));
route(false);
