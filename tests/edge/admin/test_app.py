"""The sub-application itself (``edge.admin``): mounted under the prefix, it renders every error
as JSON in the OpenAI shape with its own middleware, aiohttp's 404 and 405 included."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_urldispatcher import PrefixedSubAppResource

from edge.admin import PREFIX, create_admin_app
from edge.app import create_app
from edge.config import EdgeConfig
from edge.context import CONTEXT
from tests.edge.admin.conftest import MAX_BODY, AdminApi


@pytest.mark.parametrize(
    "path", ["/nothing", "/tenants/acme/nothing", "/tenants/acme/keys/k1/nothing", "/", ""]
)
async def test_an_unknown_admin_path_is_a_json_404(admin_api: AdminApi, path: str) -> None:
    answer = await admin_api.call("GET", path)
    assert answer.status == 404
    assert answer.body == {
        "error": {
            "message": f"Not Found: GET {PREFIX}{path}",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/tenants"),
        ("PUT", "/tenants/acme"),
        ("GET", "/tenants/acme/machines/pair"),
        ("POST", "/tenants/acme/keys/k1"),
        ("GET", "/tenants/acme/aliases/fast"),
        ("POST", "/tenants/acme/usage"),
    ],
)
async def test_a_wrong_method_is_a_json_405(admin_api: AdminApi, method: str, path: str) -> None:
    answer = await admin_api.call(method, path)
    assert answer.status == 405
    assert answer.body == {
        "error": {
            "message": f"Method Not Allowed: {method} {PREFIX}{path}",
            "type": "invalid_request_error",
            "param": None,
            "code": "method_not_allowed",
        }
    }


async def test_an_api_error_is_rendered_in_the_openai_shape(admin_api: AdminApi) -> None:
    answer = await admin_api.call("GET", "/tenants", key=None)
    assert answer.status == 401
    assert answer.body == {
        "error": {
            "message": "Missing or incorrect admin key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_admin_key",
        }
    }


async def test_a_body_past_the_edges_limit_is_a_json_413(admin_api: AdminApi) -> None:
    answer = await admin_api.call("POST", "/tenants", data=b" " * (MAX_BODY + 1))
    assert answer.status == 413
    assert answer.error["code"] == "request_too_large"


async def test_an_unexpected_exception_is_a_logged_json_500(
    admin_api: AdminApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(admin_api.ctx.store.tenants, "all", broken)
    with caplog.at_level(logging.ERROR, logger="edge.admin"):
        answer = await admin_api.call("GET", "/tenants")
    assert answer.status == 500
    assert answer.body == {
        "error": {
            "message": "internal error; it has been logged",
            "type": "api_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert "the disk caught fire" in caplog.text
    assert f"unexpected error in GET {PREFIX}/tenants" in caplog.text


async def test_it_keeps_no_state_of_its_own() -> None:
    # The edge's state is the parent application's: handlers find it through config_dict.
    assert CONTEXT not in create_admin_app()


async def test_the_edge_mounts_it_under_the_prefix(tmp_path: Path) -> None:
    config = EdgeConfig(domain="example.test", data_dir=tmp_path / "edge")
    app = create_app(config)
    async with TestClient(TestServer(app)) as client:
        listed = await client.get(f"{PREFIX}/tenants")
        missing = await client.get(f"{PREFIX}/nothing")
        elsewhere = await client.get("/admin/v2/tenants")
        assert listed.status == 401
        assert (await listed.json())["error"]["code"] == "invalid_admin_key"
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "not_found"
        assert elsewhere.status == 404  # the root application's 404: nothing is mounted there
    mounted = [
        r.get_info()["prefix"]
        for r in app.router.resources()
        if isinstance(r, PrefixedSubAppResource)
    ]
    assert PREFIX in mounted
