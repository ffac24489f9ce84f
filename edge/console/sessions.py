"""Console sessions: signing in with an admin key once, then an HttpOnly cookie.

The admin key is posted once, to ``POST /console/session``, and never kept: the browser gets a
random session id (256 bits) in a ``__Host-`` cookie (HttpOnly, Secure, SameSite=Strict, Path=/,
no Domain: only this host, only over HTTPS or loopback, never readable by a script). The store
keeps an HMAC of the id under the server secret, never the id. A session ends after
``IDLE_TIMEOUT`` without a request, ``LIFETIME`` after sign-in whatever happens, at sign-out, and
at once when its admin key is revoked (the store looks the key up with the session).

Every change is checked against cross-site requests twice: the ``Origin`` header must be this
host's own origin, and the ``X-CSRF-Token`` header must carry the session's token, an HMAC of the
session id the page learns from ``GET /console/session`` and holds in memory only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from edge.attempts import AttemptLimiter
from edge.context import EdgeContext
from edge.errors import ApiError
from edge.store import AdminKey

COOKIE = "__Host-llmtunnel-console"
CSRF_HEADER = "X-CSRF-Token"
IDLE_TIMEOUT = 30 * 60.0
LIFETIME = 12 * 3600.0
TOUCH_EVERY = 15.0  # a session's last use is written at most this often
SIGN_INS_PER_MINUTE = 10  # per client network (an IPv4 address, an IPv6 /64)
MAX_SESSION_ID = 64  # a cookie longer than any id we make is not looked up


@dataclass(frozen=True, slots=True)
class Session:
    session_hash: str
    admin: AdminKey
    csrf_token: str
    created_at: float
    last_seen_at: float

    @property
    def expires_at(self) -> float:
        """When the session ends unless it is used again before."""
        return min(self.created_at + LIFETIME, self.last_seen_at + IDLE_TIMEOUT)


SESSION = web.RequestKey("llmtunnel_console_session", Session)


def _session_hash(ctx: EdgeContext, session_id: str) -> str:
    return ctx.hasher.digest("console-session:" + session_id)


def _csrf_token(ctx: EdgeContext, session_id: str) -> str:
    return ctx.hasher.digest("console-csrf:" + session_id)


async def open_session(ctx: EdgeContext, admin: AdminKey) -> tuple[str, Session]:
    """A new session of ``admin``: its id (for the cookie, never stored) and the session."""
    now = ctx.clock()
    await ctx.store.sessions.prune(now - IDLE_TIMEOUT, now - LIFETIME)
    session_id = secrets.token_urlsafe(32)
    session_hash = _session_hash(ctx, session_id)
    await ctx.store.sessions.create(session_hash, admin.id, now)
    return session_id, Session(session_hash, admin, _csrf_token(ctx, session_id), now, now)


async def load_session(ctx: EdgeContext, request: web.Request) -> Session | None:
    """The live session the request's cookie names, its last use noted; ``None`` without
    one (no cookie, unknown, expired, ended, or its admin key revoked)."""
    session_id = request.cookies.get(COOKIE)
    if not session_id or len(session_id) > MAX_SESSION_ID:
        return None
    session_hash = _session_hash(ctx, session_id)
    found = await ctx.store.sessions.get(session_hash)
    if found is None:
        return None
    now = ctx.clock()
    if now - found.last_seen_at >= IDLE_TIMEOUT or now - found.created_at >= LIFETIME:
        await ctx.store.sessions.delete(session_hash)
        return None
    last_seen = found.last_seen_at
    if now - last_seen >= TOUCH_EVERY:
        await ctx.store.sessions.touch(session_hash, now)
        last_seen = now
    csrf = _csrf_token(ctx, session_id)
    return Session(session_hash, found.admin, csrf, found.created_at, last_seen)


def check_csrf(request: web.Request, session: Session) -> None:
    """403 unless the request carries the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise ApiError(
            403, "csrf_token_invalid", f"a change needs the session's {CSRF_HEADER} header"
        )


def check_origin(request: web.Request, public_scheme: str) -> None:
    """403 unless the request comes from a page of this very origin: ``Origin`` must name this
    host (and ``Sec-Fetch-Site``, when the browser sends it, must say ``same-origin``).

    Over TLS only ``https://HOST`` is this origin; an edge serving plain HTTP (``--plain-http``,
    loopback or behind a TLS proxy) also takes ``http://HOST``. ``HOST`` is the ``Host`` header
    the browser sent, port included, which a page of another origin cannot set."""
    origin = request.headers.get("Origin", "").lower()
    host = request.host.lower()
    allowed = {f"https://{host}"}
    if public_scheme == "http":
        allowed.add(f"http://{host}")
    fetch_site = request.headers.get("Sec-Fetch-Site", "same-origin")
    if origin not in allowed or fetch_site != "same-origin":
        raise ApiError(
            403, "origin_not_allowed", "console changes are accepted only from the console itself"
        )


def cookie_for(response: web.StreamResponse, session_id: str) -> None:
    """The session cookie: no ``Max-Age``, so it ends with the browser too."""
    response.set_cookie(COOKIE, session_id, path="/", secure=True, httponly=True, samesite="Strict")


def expire_cookie(response: web.StreamResponse) -> None:
    response.set_cookie(
        COOKIE, "", path="/", secure=True, httponly=True, samesite="Strict", max_age=0
    )


def sign_in_limiter(limit: int = SIGN_INS_PER_MINUTE) -> AttemptLimiter:
    """The sign-in attempts allowed per client network, successful or not (edge/attempts.py)."""
    return AttemptLimiter(limit, "too_many_sign_in_attempts", "sign-in attempts")
