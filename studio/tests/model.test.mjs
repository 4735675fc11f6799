// Unit tests of the studio's pure logic (studio/js/model.js): run by `make test` with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  NODE_HEIGHT,
  NODE_WIDTH,
  appendLog,
  canCancel,
  chartPoints,
  describeSchedule,
  durationSeconds,
  formatDuration,
  formatValue,
  graphModel,
  layoutGraph,
  roleAllows,
  splitMetrics,
  stepStatuses,
  triggerOf,
} from "../js/model.js";

const step = (name, { inputs = [], outputs = [], run_after = [] } = {}) => ({
  name,
  inputs,
  outputs: outputs.map((o) => ({ name: o })),
  run_after,
});
const reads = (data, name = data) => ({ source: "pipeline_data", name, pipeline_data: data });

// The DP-100 pipeline: a registered dataset → prepare data → (prepped) → train model.
const dp100 = {
  steps: [
    step("prepare data", {
      inputs: [{ source: "dataset", name: "raw_data", dataset_name: "raw_dataset", dataset_version: null }],
      outputs: ["prepped"],
    }),
    step("train model", { inputs: [reads("prepped")] }),
  ],
};

test("the DP-100 graph has its dataset as a source node and edges labelled with the data they pass", () => {
  const model = graphModel(dp100);
  assert.deepEqual(
    model.nodes.map((n) => [n.id, n.kind]),
    [["step:prepare data", "step"], ["step:train model", "step"], ["data:dataset raw_dataset", "data"]],
  );
  assert.deepEqual(model.edges, [
    { from: "data:dataset raw_dataset", to: "step:prepare data", label: "raw_data" },
    { from: "step:prepare data", to: "step:train model", label: "prepped" },
  ]);
});

test("inputs of one outside source share its node; run_after edges carry no label; unknown data draws no edge", () => {
  const ref = { source: "data_reference", name: "in", datastore: "blob", path_on_datastore: "raw/" };
  const model = graphModel({
    steps: [
      step("a", { inputs: [ref] }),
      step("b", { inputs: [{ ...ref, name: "again" }, reads("nobody-writes-this")], run_after: ["a"] }),
    ],
  });
  assert.equal(model.nodes.filter((n) => n.kind === "data").length, 1);
  assert.deepEqual(model.edges, [
    { from: "data:blob/raw/", to: "step:a", label: "in" },
    { from: "data:blob/raw/", to: "step:b", label: "again" },
    { from: "step:a", to: "step:b", label: "" },
  ]);
});

function overlaps(layout) {
  const boxes = [...layout.nodes.values()];
  return boxes.some((a, i) =>
    boxes.slice(i + 1).some((b) => Math.abs(a.x - b.x) < NODE_WIDTH && Math.abs(a.y - b.y) < NODE_HEIGHT),
  );
}

test("a layer per longest path: every edge points down, no boxes overlap, everything fits the size", () => {
  // a → b → d, a → c → d, a → d (the long edge must not pull d up to layer 1)
  const model = graphModel({
    steps: [
      step("a", { outputs: ["x", "y", "z"] }),
      step("b", { inputs: [reads("x")], outputs: ["bx"] }),
      step("c", { inputs: [reads("y")], outputs: ["cy"] }),
      step("d", { inputs: [reads("bx"), reads("cy"), reads("z")] }),
    ],
  });
  const layout = layoutGraph(model);
  const layerOf = (name) => layout.nodes.get(`step:${name}`).layer;
  assert.deepEqual(["a", "b", "c", "d"].map(layerOf), [0, 1, 1, 2]);
  for (const e of layout.edges) assert.ok(e.y2 > e.y1, `${e.from} → ${e.to} points down`);
  assert.equal(overlaps(layout), false);
  for (const at of layout.nodes.values()) {
    assert.ok(at.x >= 0 && at.x + NODE_WIDTH <= layout.width && at.y >= 0 && at.y + NODE_HEIGHT <= layout.height);
  }
});

test("ordering within a layer follows the neighbours, so two parallel chains do not cross", () => {
  // Two chains whose second layers are declared in the opposite order: a1→b1, a2→b2 with b2 first.
  const model = graphModel({
    steps: [
      step("a1", { outputs: ["one"] }),
      step("a2", { outputs: ["two"] }),
      step("b2", { inputs: [reads("two")] }),
      step("b1", { inputs: [reads("one")] }),
    ],
  });
  const layout = layoutGraph(model);
  const x = (name) => layout.nodes.get(`step:${name}`).x;
  assert.equal(Math.sign(x("a1") - x("a2")), Math.sign(x("b1") - x("b2")));
});

test("layout is deterministic and survives a graph with no edges or a cycle", () => {
  const model = graphModel({ steps: [step("only")] });
  assert.deepEqual(layoutGraph(model), layoutGraph(model));
  const cyclic = { nodes: [{ id: "p" }, { id: "q" }], edges: [{ from: "p", to: "q" }, { from: "q", to: "p" }] };
  const layout = layoutGraph(cyclic);
  assert.equal(layout.nodes.size, 2);
  assert.equal(overlaps(layout), false);
});

test("steps without a row yet are NotStarted; rows give status, reuse and attempt", () => {
  const statuses = stepStatuses(dp100, [
    { Name: "prepare data", Attempt: 2, IsReused: true, Status: { StatusCode: "Finished", StatusDetail: null } },
  ]);
  assert.equal(statuses.get("prepare data").status, "Finished");
  assert.equal(statuses.get("prepare data").reused, true);
  assert.equal(statuses.get("prepare data").attempt, 2);
  assert.equal(statuses.get("train model").status, "NotStarted");
});

