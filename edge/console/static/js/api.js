// The console's calls: the session (sign in, who, sign out) and the admin API under
// /console/api/v1, authenticated by the HttpOnly session cookie the browser sends itself.
// Every change carries the session's CSRF token, which lives only in this module's memory
// (never in storage, never in a URL); the admin key is never kept anywhere.

const API = "/console/api/v1";
let csrfToken = "";

export class ApiError extends Error {
  constructor(status, code, message, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  const init = { method, headers, credentials: "same-origin", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network_error", "The edge did not answer; check your connection.");
  }
  const json = (response.headers.get("Content-Type") ?? "").startsWith("application/json");
  const data = json ? await response.json() : null;
  if (!response.ok) {
    const error = data?.error ?? {};
    const failure = new ApiError(response.status, error.code ?? "http_error", error.message ?? response.statusText, error.param);
    if (response.status === 401 && path !== "/console/session") {
      window.dispatchEvent(new CustomEvent("console:signed-out", { detail: failure }));
    }
    throw failure;
  }
  return data;
}

export function remember(session) {
  csrfToken = session?.csrf_token ?? "";
}

/** The signed-in session, or null. */
export async function whoAmI() {
  const session = await call("GET", "/console/session");
  remember(session.signed_in ? session : null);
  return session.signed_in ? session : null;
}

export async function signIn(adminKey) {
  const session = await call("POST", "/console/session", { admin_key: adminKey });
  remember(session);
  return session;
}

export async function signOut() {
  try {
    await call("DELETE", "/console/session");
  } finally {
    remember(null);
  }
}

export const get = (path) => call("GET", API + path);
export const post = (path, body = {}) => call("POST", API + path, body);
export const put = (path, body = {}) => call("PUT", API + path, body);
export const patch = (path, body = {}) => call("PATCH", API + path, body);
export const del = (path) => call("DELETE", API + path);

/** A URL of the admin API for a link (a CSV download): the cookie goes with it. */
export function href(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  const text = query.toString();
  return API + path + (text ? `?${text}` : "");
}

/** `path` with the query `params` (empty ones left out), for get(). */
export function withQuery(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  const text = query.toString();
  return path + (text ? `?${text}` : "");
}

export const tenantPath = (slug, rest = "") => `/tenants/${encodeURIComponent(slug)}${rest}`;
