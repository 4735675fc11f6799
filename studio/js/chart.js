// A line chart of a metric logged several times (values in the order logged), as SVG, with the values
// also in a list for screen readers and for copying. Long series are sampled for drawing.

import { h, s } from "./dom.js";
import { chartPoints, extent, formatValue } from "./model.js";

const WIDTH = 360;
const HEIGHT = 160;
const PAD = 24;
const LISTED = 1000;

export function drawChart(name, values) {
  const points = chartPoints(values, WIDTH, HEIGHT, PAD);
  const { min, max } = extent(values);
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      className: "chart",
      role: "img",
      "aria-label": `${name}: ${values.length} values from ${formatValue(values[0])} to ${formatValue(values[values.length - 1])}`,
    },
    s("line", { x1: PAD, y1: HEIGHT - PAD, x2: WIDTH - PAD, y2: HEIGHT - PAD, className: "axis" }),
    s("line", { x1: PAD, y1: PAD, x2: PAD, y2: HEIGHT - PAD, className: "axis" }),
    s("text", { x: PAD + 4, y: PAD - 8, className: "tick" }, `max ${formatValue(max)}`),
    s("text", { x: PAD + 4, y: HEIGHT - 6, className: "tick" }, `min ${formatValue(min)}`),
    s("text", { x: WIDTH - PAD, y: HEIGHT - 6, className: "tick", "text-anchor": "end" }, `${values.length} values`),
    s("polyline", { points: points.map((p) => `${p.x},${p.y}`).join(" "), className: "line" }),
    points.map((p) => s("circle", { cx: p.x, cy: p.y, r: 3, className: "dot" }, s("title", {}, `#${p.index}: ${formatValue(p.value)}`))),
  );
  const listed = values.slice(0, LISTED);
  return h(
    "figure",
    { className: "metric-chart", dataset: { metric: name } },
    h("figcaption", {}, name),
    svg,
    h(
      "details",
      {},
      h("summary", {}, "Values"),
      h("ol", {}, listed.map((v) => h("li", {}, formatValue(v)))),
      values.length > LISTED ? h("p", {}, `… and ${values.length - LISTED} more (amlpipe run metrics lists them all).`) : null,
    ),
  );
}
