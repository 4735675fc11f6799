// What the studio shows, decided without the DOM or the network: the graph's nodes, edges and layout,
// a run's trigger and duration, which metrics are charts, who may cancel. Unit-tested with `node --test`
// (studio/tests/); app.js draws what these return.

/** Run and step statuses after which nothing changes (the service's terminal statuses). */
export const TERMINAL = Object.freeze(["Finished", "Failed", "Canceled", "Bypassed", "PartiallyExecuted"]);

/** Roles from least to most; a role may do whatever the roles before it may. */
export const ROLES = Object.freeze(["Reader", "Operator", "Contributor", "Owner"]);

export function isTerminal(status) {
  return TERMINAL.includes(status);
}

/** Whether `role` may call an API that needs `required` (unknown roles may do nothing). */
export function roleAllows(role, required) {
  const have = ROLES.indexOf(role);
  const need = ROLES.indexOf(required);
  return have >= 0 && need >= 0 && have >= need;
}

/** Whether the studio offers `role` a cancel button for `run` (the API checks again). */
export function canCancel(role, run) {
  return roleAllows(role, "Operator") && !isTerminal(run.Status.StatusCode) && !run.CancelRequested;
}

/**
 * How a run was started: "Data" (a datastore watch saw a file), "Schedule" (a recurrence fired),
 * "REST" (a published pipeline or endpoint called over HTTP) or "Manual" (Experiment.submit).
 */
export function triggerOf(run) {
  const tags = run.tags || {};
  if (run.ScheduleId) {
    return "amlpipe.schedule.blob" in tags ? "Data" : "Schedule";
  }
  if (run.RunSource === "Schedule") return "Schedule";
  if (run.RunSource === "SDK") return "Manual";
  return "REST";
}

/** Seconds from `start` to `end` (or `now` while running); null when it has not started. */
export function durationSeconds(start, end, now = Date.now()) {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  return Math.max(0, (to - from) / 1000);
}

/** "4.2s", "3m 05s", "2h 01m"; an em dash for null. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m ${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(whole / 3600)}h ${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`;
}

/** An ISO time as the reader's local "2026-11-27 01:16:44"; an em dash for none. */
export function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** The label of a data source node: what an input reads from outside the graph. */
function sourceLabel(input) {
  switch (input.source) {
    case "dataset":
      return `dataset ${input.dataset_name}${input.dataset_version ? ` v${input.dataset_version}` : ""}`;
    case "data_reference":
      return `${input.datastore}/${input.path_on_datastore || ""}`;
    case "datapath_parameter":
      return `parameter ${input.parameter}`;
    default:
      return input.name;
  }
}

/**
 * The graph's nodes and edges: one node per step, one per outside data source (datasets, datastore
 * paths, datapath parameters; shared sources are one node), an edge per PipelineData a step reads
 * (labelled with its name), per outside input (labelled with the input's name) and per `run_after`.
 */
export function graphModel(graph) {
  const nodes = [];
  const edges = [];
  const producers = new Map();
  for (const step of graph.steps) {
    nodes.push({ id: `step:${step.name}`, kind: "step", name: step.name, label: step.name });
    for (const output of step.outputs) {
      if (!producers.has(output.name)) producers.set(output.name, step.name);
    }
  }
  const sources = new Map();
  for (const step of graph.steps) {
    const to = `step:${step.name}`;
    for (const input of step.inputs) {
      if (input.source === "pipeline_data") {
        const producer = producers.get(input.pipeline_data);
        if (producer !== undefined) {
          edges.push({ from: `step:${producer}`, to, label: input.pipeline_data });
        }
        continue;
      }
      const label = sourceLabel(input);
      const id = `data:${label}`;
      if (!sources.has(id)) {
        sources.set(id, true);
        nodes.push({ id, kind: "data", name: label, label });
      }
      edges.push({ from: id, to, label: input.name });
    }
    for (const before of step.run_after || []) {
      if (producers.has(before) || graph.steps.some((s) => s.name === before)) {
        edges.push({ from: `step:${before}`, to, label: "" });
      }
    }
  }
  return { nodes, edges };
}