test("the trigger: a datastore watch, a recurrence, REST, or the SDK", () => {
  assert.equal(triggerOf({ ScheduleId: "s", RunSource: "Schedule", tags: { "amlpipe.schedule.blob": "ws/x.csv" } }), "Data");
  assert.equal(triggerOf({ ScheduleId: "s", RunSource: "Schedule", tags: { "amlpipe.schedule.due": "t" } }), "Schedule");
  assert.equal(triggerOf({ ScheduleId: null, RunSource: "API", tags: {} }), "REST");
  assert.equal(triggerOf({ ScheduleId: null, RunSource: "SDK", tags: {} }), "Manual");
});

test("only Operator and above are offered cancel, and only while the run can still be canceled", () => {
  const running = { Status: { StatusCode: "Running" }, CancelRequested: false };
  assert.equal(canCancel("Reader", running), false);
  assert.equal(canCancel("Operator", running), true);
  assert.equal(canCancel("Owner", running), true);
  assert.equal(canCancel("Operator", { ...running, CancelRequested: true }), false);
  assert.equal(canCancel("Operator", { ...running, Status: { StatusCode: "Finished" } }), false);
  assert.equal(canCancel(undefined, running), false);
  assert.equal(roleAllows("Contributor", "Owner"), false);
});

test("durations: running runs count to now, ended ones to their end, unstarted ones have none", () => {
  const start = "2026-11-27T01:00:00Z";
  assert.equal(durationSeconds(start, "2026-11-27T01:00:04.5Z"), 4.5);
  assert.equal(durationSeconds(start, null, Date.parse("2026-11-27T01:02:00Z")), 120);
  assert.equal(durationSeconds(null, null), null);
  assert.deepEqual([4.25, 65, 3725, null].map(formatDuration), ["4.3s", "1m 05s", "1h 02m", "—"]);
});

test("a metric logged more than once with numbers is a chart; everything else is a value", () => {
  const { charts, scalars } = splitMetrics({
    "Fold accuracy": [0.7, 0.72, 0.69],
    Accuracy: 0.71,
    once: [3],
    words: ["a", "b"],
    table: { col: [1, 2] },
  });
  assert.deepEqual(charts, [{ name: "Fold accuracy", values: [0.7, 0.72, 0.69] }]);
  assert.deepEqual(
    scalars.map((m) => [m.name, formatValue(m.value)]),
    [["Accuracy", "0.71"], ["once", "3"], ["words", '["a","b"]'], ["table", '{"col":[1,2]}']],
  );
});

test("chart points span the box, highest value at the top", () => {
  const points = chartPoints([1, 3, 2], 100, 50, 10);
  assert.deepEqual(points.map((p) => [p.x, p.y]), [[10, 40], [50, 10], [90, 25]]);
  assert.deepEqual(chartPoints([5, 5], 100, 50, 10).map((p) => p.y), [40, 40]);
});

test("a log tail appends chunks in order and adds nothing for a repeated answer", () => {
  let tail = appendLog(null, { runId: "r:s:1", offset: 0, nextOffset: 6, content: "hello\n" });
  assert.deepEqual([tail.added, tail.restart, tail.offset], ["hello\n", true, 6]);
  tail = appendLog(tail, { runId: "r:s:1", offset: 6, nextOffset: 12, content: "world\n" });
  assert.deepEqual([tail.added, tail.restart, tail.offset], ["world\n", false, 12]);
  const repeated = appendLog(tail, { runId: "r:s:1", offset: 6, nextOffset: 12, content: "world\n" });
  assert.deepEqual([repeated.added, repeated.restart, repeated.offset], ["", false, 12]);
});

test("a retried step's new attempt is read from its first byte, whatever offset the old one reached", () => {
  // Attempt 1 printed 14 KB; the next read asks from there and gets attempt 2's (shorter) log.
  let tail = appendLog(null, { runId: "r:s:1", offset: 0, nextOffset: 14000, content: "x".repeat(14000) });
  tail = appendLog(tail, { runId: "r:s:2", offset: 14000, nextOffset: 14000, content: "" });
  assert.deepEqual(
    { runId: tail.runId, offset: tail.offset, restart: tail.restart, pending: tail.pending, added: tail.added },
    { runId: "r:s:2", offset: 0, restart: true, pending: true, added: "" },
  );
  tail = appendLog(tail, { runId: "r:s:2", offset: 0, nextOffset: 7, content: "second\n" });
  assert.deepEqual([tail.added, tail.restart, tail.offset, tail.pending], ["second\n", false, 7, false]);
});

test("a chart of a long series is sampled, keeping the first and last values and their positions", () => {
  const values = Array.from({ length: 200000 }, (_, i) => i % 7);
  const points = chartPoints(values, 100, 50, 10, 50);
  assert.equal(points.length, 50);
  assert.deepEqual([points[0].index, points[49].index], [1, 200000]);
  assert.equal(points[49].x, 90);
});

test("schedules are described by their recurrence or the path they watch", () => {
  assert.equal(
    describeSchedule({ Recurrence: { Frequency: "Day", Interval: 1, StartTime: "2030-01-01T02:00:00", TimeZone: "UTC" } }),
    "Every 1 Day from 2030-01-01T02:00:00 UTC",
  );
  assert.equal(describeSchedule({ Recurrence: { Frequency: "Hour", Interval: 6 } }), "Every 6 Hours");
  assert.equal(
    describeSchedule({ Recurrence: null, DataStoreTriggerInfo: { DataStoreName: "ws", PathOnDataStore: "in", PollingInterval: 5 } }),
    "Watch ws/in every 5 min",
  );
});
