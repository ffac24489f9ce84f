"""Request bodies: read, bounded and parsed strictly (``edge.json_input``), large ones one at a
time through the shared ``FairLane`` (README "Errors and limits")."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from edge import json_input
from edge.errors import ApiError, bad_request
from edge.fair_lane import FairLane

LANE = web.AppKey("llmtunnel_large_bodies", FairLane)
# Bodies above this go through the lane: parsing and validating them may hold the event loop
# for tens of milliseconds, which other tenants must not feel more than once in a row.
LARGE_BODY = 256 * 1024


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ``ApiError`` (400 malformed, 413 too large,
    429 when the caller has too many large bodies waiting)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        # aiohttp's text names both sizes ("Maximum request body size N exceeded, actual …").
        raise ApiError(413, "request_too_large", exc.text or "request body too large") from None
    if len(raw) <= LARGE_BODY:
        return _parse(raw)
    async with request.config_dict[LANE].turn(_owner(request)):
        body = _parse(raw)
    await asyncio.sleep(0)  # let what became ready meanwhile run before the next heavy step
    return body


def _owner(request: web.Request) -> str:
    # Requests are grouped by the credential they carry (or the address, for pairing): a hash,
    # so that no secret is kept as a key while the request waits.
    credential = request.headers.get("Authorization") or request.headers.get("x-api-key")
    return f"{hash(credential or request.remote or '')}"


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json_input.loads(raw)
    except json_input.JsonInputError as exc:
        where = f"Invalid value for '{exc.param}'" if exc.param else "Invalid request body"
        raise bad_request(f"{where}: {exc}", param=exc.param, code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", code="invalid_json")
    return body
