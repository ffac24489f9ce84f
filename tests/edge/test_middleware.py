"""The JSON error middleware: every failure in the API's own shape, a database outage a 503."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edge.errors import ApiError
from edge.middleware import json_errors, openai_shape
from edge.store import StoreUnavailable


async def fails_with(exc: Exception) -> TestClient[web.Request, web.Application]:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[json_errors(openai_shape)])
    app.router.add_post("/x", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_a_store_outage_is_a_503_to_retry_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    client = await fails_with(StoreUnavailable("connection refused"))
    try:
        with caplog.at_level(logging.WARNING):
            response = await client.post("/x")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        error = (await response.json())["error"]
        assert error["code"] == "store_unavailable"
        assert "traceback" not in caplog.text.lower()
        assert "store unavailable in POST /x: connection refused" in caplog.text
    finally:
        await client.close()


async def test_an_unexpected_error_is_a_logged_500_without_details() -> None:
    client = await fails_with(RuntimeError("secret detail"))
    try:
        response = await client.post("/x")
        assert response.status == 500
        body = await response.text()
        assert "secret detail" not in body and "internal_error" in body
    finally:
        await client.close()


async def test_an_api_error_keeps_its_status_and_shape() -> None:
    client = await fails_with(ApiError(429, "rate_limit_exceeded", "slow down"))
    try:
        response = await client.post("/x")
        assert response.status == 429
        assert (await response.json())["error"]["code"] == "rate_limit_exceeded"
    finally:
        await client.close()
