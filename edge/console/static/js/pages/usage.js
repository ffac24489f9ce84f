// Usage: requests and tokens per key per UTC day (exact, the counters budgets use), and per
// model per day (from the audit events), charted and as tables, with CSV downloads.

import * as api from "../api.js";
import { h, card, fmtNumber, fmtCompact, select } from "../dom.js";
import { barChart, topSeries } from "../charts.js";

const DAY = 86400;

function days(sinceUnix) {
  const out = [];
  const start = new Date(sinceUnix * 1000);
  let t = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  const end = Date.now();
  while (t <= end) {
    out.push(new Date(t).toISOString().slice(0, 10));
    t += DAY * 1000;
  }
  return out;
}

function pivot(rows, categories, seriesOf, valueOf) {
  const names = [...new Set(rows.map(seriesOf))];
  return names.map((name) => ({
    name,
    values: categories.map((day) => rows.filter((r) => r.day === day && seriesOf(r) === name).reduce((sum, r) => sum + valueOf(r), 0)),
  })).filter((one) => one.values.some((v) => v > 0));
}

/** Newest day first, then by key and model. */
function newestFirst(rows) {
  const text = (v) => v ?? "";
  return [...rows].sort((a, b) => b.day.localeCompare(a.day) || text(a.key).localeCompare(text(b.key)) || text(a.model).localeCompare(text(b.model)));
}

export async function renderUsage(ctx) {
  const { main, slug } = ctx;
  const params = new URLSearchParams(location.search);
  const span = ["7", "30", "90"].includes(params.get("days")) ? Number(params.get("days")) : 30;
  const keyName = params.get("key") ?? "";
  const since = Math.floor(Date.now() / 1000) - (span - 1) * DAY;
  const query = { since, key: keyName || null };
  const [byKey, byModel, keys] = await Promise.all([
    api.get(api.withQuery(api.tenantPath(slug, "/usage"), query)),
    api.get(api.withQuery(api.tenantPath(slug, "/usage/models"), query)),
    api.get(api.tenantPath(slug, "/keys")),
  ]);
  const categories = days(since);
  const tokens = (r) => r.prompt_tokens + r.completion_tokens;

  const reload = (changes) => {
    const next = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    const text = next.toString();
    history.pushState(null, "", location.pathname + (text ? `?${text}` : ""));
    window.dispatchEvent(new PopStateEvent("popstate"));
  };
  const spanSelect = select("days", [["7", "last 7 days"], ["30", "last 30 days"], ["90", "last 90 days"]], String(span), { onchange: (e) => reload({ days: e.target.value }) });
  const keySelect = select("key", [["", "all keys"], ...keys.keys.map((k) => [k.name, k.name])], keyName, { onchange: (e) => reload({ key: e.target.value }) });

  main.append(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, "Usage"), h("p", { class: "muted" }, "Per UTC day. By key: the counters budgets are charged from. By model: from the audit events (kept 90 days by default), with the tokens the machines reported.")),
    h("div", { class: "filters" }, spanSelect, keySelect)));

  main.append(h("div", { class: "chart-grid" },
    h("section", { class: "card chart-card" }, barChart({ title: "Requests per key", categories, series: topSeries(pivot(byKey.usage, categories, (r) => r.key, (r) => r.requests)) })),
    h("section", { class: "card chart-card" }, barChart({ title: "Tokens per model", categories, series: topSeries(pivot(byModel.usage, categories, (r) => r.model ?? "(none)", tokens)) }))));

  const csv = (path, label) => h("a", { class: "button secondary small", href: api.href(api.tenantPath(slug, path), { ...query, format: "csv" }), download: "" }, label);

  const keyRows = newestFirst(byKey.usage);
  main.append(card("Per key per day",
    h("div", { class: "card-tools" }, csv("/usage", "Download CSV")),
    h("div", { class: "table-wrap" }, h("table", { id: "usage-by-key" },
      h("thead", {}, h("tr", {}, h("th", {}, "Day (UTC)"), h("th", {}, "Key"), h("th", { class: "num" }, "Requests"), h("th", { class: "num" }, "Prompt tokens"), h("th", { class: "num" }, "Completion tokens"))),
      h("tbody", {}, keyRows.length ? keyRows.map((r) => h("tr", {}, h("td", {}, r.day), h("td", {}, r.key), h("td", { class: "num" }, fmtNumber(r.requests)), h("td", { class: "num" }, fmtNumber(r.prompt_tokens)), h("td", { class: "num" }, fmtNumber(r.completion_tokens))))
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No requests in this period.")))))));

  const modelRows = newestFirst(byModel.usage);
  main.append(card("Per key and model per day",
    h("div", { class: "card-tools" }, csv("/usage/models", "Download CSV")),
    h("div", { class: "table-wrap" }, h("table", { id: "usage-by-model" },
      h("thead", {}, h("tr", {}, h("th", {}, "Day (UTC)"), h("th", {}, "Key"), h("th", {}, "Model"), h("th", { class: "num" }, "Requests"), h("th", { class: "num" }, "Errors"), h("th", { class: "num" }, "Tokens"))),
      h("tbody", {}, modelRows.length ? modelRows.map((r) => h("tr", {}, h("td", {}, r.day), h("td", {}, r.key ?? "—"), h("td", { class: "mono" }, r.model ?? "—"), h("td", { class: "num" }, fmtNumber(r.requests)), h("td", { class: "num" }, fmtNumber(r.errors)), h("td", { class: "num" }, fmtCompact(tokens(r)))))
        : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No requests in this period.")))))));
}
