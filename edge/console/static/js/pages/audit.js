// Audit: every API request and admin action of the tenant, newest first, filtered by key,
// machine, kind, status and time, a page at a time.

import * as api from "../api.js";
import { h, card, field, select, timeCell, fmtMs, notice } from "../dom.js";

const PAGE = 50;

function toLocalInput(unix) {
  const d = new Date(unix * 1000 - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function fromLocalInput(text) {
  return text ? Math.floor(new Date(text).getTime() / 1000) : null;
}

function statusCell(event) {
  if (event.status === null || event.status === undefined) return h("td", { class: "muted small" }, "—");
  const cls = event.status >= 500 ? "status-5xx" : event.status >= 400 ? "status-4xx" : "status-ok";
  return h("td", {}, h("span", { class: `pill ${cls}` }, String(event.status)), event.error_code ? h("div", { class: "muted small mono" }, event.error_code) : null);
}

export async function renderAudit(ctx) {
  const { main, slug } = ctx;
  const [keys, machines] = await Promise.all([
    api.get(api.tenantPath(slug, "/keys")),
    api.get(api.tenantPath(slug, "/machines")),
  ]);
  const now = Math.floor(Date.now() / 1000);
  const kind = select("kind", [["", "all events"], ["request", "API requests"], ["admin", "admin actions"]], "");
  const key = select("key", [["", "any key"], ...keys.keys.map((k) => [k.name, k.name])], "");
  const machine = select("machine", [["", "any machine"], ...machines.machines.map((m) => [m.name, m.name])], "");
  const status = select("status", [["", "any status"], ["ok", "succeeded"], ["error", "failed"], ["4xx", "4xx"], ["5xx", "5xx"], ["429", "429"]], "");
  const since = h("input", { type: "datetime-local", name: "since", value: toLocalInput(now - 7 * 86400) });
  const until = h("input", { type: "datetime-local", name: "until" });
  const form = h("form", { class: "filters-form", id: "audit-filters" },
    field("Kind", kind), field("Key", key), field("Machine", machine), field("Status", status), field("From", since), field("To", until),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Apply")));

  const rows = h("tbody");
  const position = h("span", { class: "muted small" });
  const newer = h("button", { type: "button", class: "secondary small", disabled: true }, "← Newer");
  const older = h("button", { type: "button", class: "secondary small", disabled: true }, "Older →");
  const message = h("div");
  let cursors = [null]; // the cursor of each page seen so far; the last is this page's
  let next = null;

  const load = async () => {
    message.replaceChildren();
    const query = {
      limit: PAGE, kind: kind.value, key: key.value, machine: machine.value, status: status.value,
      since: fromLocalInput(since.value) ?? 0, until: fromLocalInput(until.value), cursor: cursors[cursors.length - 1],
    };
    let page;
    try {
      page = await api.get(api.withQuery(api.tenantPath(slug, "/audit"), query));
    } catch (error) {
      if (error.status === 403 || error.status === 401) throw error;
      message.append(notice("error", error.message));
      return;
    }
    next = page.next_cursor;
    rows.replaceChildren(...(page.events.length ? page.events.map((e) => h("tr", { class: `event-${e.kind}` },
      h("td", { class: "small nowrap" }, timeCell(e.at)),
      h("td", {}, e.actor, e.client ? h("div", { class: "muted small", title: e.user_agent ?? "" }, e.client) : null),
      h("td", { class: "mono small" }, e.action),
      h("td", { class: "small" }, e.kind === "admin" ? e.subject : e.model ? h("span", { class: "mono" }, e.model) : "—"),
      h("td", { class: "small" }, e.machine ?? "—"),
      statusCell(e),
      h("td", { class: "num small" }, e.prompt_tokens !== null && e.prompt_tokens !== undefined ? `${e.prompt_tokens} / ${e.completion_tokens}` : "—"),
      h("td", { class: "num small" }, fmtMs(e.ttft_ms)),
      h("td", { class: "num small" }, fmtMs(e.duration_ms)))) : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No events match."))]));
    const first = (cursors.length - 1) * PAGE + 1;
    position.textContent = page.events.length ? `events ${first}–${first + page.events.length - 1}` : "";
    newer.disabled = cursors.length === 1;
    older.disabled = next === null;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    load();
  });
  newer.addEventListener("click", () => {
    cursors.pop();
    load();
  });
  older.addEventListener("click", () => {
    cursors.push(next);
    load();
  });

  main.append(h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Audit"),
    h("p", { class: "muted" }, "Metadata only: never a prompt or a completion. Times in your time zone."))));
  main.append(card(null, form));
  main.append(card(null, message,
    h("div", { class: "table-wrap" }, h("table", { id: "audit" },
      h("thead", {}, h("tr", {}, ["Time", "Actor / client", "Action", "Subject / model", "Machine", "Status", "Tokens in / out", "TTFT", "Duration"].map((c, i) => h("th", { class: i >= 6 && i <= 8 ? "num" : null }, c)))),
      rows)),
    h("div", { class: "pager" }, newer, position, older)));
  await load();
}
