"""Driving a login machine (``protocol.login``) over a transport, in bounded time (PROTOCOL.md §3).

Between the machine's steps the driver flushes what the connection queued and reads one message.
Whatever goes wrong (a frame out of place, a refused signature, the time running out) is answered
the same way on both ends: ``Connection.fail(error)`` (ERROR on stream 0 with the error's code),
that frame flushed within the same bound, then the WebSocket closed with 1008 (policy violation);
the error is raised to the caller. A peer that ended the login with its own ERROR is
``ClosedByPeer`` and gets nothing more. A ``ConnectionError`` from the transport (the link broke)
is raised as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from llmtunnel.tunnel.transport import Transport, send_all
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.frames import Frame, Hello, Ready
from protocol.login import AgentLogin, Claim, EdgeLogin
from protocol.mux import Connection

LOGIN_REFUSED = 1008  # the WebSocket close code of every failed login: policy violation
T = TypeVar("T")
R = TypeVar("R")


async def edge_login(
    transport: Transport,
    login: EdgeLogin,
    verify: Callable[[Claim], Awaitable[T | None]],
    timeout: float,
) -> tuple[T, Hello]:
    """The edge's side: CHALLENGE, then the agent's AUTH as a ``Claim`` for ``verify``, which
    answers who the machine is, or ``None`` to refuse it (``auth_failed``); READY, then HELLO.
    Returns what ``verify`` answered and the HELLO, or raises ``ProtocolError``."""

    async def steps() -> tuple[T, Hello]:
        login.start()
        machine: T | None = None
        while True:
            step = login.receive(await _exchange(transport, login.conn))
            if isinstance(step, Hello):
                assert machine is not None  # the machine accepted it before READY
                return machine, step
            machine = await verify(step)
            login.verdict(machine is not None)

    return await _bounded(transport, login.conn, steps(), timeout)


async def agent_login(transport: Transport, login: AgentLogin, timeout: float) -> Ready:
    """The agent's side: answer CHALLENGE with AUTH, READY with HELLO. Returns the READY (the
    limits of the session), or raises ``ProtocolError``: ``ClosedByPeer`` when turned away."""

    async def steps() -> Ready:
        ready = await _until_ready(transport, login)
        await send_all(transport, login.conn.data_to_send())  # the HELLO
        return ready

    return await _bounded(transport, login.conn, steps(), timeout)


async def agent_probe(transport: Transport, login: AgentLogin, timeout: float) -> Ready:
    """The agent's side as far as READY, the HELLO left unsent: proof that the edge accepts the
    machine, which does not take the place of the machine's running session (the edge
    registers a session on its HELLO). The caller closes the transport."""
    return await _bounded(transport, login.conn, _until_ready(transport, login), timeout)


async def _until_ready(transport: Transport, login: AgentLogin) -> Ready:
    while (ready := login.receive(await _exchange(transport, login.conn))) is None:
        pass
    return ready


async def _bounded(
    transport: Transport, conn: Connection, steps: Coroutine[Any, Any, R], timeout: float
) -> R:
    try:
        async with asyncio.timeout(timeout):
            return await steps
    except (ProtocolError, TimeoutError) as exc:
        error = exc if isinstance(exc, ProtocolError) else RemoteProtocolError("login timed out")
        conn.fail(error)
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(timeout):
                await send_all(transport, conn.data_to_send())
        await transport.close(LOGIN_REFUSED)
        raise error from None


async def _exchange(transport: Transport, conn: Connection) -> Frame:
    """Flush what is queued, then the peer's next frame."""
    await send_all(transport, conn.data_to_send())
    data = await transport.recv()
    if data is None:
        raise RemoteProtocolError("the connection closed during the login")
    frame = conn.receive(data)
    if frame is None:  # only a late stream frame is dropped, and there are no streams yet
        raise RemoteProtocolError("a stream frame during the login")
    return frame