/** Layout sizes, in SVG user units. */
export const NODE_WIDTH = 200;
export const NODE_HEIGHT = 56;
const GAP_X = 48;
const GAP_Y = 64;
const MARGIN = 16;

/**
 * A layered top-to-bottom layout (Sugiyama-style, for the small graphs pipelines are): each node's
 * layer is its longest path from a source, nodes within a layer are ordered by the mean position of
 * their neighbours (a few sweeps down and up, which removes most crossings), then centred.
 * Returns positions (top-left corners), edges with their end points and label point, and the size.
 */
export function layoutGraph(model) {
  const ids = model.nodes.map((n) => n.id);
  const incoming = new Map(ids.map((id) => [id, []]));
  const outgoing = new Map(ids.map((id) => [id, []]));
  for (const e of model.edges) {
    if (incoming.has(e.to) && outgoing.has(e.from)) {
      incoming.get(e.to).push(e.from);
      outgoing.get(e.from).push(e.to);
    }
  }
  // Longest-path layering in topological order (Kahn); nodes on a cycle (never in a valid graph)
  // keep layer 0 instead of looping.
  const layer = new Map(ids.map((id) => [id, 0]));
  const indegree = new Map(ids.map((id) => [id, incoming.get(id).length]));
  const queue = ids.filter((id) => indegree.get(id) === 0);
  while (queue.length) {
    const id = queue.shift();
    for (const next of outgoing.get(id)) {
      layer.set(next, Math.max(layer.get(next), layer.get(id) + 1));
      indegree.set(next, indegree.get(next) - 1);
      if (indegree.get(next) === 0) queue.push(next);
    }
  }
  const depth = Math.max(0, ...layer.values());
  const layers = Array.from({ length: depth + 1 }, () => []);
  for (const id of ids) layers[layer.get(id)].push(id);

  const position = new Map();
  const remember = () => layers.forEach((row) => row.forEach((id, i) => position.set(id, i)));
  remember();
  const barycenter = (id, neighbours) => {
    const around = neighbours.get(id).filter((n) => position.has(n));
    if (!around.length) return position.get(id);
    return around.reduce((sum, n) => sum + position.get(n), 0) / around.length;
  };
  for (let sweep = 0; sweep < 4; sweep += 1) {
    const down = sweep % 2 === 0;
    const order = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const row of order) {
      const keys = new Map(row.map((id) => [id, barycenter(id, down ? incoming : outgoing)]));
      row.sort((a, b) => keys.get(a) - keys.get(b) || ids.indexOf(a) - ids.indexOf(b));
      remember();
    }
  }

  const widest = Math.max(1, ...layers.map((row) => row.length));
  const width = MARGIN * 2 + widest * NODE_WIDTH + (widest - 1) * GAP_X;
  const height = MARGIN * 2 + layers.length * NODE_HEIGHT + (layers.length - 1) * GAP_Y;
  const nodes = new Map();
  layers.forEach((row, depthIndex) => {
    const rowWidth = row.length * NODE_WIDTH + (row.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    row.forEach((id, i) => {
      nodes.set(id, {
        x: left + i * (NODE_WIDTH + GAP_X),
        y: MARGIN + depthIndex * (NODE_HEIGHT + GAP_Y),
        layer: depthIndex,
      });
    });
  });
  const edges = model.edges
    .filter((e) => nodes.has(e.from) && nodes.has(e.to))
    .map((e) => {
      const a = nodes.get(e.from);
      const b = nodes.get(e.to);
      const x1 = a.x + NODE_WIDTH / 2;
      const y1 = a.y + NODE_HEIGHT;
      const x2 = b.x + NODE_WIDTH / 2;
      const y2 = b.y;
      return { ...e, x1, y1, x2, y2, labelX: (x1 + x2) / 2, labelY: (y1 + y2) / 2 };
    });
  return { nodes, edges, width, height };
}

