"""Request bodies: read, bounded and parsed strictly (``edge.json_input``); the work on a large
one done through the shared ``FairLane`` (README "Errors and limits")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from edge import json_input
from edge.errors import ApiError, bad_request
from edge.fair_lane import FairLane

LANE = web.AppKey("llmtunnel_large_bodies", FairLane)
# Bodies above this go through the lane: parsing and validating them, building the tunnel request
# and estimating its tokens may each hold the event loop for tens of milliseconds, which other
# tenants must not feel more than one step at a time.
LARGE_BODY = 256 * 1024

Pause = Callable[[], Awaitable[None]]


async def read_raw(request: web.Request) -> bytes:
    """The body's bytes; 413 past the edge's body limit."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        # aiohttp's text names both sizes ("Maximum request body size N exceeded, actual …").
        raise ApiError(413, "request_too_large", exc.text or "request body too large") from None


def parse_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or a 400 naming what is wrong and where."""
    try:
        body = json_input.loads(raw)
    except json_input.JsonInputError as exc:
        where = f"Invalid value for '{exc.param}'" if exc.param else "Invalid request body"
        raise bad_request(f"{where}: {exc}", param=exc.param, code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", code="invalid_json")
    return body


async def _no_pause() -> None:
    return None


class Pacer:
    """Pauses between heavy steps as long as the step before took (at most ``MAX_PAUSE``): heavy
    work then holds the loop half the time at most, and everything else that is ready (a small
    request needs several turns of the loop) gets its turns in between."""

    MAX_PAUSE = 0.1

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._since = clock()

    async def __call__(self) -> None:
        worked = self._clock() - self._since
        await self._sleep(min(worked, self.MAX_PAUSE))
        self._since = self._clock()


@contextlib.asynccontextmanager
async def heavy_work(request: web.Request, raw: bytes) -> AsyncIterator[Pause]:
    """Hold the lane while working on a large ``raw`` (nothing for a small one); yields a pause
    to await between the steps of that work, so the loop serves others in between. 429 when
    the caller already has too many large bodies waiting."""
    if len(raw) <= LARGE_BODY:
        yield _no_pause
        return
    pause = Pacer()
    async with request.config_dict[LANE].turn(_owner(request)):
        yield pause
        await pause()  # before the next large body's first step, not beside it


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ``ApiError`` (400 malformed, 413 too large,
    429 when the caller has too many large bodies waiting)."""
    raw = await read_raw(request)
    async with heavy_work(request, raw):
        return parse_object(raw)


def _owner(request: web.Request) -> str:
    # Requests are grouped by the credential they carry (or the address, for pairing): a hash,
    # so that no secret is kept as a key while the request waits.
    credential = request.headers.get("Authorization") or request.headers.get("x-api-key")
    return f"{hash(credential or request.remote or '')}"
