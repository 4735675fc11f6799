// The pipeline graph as SVG: steps as boxes coloured and labelled by status, reused steps dashed and
// marked, data sources as rounded boxes, edges labelled with the data they carry. Steps are buttons:
// Tab reaches them, Enter or Space opens one.

import { s } from "./dom.js";
import { NODE_HEIGHT, NODE_WIDTH } from "./model.js";

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * An <svg> of `layout` (from layoutGraph) for `model` (from graphModel); `statuses` maps a step name
 * to {status, reused, attempt}; `selected` is the open step's name; `onSelect(name)` opens one.
 */
export function drawGraph(model, layout, statuses, selected, onSelect) {
  const byId = new Map(model.nodes.map((n) => [n.id, n]));
  const svg = s("svg", {
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    width: layout.width,
    className: "graph",
    role: "group",
    "aria-label": "Pipeline graph",
  });
  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" },
        s("path", { d: "M0,0 L10,5 L0,10 z", className: "arrowhead" }),
      ),
    ),
  );
  for (const e of layout.edges) {
    const bend = (e.y2 - e.y1) / 2;
    svg.append(
      s(
        "g",
        { className: "edge", dataset: { from: e.from, to: e.to } },
        s("path", {
          d: `M${e.x1},${e.y1} C${e.x1},${e.y1 + bend} ${e.x2},${e.y2 - bend} ${e.x2},${e.y2}`,
          "marker-end": "url(#arrow)",
        }),
        e.label
          ? s("text", { x: e.labelX, y: e.labelY, className: "edge-label", "text-anchor": "middle" }, e.label)
          : null,
      ),
    );
  }
  for (const [id, at] of layout.nodes) {
    const node = byId.get(id);
    if (node.kind === "data") {
      svg.append(
        s(
          "g",
          { className: "node data", transform: `translate(${at.x},${at.y})` },
          s("title", {}, node.label),
          s("rect", { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 24 }),
          s("text", { x: NODE_WIDTH / 2, y: NODE_HEIGHT / 2 + 5, "text-anchor": "middle" }, clip(node.label, 26)),
        ),
      );
      continue;
    }
    const state = statuses.get(node.name) || { status: "NotStarted", reused: false, attempt: 0 };
    const words = `${state.status}${state.reused ? " · reused" : ""}${state.attempt > 1 ? ` · attempt ${state.attempt}` : ""}`;
    const open = () => onSelect(node.name);
    const classes = ["node", "step", `status-${state.status}`, state.reused ? "reused" : "", node.name === selected ? "selected" : ""];
    svg.append(
      s(
        "g",
        {
          className: classes.filter(Boolean).join(" "),
          transform: `translate(${at.x},${at.y})`,
          tabindex: 0,
          role: "button",
          "aria-pressed": node.name === selected ? "true" : "false",
          "aria-label": `Step ${node.name}: ${words}`,
          dataset: { step: node.name, status: state.status, reused: String(state.reused) },
          onclick: open,
          onkeydown: (event) => {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              open();
            }
          },
        },
        s("title", {}, `${node.name} — ${words}`),
        s("rect", { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 6 }),
        s("rect", { className: "bar", width: 8, height: NODE_HEIGHT, rx: 3 }),
        s("text", { x: 18, y: 23, className: "name" }, clip(node.name, 22)),
        s("text", { x: 18, y: 43, className: "state" }, state.reused ? `♻ ${words}` : words),
      ),
    );
  }
  return svg;
}