/** Each step's row by name; a step with no row yet is NotStarted. */
export function stepStatuses(graph, stepRuns) {
  const byName = new Map((stepRuns || []).map((s) => [s.Name, s]));
  return new Map(
    graph.steps.map((step) => {
      const row = byName.get(step.name);
      return [
        step.name,
        {
          status: row ? row.Status.StatusCode : "NotStarted",
          reused: Boolean(row && row.IsReused),
          attempt: row ? row.Attempt : 0,
          detail: row ? row.Status.StatusDetail : null,
          start: row ? row.Status.StartTime : null,
          end: row ? row.Status.EndTime : null,
          reuseReason: row ? row.ReuseReason : null,
        },
      ];
    }),
  );
}

/**
 * A metrics object (name → value as azureml's get_metrics() gives it) split into what is drawn: a
 * chart per metric logged more than once with numbers (values in the order logged), a row per
 * single value, and the rest (tables, rows, images) as text.
 */
export function splitMetrics(metrics) {
  const charts = [];
  const scalars = [];
  for (const [name, value] of Object.entries(metrics || {})) {
    if (Array.isArray(value) && value.length > 1 && value.every((v) => typeof v === "number" && Number.isFinite(v))) {
      charts.push({ name, values: value });
    } else {
      scalars.push({ name, value: Array.isArray(value) && value.length === 1 ? value[0] : value });
    }
  }
  return { charts, scalars };
}

/** A metric value as text: numbers to at most 6 significant digits, objects as JSON. */
export function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** The smallest and largest of `values` (a loop: spreading 100k values into Math.min overflows). */
export function extent(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** At most `limit` values, evenly picked, first and last kept (a chart of 100k points draws 100k dots). */
export function sample(values, limit) {
  if (values.length <= limit) return values.map((value, i) => ({ value, index: i + 1 }));
  const step = (values.length - 1) / (limit - 1);
  return Array.from({ length: limit }, (_, k) => {
    const i = Math.round(k * step);
    return { value: values[i], index: i + 1 };
  });
}

/** Points of a line chart of `values` in a `width` × `height` box with `pad` inside it (at most
 * `limit` points, each with the 1-based position of its value in the series). */
export function chartPoints(values, width, height, pad, limit = 500) {
  const { min, max } = extent(values);
  const span = max - min || 1;
  const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0;
  return sample(values, limit).map(({ value, index }) => ({
    x: pad + (index - 1) * step,
    y: height - pad - ((value - min) / span) * (height - 2 * pad),
    value,
    index,
  }));
}

/**
 * Where a log tail stands after a chunk arrives: the execution it follows, the next offset to ask
 * for, the text to add (`added`), and `restart` when what is shown must be cleared first.
 *
 * A chunk of another execution (the step was retried, or the first answer) is only taken from byte 0:
 * one read at the old execution's offset is dropped, with `offset` 0 so the next read starts the new
 * log from its beginning. A chunk that does not start where the tail stands (a repeated or stale
 * answer) adds nothing.
 */
export function appendLog(tail, chunk) {
  if (!tail || tail.runId !== chunk.runId) {
    if (chunk.offset !== 0) return { runId: chunk.runId, offset: 0, added: "", restart: true, pending: true };
    return { runId: chunk.runId, offset: chunk.nextOffset, added: chunk.content, restart: true, pending: false };
  }
  if (chunk.offset !== tail.offset) return { ...tail, added: "", restart: false, pending: false };
  return { runId: tail.runId, offset: chunk.nextOffset, added: chunk.content, restart: false, pending: false };
}

/** A schedule's trigger in words: "Every 1 Day from …" or "Watch workspaceblobstore/incoming". */
export function describeSchedule(schedule) {
  const r = schedule.Recurrence;
  if (r) {
    const start = r.StartTime ? ` from ${r.StartTime} ${r.TimeZone || "UTC"}` : "";
    return `Every ${r.Interval} ${r.Frequency}${r.Interval === 1 ? "" : "s"}${start}`;
  }
  const t = schedule.DataStoreTriggerInfo;
  if (t) return `Watch ${t.DataStoreName}/${t.PathOnDataStore || ""} every ${t.PollingInterval} min`;
  return "—";
}
