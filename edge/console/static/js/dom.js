// Building the page node by node. The console's Content-Security-Policy requires Trusted Types
// for every HTML sink, and no policy exists: nothing here (or anywhere in the console) writes
// HTML from a string. Text goes in as text nodes; attributes as attributes.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function apply(el, props) {
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "value" && "value" in el) el.value = value;
    else if (name === "checked" || name === "disabled" || name === "selected") el[name] = Boolean(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  return el;
}

/** An HTML element: h("a", {href: "/x", class: "y"}, "text", child, [more]). */
export function h(tag, props, ...children) {
  const el = apply(document.createElement(tag), props);
  append(el, children);
  return el;
}

/** An SVG element, the same way. */
export function s(tag, props, ...children) {
  const el = apply(document.createElementNS(SVG_NS, tag), props);
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const numbers = new Intl.NumberFormat("en");
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

export function fmtNumber(n) {
  return n === null || n === undefined ? "—" : numbers.format(n);
}

export function fmtCompact(n) {
  return n === null || n === undefined ? "—" : compact.format(n);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Unix seconds as local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(unix, withSeconds = true) {
  if (unix === null || unix === undefined) return "—";
  const d = new Date(unix * 1000);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}` + (withSeconds ? `:${pad(d.getSeconds())}` : "");
  return `${date} ${time}`;
}

/** "in 14 min", "3 h ago". */
export function fmtRelative(unix, now = Date.now() / 1000) {
  if (unix === null || unix === undefined) return "never";
  const delta = unix - now;
  const abs = Math.abs(delta);
  let text;
  if (abs < 45) text = `${Math.round(abs)} s`;
  else if (abs < 3600) text = `${Math.round(abs / 60)} min`;
  else if (abs < 86400 * 2) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} days`;
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

export function fmtDuration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${+(seconds / 3600).toFixed(1)} h`;
  return `${+(seconds / 86400).toFixed(1)} days`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A time with its exact value in a tooltip. */
export function timeCell(unix) {
  if (unix === null || unix === undefined) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: new Date(unix * 1000).toISOString(), title: new Date(unix * 1000).toISOString() }, fmtTime(unix));
}

/** A button that copies `text` (read when clicked) to the clipboard. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "copy" }, label);
  button.addEventListener("click", async () => {
    const value = typeof text === "function" ? text() : text;
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

/** A block of code with a copy button. */
export function codeBlock(text, { label } = {}) {
  const block = h("div", { class: "code" }, h("pre", {}, h("code", {}, text)), copyButton(text));
  return label ? h("div", {}, h("div", { class: "code-label" }, label), block) : block;
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
}

export function notice(kind, ...children) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

/** A modal confirmation; resolves to the form's values (an object) or null when cancelled. */
export function confirmDialog({ title, message, confirm = "Confirm", danger = false, fields = [] }) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog", class: "dialog-body" },
      h("h2", {}, title),
      h("p", {}, message),
      ...fields,
      h("div", { class: "actions" },
        h("button", { type: "submit", value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { type: "submit", value: "ok", class: danger ? "danger" : "primary" }, confirm)));
    const dialog = h("dialog", { class: "dialog" }, form);
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok";
      const values = ok ? Object.fromEntries(new FormData(form)) : null;
      dialog.remove();
      resolve(values);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A <select> of [value, label] pairs. */
export function select(name, options, selected, props = {}) {
  return h("select", { name, ...props },
    options.map(([value, label]) => h("option", { value, selected: String(value) === String(selected ?? "") }, label)));
}
