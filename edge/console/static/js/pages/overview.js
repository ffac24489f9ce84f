// Overview: requests, tokens, errors and time to first token over time, from the audit
// events; per tenant for the operator (one line each), by measure for one tenant.

import * as api from "../api.js";
import { h, card, notice, fmtNumber, fmtCompact, fmtMs, field } from "../dom.js";
import { lineChart, topSeries } from "../charts.js";

const WINDOWS = [
  ["1h", "1 hour", 3600],
  ["24h", "24 hours", 86400],
  ["7d", "7 days", 7 * 86400],
  ["30d", "30 days", 30 * 86400],
];

function filled(stats, tenant, pick) {
  const times = [];
  for (let t = stats.since; t < stats.until; t += stats.bucket_seconds) times.push(t);
  const byStart = new Map(tenant.points.map((p) => [p.start, p]));
  return { times, values: times.map((t) => (byStart.has(t) ? pick(byStart.get(t)) : pick(null))) };
}

function totals(points) {
  const sum = (f) => points.reduce((acc, p) => acc + f(p), 0);
  const requests = sum((p) => p.requests);
  const timed = points.filter((p) => p.ttft_ms_avg !== null);
  const weight = timed.reduce((acc, p) => acc + p.requests, 0);
  return {
    requests,
    errors: sum((p) => p.errors),
    tokens: sum((p) => p.prompt_tokens + p.completion_tokens),
    ttft: weight ? timed.reduce((acc, p) => acc + p.ttft_ms_avg * p.requests, 0) / weight : null,
  };
}

function stat(label, value, sub) {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), sub ? h("div", { class: "stat-sub" }, sub) : null);
}

export async function renderOverview(ctx) {
  const { main, session } = ctx;
  const operator = session.principal.kind === "operator";
  const params = new URLSearchParams(location.search);
  const windowKey = WINDOWS.some(([k]) => k === params.get("window")) ? params.get("window") : "24h";
  const seconds = WINDOWS.find(([k]) => k === windowKey)[2];
  const now = Math.floor(Date.now() / 1000);
  const stats = await api.get(api.withQuery("/stats", { since: now - seconds, until: now }));

  const picker = h("div", { class: "segmented", role: "group", "aria-label": "Time window" },
    WINDOWS.map(([key, label]) => h("a", { href: `/console/?window=${key}`, class: ["segment", key === windowKey && "active"] }, label)));
  main.append(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, "Overview"), h("p", { class: "muted" },
      operator ? `All ${stats.tenants.length} tenants, from the audit of every API request.` : `Tenant ${session.principal.tenant}, from the audit of every API request.`)),
    picker));

  const everything = stats.tenants.flatMap((t) => t.points);
  const all = totals(everything);
  main.append(h("div", { class: "stats" },
    stat("Requests", fmtNumber(all.requests)),
    stat("Tokens", fmtCompact(all.tokens), "prompt + completion"),
    stat("Errors", fmtNumber(all.errors), all.requests ? `${((100 * all.errors) / all.requests).toFixed(1)} % of requests` : null),
    stat("Time to first token", fmtMs(all.ttft), "average")));

  const single = stats.tenants.length === 1;
  const charts = [];
  const base = filled(stats, { points: [] }, () => 0);
  if (single) {
    const t = stats.tenants[0];
    const f = (pick) => filled(stats, t, pick).values;
    charts.push(
      lineChart({ title: "Requests", times: base.times, bucket: stats.bucket_seconds, series: [{ name: "requests", values: f((p) => p?.requests ?? 0) }] }),
      lineChart({ title: "Tokens", times: base.times, bucket: stats.bucket_seconds, series: [
        { name: "prompt", values: f((p) => p?.prompt_tokens ?? 0) },
        { name: "completion", values: f((p) => p?.completion_tokens ?? 0) }] }),
      lineChart({ title: "Errors", times: base.times, bucket: stats.bucket_seconds, series: [{ name: "errors", values: f((p) => p?.errors ?? 0) }], emptyText: "No errors in this window" }),
      lineChart({ title: "Time to first token", times: base.times, bucket: stats.bucket_seconds, format: fmtMs, series: [
        { name: "average", values: f((p) => p?.ttft_ms_avg ?? null) },
        { name: "slowest", values: f((p) => p?.ttft_ms_max ?? null) }] }),
    );
  } else {
    const per = (pick) => topSeries(stats.tenants.map((t) => ({ name: t.slug, values: filled(stats, t, pick).values })));
    charts.push(
      lineChart({ title: "Requests per tenant", times: base.times, bucket: stats.bucket_seconds, series: per((p) => p?.requests ?? 0) }),
      lineChart({ title: "Tokens per tenant", times: base.times, bucket: stats.bucket_seconds, series: per((p) => (p ? p.prompt_tokens + p.completion_tokens : 0)) }),
      lineChart({ title: "Errors per tenant", times: base.times, bucket: stats.bucket_seconds, series: per((p) => p?.errors ?? 0), emptyText: "No errors in this window" }),
      lineChart({ title: "Time to first token per tenant (average)", times: base.times, bucket: stats.bucket_seconds, format: fmtMs,
        series: topSeries(stats.tenants.map((t) => ({ name: t.slug, values: filled(stats, t, (p) => p?.ttft_ms_avg ?? null).values }))).filter((one) => !one.name.endsWith(" others")) }),
    );
  }
  main.append(h("div", { class: "chart-grid" }, charts.map((chart) => h("section", { class: "card chart-card" }, chart))));

  if (operator) {
    const rows = stats.tenants.map((t) => {
      const sums = totals(t.points);
      const url = ctx.tenants.find((x) => x.slug === t.slug)?.api_base ?? "";
      return h("tr", {},
        h("td", {}, h("a", { href: `/console/tenants/${encodeURIComponent(t.slug)}` }, t.slug)),
        h("td", { class: "mono small" }, url),
        h("td", { class: "num" }, fmtNumber(sums.requests)),
        h("td", { class: "num" }, fmtCompact(sums.tokens)),
        h("td", { class: "num" }, fmtNumber(sums.errors)),
        h("td", { class: "num" }, fmtMs(sums.ttft)));
    });
    const slug = h("input", { name: "slug", required: true, placeholder: "acme", pattern: "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", autocomplete: "off" });
    const message = h("div");
    const form = h("form", { class: "inline-form" }, field("New tenant", slug, "lowercase letters, digits and -"), h("button", { type: "submit", class: "primary" }, "Create tenant"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.replaceChildren();
      try {
        const created = await api.post("/tenants", { slug: slug.value.trim() });
        await ctx.refreshTenants();
        location.assign(`/console/tenants/${encodeURIComponent(created.slug)}`);
      } catch (error) {
        message.append(notice("error", error.message));
      }
    });
    main.append(card("Tenants",
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Tenant", "API base URL", "Requests", "Tokens", "Errors", "Avg TTFT"].map((c, i) => h("th", { class: i > 1 ? "num" : null }, c)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No tenants yet."))))),
      form, message));
  }
}
