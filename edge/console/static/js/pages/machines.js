// Machines: who is online and since when, what each serves, its load and tunnel round trip;
// pairing a new one (the one-time code, its expiry and the exact agent command); revocation.

import * as api from "../api.js";
import { h, card, codeBlock, notice, field, confirmDialog, timeCell, fmtRelative, fmtTime, select } from "../dom.js";

function models(machine) {
  if (!machine.online) return h("span", { class: "muted" }, "—");
  const details = machine.model_details ?? (machine.models ?? []).map((name) => ({ name, capabilities: [] }));
  if (!details.length) return h("span", { class: "muted" }, "no models");
  return h("ul", { class: "models" }, details.map((m) => h("li", {},
    h("span", { class: "model-name mono" }, m.name),
    m.context_length ? h("span", { class: "chip chip-ctx", title: "context length" }, `${Math.round(m.context_length / 1024)}k ctx`) : null,
    ...(m.capabilities ?? []).map((c) => h("span", { class: `chip chip-${c}` }, c)))));
}

function status(machine) {
  if (machine.online) {
    return h("div", { class: "status" }, h("span", { class: "dot dot-on" }), h("span", {}, "online"),
      h("div", { class: "muted small" }, "since ", h("span", { title: fmtTime(machine.connected_at) }, fmtRelative(machine.connected_at))));
  }
  return h("div", { class: "status" }, h("span", { class: "dot dot-off" }), h("span", {}, "offline"));
}

export async function renderMachines(ctx) {
  const { main, slug } = ctx;
  const rows = h("tbody");
  const list = async () => (await api.get(api.tenantPath(slug, "/machines"))).machines;
  const draw = (machines) => {
    rows.replaceChildren(...(machines.length ? machines.map((m) => h("tr", { "data-machine": m.name },
      h("td", {}, h("strong", {}, m.name), h("div", { class: "muted small" }, "paired ", timeCell(m.created_at))),
      h("td", {}, status(m)),
      h("td", { class: "mono small" }, m.agent_version ?? "—"),
      h("td", {}, models(m)),
      h("td", { class: "num" }, m.online ? `${m.in_flight} / ${m.max_concurrency}` : "—"),
      h("td", { class: "num" }, !m.online ? "—" : m.rtt_ms === null || m.rtt_ms === undefined
        ? h("span", { class: "muted small", title: "measured at the first heartbeat (5 s)" }, "pending") : `${m.rtt_ms} ms`),
      h("td", { class: "actions-cell" }, h("button", {
        type: "button", class: "danger small",
        onclick: async () => {
          const ok = await confirmDialog({ title: `Revoke ${m.name}?`, message: "Its tunnel is closed at once, and API keys bound to it are revoked with it. Pairing it again needs a new code.", confirm: "Revoke machine", danger: true });
          if (!ok) return;
          await api.del(api.tenantPath(slug, `/machines/${encodeURIComponent(m.name)}`));
          draw(await list());
        },
      }, "Revoke")))) : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No machines yet: pair one below."))]));
  };
  draw(await list());
  ctx.every(5, async () => draw(await list()));

  main.append(h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Machines"),
    h("p", { class: "muted" }, "GPU boxes whose agents dial out to this edge. Streams: requests in flight of the agent's concurrency; RTT: the tunnel's last heartbeat round trip."))));
  main.append(card(null, h("div", { class: "table-wrap" }, h("table", { id: "machines" },
    h("thead", {}, h("tr", {}, ["Machine", "Status", "Agent", "Models", "Streams", "RTT", ""].map((c, i) => h("th", { class: i === 4 || i === 5 ? "num" : null }, c)))),
    rows))));

  // Pairing
  const name = h("input", { name: "name", required: true, placeholder: "gpu-2", autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,62}" });
  const ttl = select("ttl", [["15", "15 minutes"], ["60", "1 hour"], ["1440", "24 hours"]], "15");
  const result = h("div", { id: "pairing" });
  const form = h("form", { class: "inline-form" }, field("Machine name", name), field("Code valid for", ttl), h("button", { type: "submit", class: "primary" }, "Pair a machine"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const pairing = await api.post(api.tenantPath(slug, "/machines/pair"), { name: name.value.trim(), ttl_seconds: Number(ttl.value) * 60 });
      name.value = "";
      const waiting = h("p", { class: "waiting", id: "pairing-status" }, h("span", { class: "spinner" }), `Waiting for ${pairing.machine} to come online…`);
      const expiry = h("span", {}, fmtRelative(pairing.expires_at));
      result.append(h("div", { class: "pairing" },
        h("div", { class: "pairing-code" }, h("div", { class: "muted small" }, "One-time code"), h("code", { class: "code-big", id: "pairing-code" }, pairing.code)),
        h("p", {}, "Single use; expires at ", timeCell(pairing.expires_at), " (", expiry, "). On the GPU box, next to Ollama, run:"),
        codeBlock(pairing.agent_command),
        codeBlock("llmtunnel agent run", { label: "then" }),
        waiting));
      ctx.every(1, () => (expiry.textContent = fmtRelative(pairing.expires_at)));
      ctx.every(2, async () => {
        const machines = await list();
        const machine = machines.find((m) => m.name === pairing.machine);
        if (machine?.online && !waiting.classList.contains("done")) {
          waiting.classList.add("done");
          waiting.replaceChildren(h("span", { class: "dot dot-on" }), `${pairing.machine} is online, serving ${(machine.models ?? []).length} models.`);
          draw(machines);
        }
      });
    } catch (error) {
      result.append(notice("error", error.message));
    }
  });
  main.append(card("Pair a machine",
    h("p", { class: "muted" }, "Makes a one-time code for a new machine of this tenant. The agent trades it for its own identity (an Ed25519 key that never leaves the box)."),
    form, result));
}
