"""The hop's receiving end over a real socket: it checks the signed headers before it reads a
body, answers junk with the one 403, refuses a replay, and reads a forwarded body up to its own
bound, which is larger than the root application's (aiohttp applies the root's limit to
``request.read()`` in every sub-application)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import msgpack
import pytest
from aiohttp import web

from edge.cluster.directory import RemoteMachine
from edge.cluster.hop import PATH, Hop, forward
from edge.cluster.hop_auth import SeenNonces, hop_key, sign
from edge.cluster.hop_server import PREFIX, create_hop_app
from edge.config import MIB
from edge.context import CONTEXT, EdgeContext
from edge.middleware import json_errors, openai_shape
from protocol import End, Error
from protocol.requests import GenerateRequest, Request, to_wire

KEY = hop_key(b"s" * 32)
ROOT_LIMIT = 64 * 1024  # the root application's client_max_size: a client's body limit
MAX_BODY = 64 * 1024  # the API's max_body: the hop takes that and a MiB of framing


@dataclass
class Opened:
    requests: list[Request] = field(default_factory=list)


class FakeStream:
    async def next(self) -> End:
        return End(1, "stop", 1, 1, {})

    def close(self) -> None:
        pass


@dataclass
class FakeLease:
    opened: Opened
    machine_name: str = "gpu"

    def open(self, request: Request, timeout: float, request_id: str) -> FakeStream:
        self.opened.requests.append(request)
        return FakeStream()


@dataclass
class FakeRegistry:
    opened: Opened

    async def acquire(self, *args: Any) -> FakeLease:
        return FakeLease(self.opened)


@dataclass
class Node2:
    url: str
    opened: Opened
    nonces: SeenNonces


@pytest.fixture
async def node2() -> AsyncIterator[Node2]:
    """The receiving node ("node-2") on a real socket, with the edge's root-app limit."""
    opened, nonces = Opened(), SeenNonces()
    root = web.Application(middlewares=[json_errors(openai_shape)], client_max_size=ROOT_LIMIT)
    cluster = SimpleNamespace(hop_key=KEY, node_id="node-2", nonces=nonces)
    root[CONTEXT] = cast(
        EdgeContext, SimpleNamespace(cluster=cluster, registry=FakeRegistry(opened))
    )
    root.add_subapp(PREFIX, create_hop_app(MAX_BODY))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Node2(f"http://127.0.0.1:{port}", opened, nonces)
    await runner.cleanup()


def body_of(prompt: str) -> bytes:
    fields = {
        "tenant": "t",
        "key": "k",
        "machine": "m",
        "exclude": [],
        "queue_timeout": 1.0,
        "timeout": 5.0,
        "request": to_wire(GenerateRequest("m", prompt)),
    }
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text(errors="replace")


def machine_on(node: Node2) -> RemoteMachine:
    return RemoteMachine("node-2", node.url, "t", "m", "gpu", {}, None, True, 0, 1)


async def test_a_signed_hop_is_served(node2: Node2) -> None:
    body = body_of("hi")
    status, _ = await post(
        node2.url + PATH, body, sign(KEY, PATH, "n1", "node-2", body, time.time())
    )
    assert status == 200
    assert [r.model for r in node2.opened.requests] == ["m"]


@pytest.mark.parametrize(
    "junk",
    [
        {"x-llmtunnel-time": "²"},
        {"x-llmtunnel-signature": "é" * 64},
        {"x-llmtunnel-time": "9" * 400},
        {"x-llmtunnel-nonce": "not hex"},
    ],
)
async def test_junk_headers_get_the_403_of_a_bad_signature_not_a_500(
    node2: Node2, junk: dict[str, str]
) -> None:
    body = body_of("hi")
    headers = {**sign(KEY, PATH, "n1", "node-2", body, time.time()), **junk}
    # aiohttp's client refuses to send non-ASCII header values: write the request by hand.
    status, text = await raw_post(node2.url, body, headers)
    assert status == 403, text
    assert "not a signed request from another edge node" in text
    assert node2.opened.requests == []


async def test_made_up_headers_are_refused_before_the_body_is_read(node2: Node2) -> None:
    """An outsider's hop announcing a large body: refused at once, its body never sent."""
    headers = sign(hop_key(b"x" * 32), PATH, "n1", "node-2", b"", time.time())
    host, port = node2.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * MIB}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode())  # and not one byte of the body
    async with asyncio.timeout(5):
        status_line = await reader.readline()
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 403")


async def test_a_hop_meant_for_another_node_or_replayed_is_refused(node2: Node2) -> None:
    body = body_of("hi")
    status, _ = await post(
        node2.url + PATH, body, sign(KEY, PATH, "n1", "node-3", body, time.time())
    )
    assert status == 403
    headers = sign(KEY, PATH, "n1", "node-2", body, time.time())
    assert (await post(node2.url + PATH, body, headers))[0] == 200
    assert (await post(node2.url + PATH, body, headers))[0] == 403  # the same hop again
    assert len(node2.opened.requests) == 1


async def test_a_body_that_is_not_the_one_signed_is_refused(node2: Node2) -> None:
    headers = sign(KEY, PATH, "n1", "node-2", body_of("hi"), time.time())
    status, _ = await post(node2.url + PATH, body_of("ho"), headers)
    assert status == 403
    assert node2.opened.requests == []


async def test_a_request_larger_than_the_root_limit_is_forwarded(node2: Node2) -> None:
    prompt = "x" * (ROOT_LIMIT * 3)  # past the root app's limit, within the hop's own
    async with aiohttp.ClientSession() as http:
        hop = Hop("node-1", KEY, http)
        slot = await forward(
            hop, machine_on(node2), "t", GenerateRequest("m", prompt), 1, 5, frozenset(), "k"
        )
        slot.release()
    [request] = node2.opened.requests
    assert isinstance(request, GenerateRequest) and request.prompt == prompt


async def test_a_body_past_the_hops_bound_is_413(node2: Node2) -> None:
    body = body_of("x" * (MAX_BODY + MIB))
    status, _ = await post(
        node2.url + PATH, body, sign(KEY, PATH, "n1", "node-2", body, time.time())
    )
    assert status == 413
    assert node2.opened.requests == []


async def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    )
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode() + body)
    async with asyncio.timeout(5):
        reply = await reader.read()
    writer.close()
    status = int(reply.split(b" ", 2)[1])
    return status, reply.decode(errors="replace")


async def test_a_defect_reading_a_forwarded_stream_ends_it_with_an_error(
    node2: Node2, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(data: bytes, max_frame: int) -> object:
        raise RuntimeError("a defect")

    monkeypatch.setattr("edge.cluster.hop.decode", broken)
    async with aiohttp.ClientSession() as http:
        slot = await forward(
            Hop("node-1", KEY, http),
            machine_on(node2),
            "t",
            GenerateRequest("m", "hi"),
            1,
            5,
            frozenset(),
            "k",
        )
        stream = slot.open(GenerateRequest("m", "hi"), 5)
        async with asyncio.timeout(5):  # not left waiting
            event = await stream.next()
        slot.release()
    assert isinstance(event, Error) and event.code == "backend_unavailable"
    assert "reading a forwarded stream failed" in caplog.text
