"""The node-to-node hop: a request admitted on one node, run on a machine another node holds.

The node that took the client's request has authenticated it, checked its limits and charged
them; it keeps the audit record and renders the reply. It sends the *neutral* request to the
node that holds a tunnel to the chosen machine (``POST /cluster/v1/streams``, over HTTPS to that
node's advertised URL), which leases a slot there (waiting in that node's fair queue under the
same API key), opens the stream, and answers with the stream's frames as they come: each one
``protocol.codec`` bytes behind a 4-byte length. The reply's headers leave only once the slot is
leased and the stream open, so a refusal there (404, 503 busy…) is an HTTP error the first node
raises as its own (docs/ARCHITECTURE.md "Several edge nodes").

The hop is signed (``edge.cluster.hop_auth``): HMAC-SHA256, under a key derived from the server
secret every node shares, over headers naming the sending and the receiving node, the time, a
nonce and the body's digest, checked before the body is read. The HTTPS connection keeps it
private. A 403 from the other node means it refuses this node's signature (another secret, or
clocks apart): ``HopRefusedByPeer``, which routing treats as that node failing.

Flow control holds end to end: the first node reads the hop's body only as its client takes
the reply (at most ``WINDOW`` ahead), so TCP stops the second node, which stops handing credit
to the agent (PROTOCOL.md §8). Closing the hop's response (the client went away) cancels the
second node's handler, which CANCELs the stream on the GPU box.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass

import aiohttp
import msgpack

from edge.agents.stream import TunnelStream
from edge.cluster.directory import RemoteMachine
from edge.cluster.hop_auth import sign
from edge.errors import ApiError
from protocol import Delta, Embeddings, End, Error, decode
from protocol.errors import ProtocolError
from protocol.mux import FLOW_CONTROLLED
from protocol.requests import Request, to_wire

log = logging.getLogger(__name__)

PATH = "/cluster/v1/streams"
WINDOW = 256 * 1024  # bytes of reply the first node reads ahead of its client
MAX_FRAME = 64 * 1024 * 1024  # the largest frame a hop carries (an agent's EMBEDDINGS are less)
CONNECT_TIMEOUT = 2.0  # seconds to reach another node before it counts as unreachable
_STREAM = 1  # a hop carries one stream: its frames are renumbered 1
FRAMES = "application/x-llmtunnel-frames"


class NodeUnreachable(Exception):
    """The other node did not answer: route elsewhere."""


class HopRefusedByPeer(NodeUnreachable):
    """The other node answered 403: it does not take this node's signature (another server
    secret, or a clock more than ``MAX_SKEW`` apart). Route elsewhere, as from a dead node."""


# ---------------------------------------------------------------------- the node that asks


@dataclass(frozen=True, slots=True)
class Hop:
    """Where and how this node forwards: its id, the hop key, an HTTP client."""

    node_id: str
    key: bytes
    client: aiohttp.ClientSession


async def forward(
    hop: Hop,
    machine: RemoteMachine,
    tenant_id: str,
    request: Request,
    queue_timeout: float,
    request_timeout: float,
    exclude: frozenset[str],
    key_id: str,
    request_id: str = "",
) -> RemoteSlot:
    """Ask the node that holds ``machine``'s tunnel for a slot on it and open ``request``
    there. ``ApiError`` as that node refused it; ``NodeUnreachable`` when it does not answer."""
    body = msgpack.packb(
        {
            "tenant": tenant_id,
            "key": key_id,
            "machine": machine.machine_id,
            "exclude": sorted(e for e in exclude if "/" not in e),
            "queue_timeout": queue_timeout,
            "timeout": request_timeout,
            "request": to_wire(request),
            "request_id": request_id,
        },
        use_bin_type=True,
    )
    headers = sign(hop.key, PATH, hop.node_id, machine.node_id, body, time.time())
    try:
        async with asyncio.timeout(queue_timeout + CONNECT_TIMEOUT * 2):
            response = await hop.client.post(machine.node_url + PATH, data=body, headers=headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise NodeUnreachable(f"{machine.node_url}: {exc or type(exc).__name__}") from None
    if response.status == 403:
        response.release()
        raise HopRefusedByPeer(f"{machine.node_url} answered 403")
    if response.status != 200:
        raise await _refusal(response)
    name = response.headers.get("x-llmtunnel-machine", machine.machine_name)
    return RemoteSlot(response, f"{machine.node_id}/{machine.machine_id}", name)


async def _refusal(response: aiohttp.ClientResponse) -> ApiError:
    """The other node's HTTP error, as this node's own."""
    try:
        error = (await response.json(content_type=None))["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        code, message = "backend_unavailable", f"another edge node answered {response.status}"
    finally:
        response.release()
    retry = response.headers.get("Retry-After")
    headers = {"Retry-After": retry} if retry else None
    return ApiError(response.status, code, message, headers=headers)


class RemoteSlot:
    """A stream open on another node, read as a ``TunnelStream`` (its ``StreamOwner``).
    ``machine_id`` is ``node/machine``: what failover excludes when it fails."""

    def __init__(
        self, response: aiohttp.ClientResponse, machine_id: str, machine_name: str
    ) -> None:
        self._response = response
        self.machine_id = machine_id
        self.machine_name = machine_name
        self._room = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self.stream: TunnelStream | None = None

    def open(self, request: Request, timeout: float, request_id: str = "") -> TunnelStream:
        """The stream (already open on the other node, the request id sent with it): its
        frames, read as they are wanted."""
        self.stream = TunnelStream(self, _STREAM)
        self._pump = asyncio.create_task(self._read(self.stream))
        return self.stream

    def release(self) -> None:
        self._response.close()

    # StreamOwner

    def consumed(self, stream_id: int, size: int) -> None:
        self._room.set()

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._response.close()  # the other node's handler is cancelled: CANCEL to the agent

    async def _read(self, stream: TunnelStream) -> None:
        content = self._response.content
        try:
            while True:
                size = int.from_bytes(await content.readexactly(4), "big")
                if size > MAX_FRAME:
                    raise ProtocolError(f"a forwarded frame of {size} bytes")
                frame = decode(await content.readexactly(size), MAX_FRAME)
                if not isinstance(frame, Delta | Embeddings | End | Error):
                    raise ProtocolError(f"a forwarded {frame.TYPE.name} frame")
                stream.deliver(dataclasses.replace(frame, stream_id=_STREAM))
                if not isinstance(frame, FLOW_CONTROLLED):
                    return
                while stream.buffered > WINDOW:
                    self._room.clear()
                    await self._room.wait()
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError, ProtocolError) as exc:
            cause = exc or type(exc).__name__
            reason = f"the edge node holding the machine's tunnel went away ({cause})"
            stream.deliver(Error(_STREAM, "backend_unavailable", reason, True))
        except Exception:  # a defect here must still end the client's stream, not leave it waiting
            log.exception("reading a forwarded stream failed")
            reason = "the forwarded stream failed on this edge node"
            with contextlib.suppress(Exception):
                stream.deliver(Error(_STREAM, "backend_unavailable", reason, True))
        finally:
            with contextlib.suppress(Exception):
                self._response.close()
