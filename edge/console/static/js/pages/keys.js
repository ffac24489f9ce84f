// Keys: create one with its scopes and limits (its secret is shown once, here, and never
// again), list them, rotate with a grace period, revoke.

import * as api from "../api.js";
import { h, card, notice, field, confirmDialog, timeCell, fmtNumber, fmtRelative, select, copyButton } from "../dom.js";

const DAY = 86400;

function limits(key) {
  const parts = [];
  if (key.rpm) parts.push(`${fmtNumber(key.rpm)} rpm`);
  if (key.tpm) parts.push(`${fmtNumber(key.tpm)} tpm`);
  if (key.budget_tokens) parts.push(`${fmtNumber(key.budget_tokens)} tokens / ${key.budget_period}`);
  return parts.length ? parts.join(" · ") : h("span", { class: "muted" }, "none");
}

/** The secret, once: a box the admin copies from and closes; nothing else keeps it. */
function secretBox(title, secret, extra) {
  const box = h("div", { class: "secret", id: "new-secret", role: "status" },
    h("h3", {}, title),
    h("p", {}, h("strong", {}, "Copy it now: "), "this is the only time the console shows it. The edge keeps only its hash."),
    h("div", { class: "url-row" }, h("code", { class: "secret-value", id: "secret-value" }, secret), copyButton(secret)),
    extra ?? null,
    h("button", { type: "button", class: "secondary", onclick: () => box.remove() }, "I have copied it"));
  return box;
}

export async function renderKeys(ctx) {
  const { main, slug } = ctx;
  const rows = h("tbody");
  const secretSlot = h("div");
  const list = async () => (await api.get(api.tenantPath(slug, "/keys"))).keys;
  const machines = (await api.get(api.tenantPath(slug, "/machines"))).machines;
  const served = [...new Set(machines.flatMap((m) => m.models ?? []))].sort();

  const draw = (keys) => {
    rows.replaceChildren(...(keys.length ? keys.map((k) => h("tr", { "data-key": k.name },
      h("td", {}, h("strong", {}, k.name), h("div", { class: "mono small muted" }, `${k.prefix}…`)),
      h("td", { class: "small" }, k.models ? k.models.join(", ") : h("span", { class: "muted" }, "all"), k.machine ? h("div", { class: "muted" }, `bound to ${k.machine}`) : null),
      h("td", { class: "small" }, limits(k)),
      h("td", { class: "small" }, timeCell(k.created_at)),
      h("td", { class: "small" }, k.last_used_at ? h("span", { title: new Date(k.last_used_at * 1000).toISOString() }, fmtRelative(k.last_used_at)) : h("span", { class: "muted" }, "never")),
      h("td", { class: "small" }, k.expires_at ? h("span", { class: k.expires_at < Date.now() / 1000 ? "expired" : null, title: new Date(k.expires_at * 1000).toISOString() }, fmtRelative(k.expires_at)) : h("span", { class: "muted" }, "never")),
      h("td", { class: "actions-cell" },
        h("button", { type: "button", class: "secondary small", onclick: () => rotate(k) }, "Rotate"),
        h("button", { type: "button", class: "danger small", onclick: () => revoke(k) }, "Revoke")))) :
      [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No keys yet: create one above."))]));
  };

  async function revoke(key) {
    const ok = await confirmDialog({ title: `Revoke ${key.name}?`, message: "It is refused from the very next request. This cannot be undone.", confirm: "Revoke key", danger: true });
    if (!ok) return;
    await api.del(api.tenantPath(slug, `/keys/${encodeURIComponent(key.name)}`));
    draw(await list());
  }

  async function rotate(key) {
    const grace = select("grace", [["0", "at once"], ["3600", "in 1 hour"], [String(DAY), "in 24 hours"], [String(7 * DAY), "in 7 days"]], String(DAY));
    const values = await confirmDialog({
      title: `Rotate ${key.name}?`,
      message: "A new secret is made. The current one keeps working until the grace period ends, so clients can move over without an outage.",
      confirm: "Rotate",
      fields: [field("The old secret stops working", grace)],
    });
    if (!values) return;
    const rotated = await api.post(api.tenantPath(slug, `/keys/${encodeURIComponent(key.name)}/rotate`), { grace_seconds: Number(values.grace) });
    secretSlot.replaceChildren(secretBox(`New secret of ${rotated.name}`, rotated.secret,
      h("p", { class: "muted small" }, "The previous secret works until ", timeCell(rotated.previous_secret_valid_until), ".")));
    draw(await list());
  }

  // Create
  const name = h("input", { name: "name", required: true, placeholder: "laptop", autocomplete: "off" });
  const scoped = h("input", { name: "models", placeholder: "all models", list: "key-models", autocomplete: "off" });
  const machine = select("machine", [["", "any machine"], ...machines.map((m) => [m.name, m.name])], "");
  const rpm = h("input", { name: "rpm", type: "number", min: 1, placeholder: "none" });
  const tpm = h("input", { name: "tpm", type: "number", min: 1, placeholder: "none" });
  const budget = h("input", { name: "budget_tokens", type: "number", min: 1, placeholder: "none" });
  const period = select("budget_period", [["day", "per day"], ["week", "per week"], ["month", "per month"]], "day");
  const expires = h("input", { name: "expires_days", type: "number", min: 1, placeholder: "never" });
  const message = h("div");
  const form = h("form", { class: "grid-form", id: "create-key" },
    field("Name", name),
    field("Models", scoped, "comma-separated; empty: every model"),
    h("datalist", { id: "key-models" }, served.map((m) => h("option", { value: m }))),
    field("Machine", machine, "bound: served only there"),
    field("Requests per minute", rpm),
    field("Tokens per minute", tpm),
    field("Token budget", budget),
    field("Budget period", period, "UTC"),
    field("Expires in (days)", expires),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Create key")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    const body = { name: name.value.trim() };
    const models = scoped.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    if (machine.value) body.machine = machine.value;
    for (const [input, key] of [[rpm, "rpm"], [tpm, "tpm"], [budget, "budget_tokens"]]) {
      if (input.value) body[key] = Number(input.value);
    }
    if (budget.value) body.budget_period = period.value;
    if (expires.value) body.expires_in_seconds = Number(expires.value) * DAY;
    try {
      const created = await api.post(api.tenantPath(slug, "/keys"), body);
      form.reset();
      secretSlot.replaceChildren(secretBox(`Secret of ${created.name}`, created.secret,
        h("p", { class: "muted small" }, "Base URL: ", h("code", {}, created.api_base))));
      draw(await list());
    } catch (error) {
      message.append(notice("error", error.message));
    }
  });

  main.append(h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "API keys"),
    h("p", { class: "muted" }, "Keys of this tenant's clients. Only a prefix is kept in view; secrets are shown once, when made."))));
  main.append(card("Create a key", form, message), secretSlot);
  main.append(card("Keys", h("div", { class: "table-wrap" }, h("table", { id: "keys" },
    h("thead", {}, h("tr", {}, ["Key", "Models", "Limits", "Created", "Last used", "Expires", ""].map((c) => h("th", {}, c)))),
    rows))));
  draw(await list());
}
