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

/**
 * A table with a header row and one row per item; `columns` are [title, item => cell]. Links and
 * buttons in a cell get a data-key (the item's Id or Name, and the column), so a redraw can give focus
 * back to the same control of the same row even when several rows link to the same place.
 */
export function table(caption, columns, items, { empty = "Nothing yet." } = {}) {
  if (!items.length) return h("p", { className: "empty" }, empty);
  const row = (item, index) => {
    const id = item.Id || item.Name || (Array.isArray(item) ? item[0] : undefined) || `#${index}`;
    return h(
      "tr",
      {},
      columns.map(([, cell], column) => {
        const td = h("td", {}, cell(item));
        td.querySelectorAll("a, button").forEach((control, n) => {
          control.dataset.key = `${id}|${column}|${n}`;
        });
        return td;
      }),
    );
  };
  return h(
    "table",
    {},
    h("caption", { className: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, items.map(row)),
  );
}

/** A status badge: the status in words (colour is never the only cue). */
export function badge(status) {
  return h("span", { className: `badge status-${status}`, dataset: { status } }, status);
}
