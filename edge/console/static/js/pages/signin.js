// Sign in: the admin key is posted once for a session cookie the page cannot read. The key
// is taken from the field, sent, and the field emptied: nothing keeps it afterwards.

import * as api from "../api.js";
import { h, notice } from "../dom.js";

export function renderSignIn(onSignedIn) {
  const input = h("input", {
    type: "password", name: "admin_key", id: "admin-key", required: true,
    autocomplete: "off", spellcheck: "false", placeholder: "sk-lt-admin-…",
  });
  const message = h("div", { class: "signin-message" });
  const button = h("button", { type: "submit", class: "primary wide" }, "Sign in");
  const form = h("form", { class: "signin-form", novalidate: true },
    h("label", { for: "admin-key", class: "field-label" }, "Admin key"),
    input,
    message,
    button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    const key = input.value.trim();
    input.value = "";
    if (!key) {
      message.append(notice("error", "Paste the operator key or a tenant admin key."));
      return;
    }
    button.disabled = true;
    try {
      onSignedIn(await api.signIn(key));
    } catch (error) {
      message.append(notice("error", error.status === 401 ? "That admin key was not accepted." : error.message));
      button.disabled = false;
      input.focus();
    }
  });
  return h("main", { class: "signin" },
    h("section", { class: "signin-card" },
      h("div", { class: "brand brand-large" }, h("span", { class: "brand-mark" }), "llmtunnel", h("span", { class: "brand-sub" }, "console")),
      h("h1", {}, "Sign in"),
      h("p", { class: "muted" }, "With the operator key (", h("code", {}, "DATA_DIR/admin.key"), ") or a tenant admin key."),
      form,
      h("p", { class: "fineprint" },
        "The key is sent once to start a session and is not kept by this page or this browser. ",
        "The session ends after 30 minutes without use, after 12 hours, when you sign out, or when the key is revoked.")));
}
