// The console's shell: who is signed in, the header and navigation, and which page to draw
// for the address (/console/, /console/tenants/SLUG[/machines|keys|usage|audit]).

import * as api from "./api.js";
import { h, clear, notice, fmtRelative } from "./dom.js";
import { renderSignIn } from "./pages/signin.js";
import { renderOverview } from "./pages/overview.js";
import { renderTenant } from "./pages/tenant.js";
import { renderMachines } from "./pages/machines.js";
import { renderKeys } from "./pages/keys.js";
import { renderUsage } from "./pages/usage.js";
import { renderAudit } from "./pages/audit.js";

const ROOT = "/console";
const PAGES = {
  tenant: { title: "Tenant", render: renderTenant },
  machines: { title: "Machines", render: renderMachines },
  keys: { title: "Keys", render: renderKeys },
  usage: { title: "Usage", render: renderUsage },
  audit: { title: "Audit", render: renderAudit },
};

const app = document.getElementById("app");
let session = null; // who is signed in: {principal, csrf_token, expires_at, …}
let tenants = []; // the tenants this admin manages
let cleanups = []; // timers of the page on screen, stopped when it goes

function route(pathname) {
  const rest = pathname.startsWith(ROOT) ? pathname.slice(ROOT.length) : pathname;
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "overview" };
  if (parts[0] === "tenants" && parts.length >= 2) {
    const page = parts[2] ?? "tenant";
    if (page in PAGES && parts.length <= 3) return { page, slug: parts[1] };
  }
  return { page: "missing" };
}

export function pagePath(slug, page) {
  const base = `${ROOT}/tenants/${encodeURIComponent(slug)}`;
  return page === "tenant" ? base : `${base}/${page}`;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  draw();
}

function stopPage() {
  for (const stop of cleanups) stop();
  cleanups = [];
}

function header(current) {
  const principal = session.principal;
  const who = principal.kind === "operator" ? "operator" : `${principal.name} · ${principal.tenant}`;
  // A tenant admin's pages are its own tenant's, whatever the address asked for.
  const slug = principal.tenant ?? current.slug ?? tenants[0]?.slug ?? null;
  const link = (page, title) => {
    const href = page === "overview" ? `${ROOT}/` : slug ? pagePath(slug, page) : null;
    const active = current.page === page;
    return href
      ? h("a", { href, class: ["nav-link", active && "active"], "aria-current": active ? "page" : null }, title)
      : h("span", { class: "nav-link disabled" }, title);
  };
  const switcher = principal.kind === "operator" && tenants.length > 0
    ? h("select", {
      class: "tenant-switch", "aria-label": "Tenant",
      onchange: (event) => navigate(pagePath(event.target.value, current.page in PAGES ? current.page : "tenant")),
    }, tenants.map((t) => h("option", { value: t.slug, selected: t.slug === slug }, t.slug)))
    : slug ? h("span", { class: "tenant-name" }, slug) : null;
  return h("header", { class: "topbar" },
    h("a", { class: "brand", href: `${ROOT}/` }, h("span", { class: "brand-mark" }), "llmtunnel", h("span", { class: "brand-sub" }, "console")),
    switcher,
    h("nav", { class: "nav", "aria-label": "Pages" },
      link("overview", "Overview"),
      ...Object.entries(PAGES).map(([page, { title }]) => link(page, title))),
    h("div", { class: "who" },
      h("span", { class: "who-name", title: `session ends ${fmtRelative(session.expires_at)} unless used` }, who),
      h("button", { type: "button", class: "secondary small", id: "sign-out", onclick: signOut }, "Sign out")));
}

async function signOut() {
  try {
    await api.signOut();
  } catch {
    // the session is gone either way
  }
  session = null;
  navigate(`${ROOT}/`, { replace: true });
}

function forbidden(main, error) {
  main.append(h("section", { class: "card forbidden" },
    h("h1", {}, error.status === 404 ? "No such tenant" : "Forbidden"),
    h("p", {}, error.status === 404 ? error.message : "This admin key does not manage that tenant."),
    h("p", {}, h("a", { href: `${ROOT}/` }, "Back to the overview"))));
}

async function draw() {
  stopPage();
  const current = route(location.pathname);
  if (session === null) {
    try {
      session = await api.whoAmI();
    } catch (error) {
      if (error.status !== 401) {
        clear(app).append(h("main", { class: "main" }, notice("error", error.message)));
        return;
      }
    }
  }
  if (session === null) {
    document.title = "Sign in · llmtunnel console";
    clear(app).append(renderSignIn(async (signedIn) => {
      session = signedIn;
      draw();
    }));
    return;
  }
  try {
    tenants = (await api.get("/tenants")).tenants;
  } catch (error) {
    if (error.status === 401) return; // the signed-out event draws the sign-in page
    tenants = [];
  }
  const main = h("main", { class: "main", id: "main" });
  clear(app).append(header(current), main);
  const ctx = {
    slug: current.slug,
    session,
    tenants,
    main,
    every(seconds, fn) {
      const timer = setInterval(fn, seconds * 1000);
      cleanups.push(() => clearInterval(timer));
    },
    onLeave(fn) {
      cleanups.push(fn);
    },
    refreshTenants: async () => {
      tenants = (await api.get("/tenants")).tenants;
    },
  };
  try {
    if (current.page === "overview") {
      document.title = "Overview · llmtunnel console";
      await renderOverview(ctx);
    } else if (current.page === "missing") {
      main.append(notice("error", "There is no such page. ", h("a", { href: `${ROOT}/` }, "Go to the overview.")));
    } else {
      document.title = `${PAGES[current.page].title} · ${current.slug} · llmtunnel console`;
      await PAGES[current.page].render(ctx);
    }
  } catch (error) {
    if (error.status === 403 || error.status === 404) {
      clear(main);
      forbidden(main, error);
    } else if (error.status !== 401) {
      main.append(notice("error", error.message));
    }
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a[href]");
  if (!link || link.hasAttribute("download") || link.target || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(`${ROOT}/`) || url.pathname.startsWith(`${ROOT}/api/`)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => draw());
window.addEventListener("console:signed-out", () => {
  if (session === null) return;
  session = null;
  api.remember(null);
  draw();
});

draw();
