// Building the page from data without innerHTML: every text the API returns goes in as a text node,
// so a step name or log line can never become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("a", {href: "#/"}, "text", child, ...). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, like h(). */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace everything inside `node` with `children`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return fill(node, {}, children);
}

/** A table with a header row and one row per item; `columns` are [title, item => cell]. */
export function table(caption, columns, items, { empty = "Nothing yet." } = {}) {
  if (!items.length) return h("p", { className: "empty" }, empty);
  return h(
    "table",
    {},
    h("caption", { className: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    h(
      "tbody",
      {},
      items.map((item) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(item))))),
    ),
  );
}

/** A status badge: the status in words (colour is never the only cue). */
export function badge(status) {
  return h("span", { className: `badge status-${status}`, dataset: { status } }, status);
}
