"""The console sub-application mounted at ``/console`` as the edge mounts it, over a real SQLite
store, with a clock the tests move. Requests name their Host and Origin, and carry the session
cookie by hand (a cookie jar would refuse ``__Host-`` cookies over the test's plain HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from edge import credentials
from edge.admin import PREFIX as ADMIN_PREFIX
from edge.admin import create_admin_app
from edge.bodies import LANE
from edge.console import PREFIX, create_console_app
from edge.console.sessions import COOKIE
from edge.context import CONTEXT, EdgeContext
from edge.fair_lane import FairLane
from tests.edge.admin.conftest import edge_context

HOST = "example.test"
ORIGIN = f"https://{HOST}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any
    set_cookie: SimpleCookie = field(default_factory=SimpleCookie)

    @property
    def code(self) -> str:
        assert isinstance(self.body, dict) and "error" in self.body, self.body
        code: str = self.body["error"]["code"]
        return code


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    ctx: EdgeContext
    clock: Clock
    operator: str

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        session: str | None = None,
        csrf: str | None = None,
        host: str = HOST,
        origin: str | None = ORIGIN,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        """``path`` under ``/console``; ``session`` the cookie's value."""
        sent = {"Host": host, **(headers or {})}
        if origin is not None:
            sent["Origin"] = origin
        if session is not None:
            sent["Cookie"] = f"{COOKIE}={session}"
        if csrf is not None:
            sent["X-CSRF-Token"] = csrf
        response = await self.client.request(
            method, PREFIX + path, json=json, headers=sent, params=params
        )
        if response.content_type == "application/json":
            body: Any = await response.json()
        else:
            body = await response.read()
        cookie: SimpleCookie = SimpleCookie()
        for value in response.headers.getall("Set-Cookie", []):
            cookie.load(value)
        return Reply(response.status, response.headers, body, cookie)

    async def sign_in(self, secret: str | None = None, host: str = HOST) -> tuple[str, str]:
        """A session of ``secret`` (the operator key by default): (cookie value, CSRF token)."""
        reply = await self.call(
            "POST", "/session", {"admin_key": secret or self.operator}, host=host
        )
        assert reply.status == 200, reply
        return reply.set_cookie[COOKIE].value, reply.body["csrf_token"]

    async def admin_key(self, slug: str, name: str) -> str:
        """A tenant (made if need be) and a tenant admin key of it, through the store."""
        tenant = await self.ctx.store.tenants.by_slug(slug)
        if tenant is None:
            tenant = await self.ctx.store.tenants.create(credentials.new_id("t"), slug)
        secret = credentials.new_api_key(credentials.ADMIN_KEY_PREFIX)
        await self.ctx.store.admin_keys.add(
            credentials.new_id("a"), tenant.id, self.ctx.hasher.digest(secret), name
        )
        return secret


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    ctx = edge_context(tmp_path)
    clock = Clock()
    ctx.clock = clock
    operator = credentials.new_api_key(credentials.ADMIN_KEY_PREFIX)
    await ctx.store.admin_keys.add(credentials.new_id("a"), None, ctx.hasher.digest(operator))
    root = web.Application(client_max_size=64 * 1024)
    root[CONTEXT] = ctx
    root[LANE] = FairLane()
    root.add_subapp(PREFIX, create_console_app())
    root.add_subapp(ADMIN_PREFIX, create_admin_app())  # beside it, as in the edge
    async with TestClient(TestServer(root), cookie_jar=DummyCookieJar()) as client:
        yield Console(client, ctx, clock, operator)
    await ctx.store.close()
