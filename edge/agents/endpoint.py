"""``GET /agent/connect``: a machine's tunnel. Accept the WebSocket, log the machine in through the
sans-I/O login (``protocol.login.EdgeLogin``, driven by ``llmtunnel.tunnel.edge_login``), then serve
its ``AgentSession`` until the link ends.

The one thing the login leaves to the edge is checking the claim against the store. An unknown
or revoked machine's signature is checked too, against a key nobody holds, and every failure gets
the one ``auth_failed`` answer: neither the words nor the time taken tell which machine ids exist
(PROTOCOL.md §3).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.agents.hosts import AgentHosts
from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.agents.transport import AiohttpTransport
from edge.errors import ApiError
from edge.store import Machine, Store
from llmtunnel.tunnel import Traffic, edge_login
from protocol import Claim, Connection, EdgeLogin, Nodes, ProtocolError, Role, TunnelLimits
from protocol.codec import AGENT_MAX_RECEIVE_FRAME

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0  # seconds a closing handshake may take before the socket is cut

# Verified against when the machine id is unknown, so that refusing it costs what refusing a bad
# signature costs. Nobody holds its private key: it is thrown away at once.
_UNKNOWN_MACHINE_KEY = Ed25519PrivateKey.generate().public_key().public_bytes_raw()


async def accept_agent(
    request: web.Request,
    store: Store,
    registry: Registry[AgentSession],
    limits: TunnelLimits,
    traffic: Traffic | None = None,
    nodes: Callable[[], Nodes | None] | None = None,
    hosts: AgentHosts | None = None,
) -> web.WebSocketResponse:
    """Log the machine in (CHALLENGE/AUTH/READY/HELLO), then serve its session; what the
    session moves is counted in ``traffic``; ``nodes`` gives the NODES it hears first when this
    edge is one of several (PROTOCOL.md §11). A ``Host`` that is not one of ``hosts`` is
    refused (421) before the upgrade: CHALLENGE names the ``Host``, so a login signed for
    another server's name must not be taken here (``edge.agents.hosts``)."""
    if hosts is not None and not hosts.accepts(request.host, request.remote):
        raise ApiError(
            421,
            "misdirected_request",
            f"this edge does not serve {request.host[:100]!r}: agents connect to"
            f" {hosts.domain}, a subdomain of it, or a node's advertised host",
        )
    # max_msg_size: aiohttp refuses a message whose size *equals* its limit, and closes (1009)
    # before the edge can say why. +1 admits a frame of exactly max_frame, as PROTOCOL.md §4
    # promises; one more byte lets a message one byte over reach the codec, which refuses it
    # with ERROR frame_too_large. Anything larger is cut by aiohttp, unbuffered, with 1009.
    ws = web.WebSocketResponse(
        max_msg_size=limits.max_frame + 2, compress=False, timeout=CLOSE_TIMEOUT
    )
    await ws.prepare(request)
    transport = AiohttpTransport(ws, request.transport, CLOSE_TIMEOUT)
    conn = Connection(
        Role.EDGE, max_receive_frame=limits.max_frame, max_send_frame=AGENT_MAX_RECEIVE_FRAME
    )
    login = EdgeLogin(conn, request.host, limits)
    verify = functools.partial(check_claim, store)
    try:
        machine, hello = await edge_login(transport, login, verify, limits.handshake_timeout)
    except (ProtocolError, ConnectionError) as exc:
        log.info("agent login from %s refused: %s", request.remote, exc)
        return ws
    session = AgentSession(transport, conn, machine, hello, registry, limits, traffic, nodes)
    log.info("machine %s (%s) online with %d models", machine.name, machine.id, len(session.models))
    await session.run()
    log.info("machine %s (%s) offline", machine.name, machine.id)
    return ws


async def check_claim(store: Store, claim: Claim) -> Machine | None:
    """The machine ``claim`` proves to be, or ``None``: unknown, revoked, or a bad signature.
    The same work each way: a signature is checked even when there is no machine (§3)."""
    found = await store.machines.by_id(claim.machine_id)
    machine = found if found is not None and found.revoked_at is None else None
    public_key = machine.public_key if machine is not None else _UNKNOWN_MACHINE_KEY
    if not verify_signature(public_key, claim.signature, claim.message):
        return None
    return machine


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies with the raw Ed25519 ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
