"""The admin sub-application mounted, as the edge mounts it, at ``/admin/v1`` in a bare
application that holds only the shared state: no root middleware, no TLS, no tunnel. What these
tests see of errors is the sub-application's own doing. The store is a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edge import credentials
from edge.admin import PREFIX, create_admin_app
from edge.agents.registry import Registry
from edge.agents.routing import Router
from edge.agents.session import AgentSession
from edge.audit import Recorder
from edge.bodies import LANE
from edge.config import EdgeConfig
from edge.context import CONTEXT, EdgeContext
from edge.fair_lane import FairLane
from edge.limits import Limits
from edge.store import Machine, SqliteStore

MAX_BODY = 64 * 1024


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and set(self.body) == {"error"}, self.body
        error: dict[str, Any] = self.body["error"]
        return error


@dataclass
class AdminApi:
    client: TestClient[web.Request, web.Application]
    ctx: EdgeContext
    operator: str  # the operator key's secret

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        key: str | None = "operator",
        params: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Answer:
        """``path`` under the prefix; ``key`` a secret, ``"operator"`` or ``None`` (none sent)."""
        secret = self.operator if key == "operator" else key
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        response = await self.client.request(
            method, PREFIX + path, json=json, data=data, params=params, headers=headers
        )
        assert response.content_type == "application/json", await response.text()
        return Answer(response.status, await response.json())

    async def ok(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        answer = await self.call(method, path, json, **kwargs)
        assert answer.status in (200, 201), answer
        return answer.body

    async def tenant(self, slug: str) -> None:
        await self.ok("POST", "/tenants", {"slug": slug})

    async def tenant_admin_key(self, slug: str, name: str) -> str:
        secret: str = (await self.ok("POST", f"/tenants/{slug}/admin-keys", {"name": name}))[
            "secret"
        ]
        return secret

    async def machine(self, slug: str, name: str) -> Machine:
        """A machine paired through the API's code, redeemed as the agent's pairing would."""
        code = (await self.ok("POST", f"/tenants/{slug}/machines/pair", {"name": name}))["code"]
        digest = self.ctx.hasher.digest(credentials.normalize_pairing_code(code))
        machine = await self.ctx.store.machines.redeem_pairing_code(
            digest, credentials.new_id("m"), b"k" * 32
        )
        assert machine is not None
        return machine

    async def audit_trail(self, slug: str) -> list[tuple[str, str, str]]:
        """The tenant's admin events, oldest first, as (action, subject, actor)."""
        await self.ctx.recorder.flush()
        tenant = await self.ctx.store.tenants.by_slug(slug)
        assert tenant is not None
        events = await self.ctx.store.usage.audit_events(tenant.id, 0, None, 10_000)
        return [
            (e["action"], e["subject"], e["actor"])
            for e in reversed(events)
            if e["kind"] == "admin"
        ]


def edge_context(data_dir: Path) -> EdgeContext:
    store = SqliteStore(data_dir / "edge.db")
    registry: Registry[AgentSession] = Registry()
    return EdgeContext(
        config=EdgeConfig(domain="example.test", data_dir=data_dir, public_port=8443),
        store=store,
        registry=registry,
        router=Router(registry),
        hasher=credentials.KeyHasher(b"s" * 32),
        limits=Limits(store),
        recorder=Recorder(store),
    )


@pytest.fixture
async def admin_api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    ctx = edge_context(tmp_path)
    operator = credentials.new_api_key(credentials.ADMIN_KEY_PREFIX)
    await ctx.store.admin_keys.add(credentials.new_id("a"), None, ctx.hasher.digest(operator))
    root = web.Application(client_max_size=MAX_BODY)
    root[CONTEXT] = ctx
    root[LANE] = FairLane()
    root.add_subapp(PREFIX, create_admin_app())
    async with TestClient(TestServer(root)) as client:
        yield AdminApi(client, ctx, operator)
    await ctx.store.close()
