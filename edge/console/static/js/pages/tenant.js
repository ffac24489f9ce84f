// Tenant: its public URL with client snippets, model aliases, and response storage.

import * as api from "../api.js";
import { h, card, codeBlock, copyButton, notice, field, confirmDialog, timeCell } from "../dom.js";

function snippets(apiBase, root, model) {
  return [
    ["OpenAI SDK", `from openai import OpenAI

client = OpenAI(base_url="${apiBase}", api_key="sk-lt-…")
stream = client.chat.completions.create(
    model="${model}", stream=True, messages=[{"role": "user", "content": "Hello"}]
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)`],
    ["curl", `curl -N ${apiBase}/chat/completions \\
  -H "Authorization: Bearer $LLMTUNNEL_API_KEY" -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}'`],
    ["Claude Code", `export ANTHROPIC_BASE_URL=${root} ANTHROPIC_AUTH_TOKEN=$LLMTUNNEL_API_KEY
export ANTHROPIC_MODEL=${model} ANTHROPIC_DEFAULT_HAIKU_MODEL=${model}
claude`],
    ["OpenCode", JSON.stringify({
      $schema: "https://opencode.ai/config.json",
      provider: {
        llmtunnel: {
          npm: "@ai-sdk/openai-compatible",
          name: "llmtunnel",
          options: { baseURL: apiBase, apiKey: "{env:LLMTUNNEL_API_KEY}" },
          models: { [model]: { name: model } },
        },
      },
    }, null, 2)],
  ];
}

function tabs(items) {
  const panels = items.map(([, text]) => codeBlock(text));
  const buttons = items.map(([label], i) => h("button", {
    type: "button", role: "tab", class: ["tab", i === 0 && "active"], "aria-selected": i === 0 ? "true" : "false",
    onclick: () => {
      buttons.forEach((b, j) => {
        b.classList.toggle("active", i === j);
        b.setAttribute("aria-selected", i === j ? "true" : "false");
      });
      panels.forEach((p, j) => p.classList.toggle("hidden", i !== j));
    },
  }, label));
  panels.forEach((p, j) => p.classList.toggle("hidden", j !== 0));
  return h("div", { class: "tabs" }, h("div", { class: "tab-list", role: "tablist" }, buttons), panels);
}

export async function renderTenant(ctx) {
  const { main, slug } = ctx;
  const [tenant, aliases, machines] = await Promise.all([
    api.get(api.tenantPath(slug)),
    api.get(api.tenantPath(slug, "/aliases")),
    api.get(api.tenantPath(slug, "/machines")),
  ]);
  const served = [...new Set(machines.machines.flatMap((m) => m.models ?? []))].sort();
  const model = served.find((m) => !m.includes("embed")) ?? "qwen3:8b";

  main.append(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, `Tenant ${tenant.slug}`), h("p", { class: "muted" }, "Created ", timeCell(tenant.created_at)))));

  main.append(card("Public URL",
    h("p", {}, "Clients use this OpenAI base URL with one of this tenant's API keys (", h("a", { href: `/console/tenants/${encodeURIComponent(slug)}/keys` }, "Keys"), ")."),
    h("div", { class: "url-row" }, h("code", { class: "url", id: "api-base" }, tenant.api_base), copyButton(tenant.api_base)),
    h("p", { class: "muted small" }, "Anthropic clients (Claude Code, the Anthropic SDK) take the URL without /v1: ", h("code", {}, tenant.url), "."),
    h("h3", {}, "Client snippets"),
    tabs(snippets(tenant.api_base, tenant.url, model))));

  // Aliases
  const aliasRows = h("tbody");
  const drawAliases = (map) => {
    const entries = Object.entries(map);
    aliasRows.replaceChildren(...(entries.length ? entries.map(([alias, target]) => h("tr", {},
      h("td", { class: "mono" }, alias), h("td", { class: "mono" }, target),
      h("td", { class: "actions-cell" }, h("button", {
        type: "button", class: "danger small",
        onclick: async () => {
          const ok = await confirmDialog({ title: `Delete alias ${alias}?`, message: `Clients calling ${alias} will get model_not_found unless a model has that name.`, confirm: "Delete alias", danger: true });
          if (!ok) return;
          await api.del(api.tenantPath(slug, `/aliases/${encodeURIComponent(alias)}`));
          drawAliases((await api.get(api.tenantPath(slug, "/aliases"))).aliases);
        },
      }, "Delete")))) : [h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No aliases."))]));
  };
  drawAliases(aliases.aliases);
  const aliasInput = h("input", { name: "alias", required: true, placeholder: "gpt-4o", autocomplete: "off" });
  const modelInput = h("input", { name: "model", required: true, placeholder: model, list: "served-models", autocomplete: "off" });
  const aliasMessage = h("div");
  const aliasForm = h("form", { class: "inline-form" },
    field("Alias", aliasInput), field("Model it runs on", modelInput),
    h("datalist", { id: "served-models" }, served.map((m) => h("option", { value: m }))),
    h("button", { type: "submit", class: "primary" }, "Set alias"));
  aliasForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    aliasMessage.replaceChildren();
    try {
      await api.put(api.tenantPath(slug, `/aliases/${encodeURIComponent(aliasInput.value.trim())}`), { model: modelInput.value.trim() });
      aliasInput.value = "";
      modelInput.value = "";
      drawAliases((await api.get(api.tenantPath(slug, "/aliases"))).aliases);
    } catch (error) {
      aliasMessage.append(notice("error", error.message));
    }
  });
  main.append(card("Model aliases",
    h("p", { class: "muted" }, "Names clients may call a served model by, in every API; an alias wins over a model of the same name."),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Alias"), h("th", {}, "Model"), h("th", {}))), aliasRows)),
    aliasForm, aliasMessage));

  // Response storage
  const state = h("strong");
  const toggle = h("button", { type: "button", class: "secondary", id: "store-responses" });
  const storageMessage = h("div");
  const drawStorage = (on) => {
    state.textContent = on ? "On" : "Off";
    state.className = on ? "badge badge-on" : "badge badge-off";
    toggle.textContent = on ? "Turn off and delete stored responses" : "Turn on";
    toggle.className = on ? "danger" : "primary";
    toggle.onclick = async () => {
      storageMessage.replaceChildren();
      if (on) {
        const ok = await confirmDialog({ title: "Turn response storage off?", message: "Every response stored for this tenant is deleted now; previous_response_id stops working for them.", confirm: "Turn off and delete", danger: true });
        if (!ok) return;
      }
      try {
        const updated = await api.patch(api.tenantPath(slug), { store_responses: !on });
        drawStorage(updated.store_responses);
        if (updated.deleted_responses) storageMessage.append(notice("info", `${updated.deleted_responses} stored responses deleted.`));
      } catch (error) {
        storageMessage.append(notice("error", error.message));
      }
    };
  };
  drawStorage(tenant.store_responses);
  main.append(card("Response storage",
    h("p", {}, "Responses API storage: ", state),
    h("p", { class: "muted" }, "When on, responses created with store: true are kept so that a later request can continue from them (previous_response_id). Off by default: no content is kept at rest."),
    toggle, storageMessage));
}
