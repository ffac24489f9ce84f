"""Model aliases (``edge.admin.aliases``): set, list, delete."""

from __future__ import annotations

from typing import Any

import pytest

from tests.edge.admin.conftest import AdminApi


async def test_an_alias_is_set_listed_and_deleted(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    put = await admin_api.ok("PUT", "/tenants/acme/aliases/gpt-4o", {"model": " qwen3:8b "})
    assert put == {"alias": "gpt-4o", "model": "qwen3:8b"}
    assert await admin_api.ok("GET", "/tenants/acme/aliases") == {"aliases": {"gpt-4o": "qwen3:8b"}}
    assert await admin_api.ok("DELETE", "/tenants/acme/aliases/gpt-4o") == {"deleted": "gpt-4o"}
    assert await admin_api.ok("GET", "/tenants/acme/aliases") == {"aliases": {}}
    assert (await admin_api.audit_trail("acme"))[1:] == [
        ("alias.set", "gpt-4o -> qwen3:8b", "operator"),
        ("alias.deleted", "gpt-4o", "operator"),
    ]


async def test_an_alias_may_hold_slashes_and_colons(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    put = await admin_api.ok("PUT", "/tenants/acme/aliases/org/model:v1@x", {"model": "m"})
    assert put["alias"] == "org/model:v1@x"
    deleted = await admin_api.ok("DELETE", "/tenants/acme/aliases/org/model:v1@x")
    assert deleted == {"deleted": "org/model:v1@x"}


@pytest.mark.parametrize("alias", ["-lead", "a" * 129, "sp%20ace", "semi;colon"])
async def test_a_bad_alias_is_400(admin_api: AdminApi, alias: str) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("PUT", f"/tenants/acme/aliases/{alias}", {"model": "m"})
    assert answer.status == 400
    assert answer.error["param"] == "alias"


@pytest.mark.parametrize("model", [None, "", "  ", 5, "m" * 257, "qwen\x00", "a\nb"])
async def test_an_alias_must_name_a_model(admin_api: AdminApi, model: Any) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("PUT", "/tenants/acme/aliases/fast", {"model": model})
    assert answer.status == 400
    assert answer.error["param"] == "model"
    assert await admin_api.ok("GET", "/tenants/acme/aliases") == {"aliases": {}}


async def test_deleting_an_unknown_alias_is_404(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("DELETE", "/tenants/acme/aliases/fast")
    assert answer.status == 404
    assert (answer.error["code"], answer.error["message"]) == ("alias_not_found", "no alias 'fast'")
