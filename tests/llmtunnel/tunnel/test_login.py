"""The login drivers (``llmtunnel.tunnel.login``) over a socket pair, on a virtual clock: both ways,
refused, timed out, and turned down by the agent (PROTOCOL.md §3)."""

from __future__ import annotations

import asyncio

import pytest

from llmtunnel.tunnel import agent_login, edge_login
from protocol import (
    AgentLogin,
    Challenge,
    ClosedByPeer,
    Connection,
    EdgeLogin,
    Error,
    ErrorCode,
    RemoteProtocolError,
    Role,
    State,
    TunnelLimits,
    auth_message,
)
from protocol.login import AUTH_FAILED_MESSAGE, Claim
from tests.llmtunnel.tunnel.pair import (
    HELLO,
    HOST,
    MACHINE,
    logged_in,
    on_socket_pairs,
    sign,
    socket_pair,
)

LIMITS = TunnelLimits(stream_window=4096, heartbeat_interval=1.0)


@on_socket_pairs
async def test_both_ends_log_in_over_a_socket_pair() -> None:
    edge, agent, ready = await logged_in(LIMITS)
    assert (ready.stream_window, ready.heartbeat_interval) == (4096, 1.0)
    assert edge.conn.state is agent.conn.state is State.OPEN
    assert agent.conn.stream_window == edge.conn.stream_window == 4096
    assert asyncio.get_running_loop().time() == 0.0  # nothing waited on a timer


@on_socket_pairs
async def test_the_claim_is_what_the_agent_signed_for_this_host() -> None:
    edge_t, agent_t = await socket_pair()
    edge = EdgeLogin(Connection(Role.EDGE), HOST, LIMITS, nonce=b"\x05" * 32)
    claims: list[Claim] = []

    async def recording(claim: Claim) -> str:
        claims.append(claim)
        return claim.machine_id

    agent = AgentLogin(Connection(Role.AGENT), HOST, MACHINE, sign, HELLO)
    await asyncio.gather(edge_login(edge_t, edge, recording, 10), agent_login(agent_t, agent, 10))
    message = auth_message(b"\x05" * 32, HOST, 2)
    assert claims == [Claim(MACHINE, message, sign(message))]


@on_socket_pairs
async def test_a_refused_claim_is_auth_failed_on_both_ends_and_closes_with_1008() -> None:
    edge_t, agent_t = await socket_pair()
    edge = EdgeLogin(Connection(Role.EDGE), HOST, LIMITS)
    agent = AgentLogin(Connection(Role.AGENT), HOST, MACHINE, sign, HELLO)

    async def nobody(claim: Claim) -> str | None:
        return None

    edge_result, agent_result = await asyncio.gather(
        edge_login(edge_t, edge, nobody, 10),
        agent_login(agent_t, agent, 10),
        return_exceptions=True,
    )
    assert isinstance(edge_result, RemoteProtocolError)
    assert edge_result.code is ErrorCode.AUTH_FAILED
    assert isinstance(agent_result, ClosedByPeer)
    assert (agent_result.error_code, agent_result.error_message) == (
        "auth_failed",
        AUTH_FAILED_MESSAGE,
    )
    assert edge_t.closed_with == 1008
    assert edge.conn.state is agent.conn.state is State.CLOSED


@on_socket_pairs
async def test_a_login_not_finished_in_time_is_refused() -> None:
    edge_t, silent = await socket_pair()  # the agent's end reads, and never answers
    edge = EdgeLogin(Connection(Role.EDGE), HOST, LIMITS)
    with pytest.raises(RemoteProtocolError, match="login timed out"):
        await edge_login(edge_t, edge, lambda claim: asyncio.sleep(0, None), 10.0)
    assert asyncio.get_running_loop().time() == 10.0
    challenge, error = await silent.frames()
    assert isinstance(challenge, Challenge)
    assert error == Error(0, "protocol_error", "login timed out", False)
    assert edge_t.closed_with == 1008


@on_socket_pairs
async def test_the_agent_turns_down_an_edge_that_names_another_host() -> None:
    edge_t, agent_t = await socket_pair()
    edge = EdgeLogin(Connection(Role.EDGE), "elsewhere.test", LIMITS)
    agent = AgentLogin(Connection(Role.AGENT), HOST, MACHINE, sign, HELLO)

    async def anyone(claim: Claim) -> str:
        return claim.machine_id

    edge_result, agent_result = await asyncio.gather(
        edge_login(edge_t, edge, anyone, 10),
        agent_login(agent_t, agent, 10),
        return_exceptions=True,
    )
    assert isinstance(agent_result, RemoteProtocolError)
    assert "this agent dialed 'edge.test'" in str(agent_result)
    assert isinstance(edge_result, ClosedByPeer)  # the agent said why: ERROR on stream 0
    assert edge_result.error_message == str(agent_result)
    assert agent_t.closed_with == edge_t.closed_with == 1008


@on_socket_pairs
async def test_a_peer_that_hangs_up_mid_login_is_refused() -> None:
    edge_t, agent_t = await socket_pair()
    edge = EdgeLogin(Connection(Role.EDGE), HOST, LIMITS)

    async def hang_up_after_the_challenge() -> None:
        assert await agent_t.recv() is not None
        await agent_t.close(1000)

    hanging_up = asyncio.create_task(hang_up_after_the_challenge())
    with pytest.raises(RemoteProtocolError, match="the connection closed during the login"):
        await edge_login(edge_t, edge, lambda claim: asyncio.sleep(0, None), 10)
    await hanging_up


@on_socket_pairs
async def test_a_link_that_breaks_mid_login_is_a_connection_error() -> None:
    edge_t, _ = await socket_pair()
    edge = EdgeLogin(Connection(Role.EDGE), HOST, LIMITS)
    edge_t.abort()  # the connection is gone before the CHALLENGE can be written
    with pytest.raises(ConnectionError):
        await edge_login(edge_t, edge, lambda claim: asyncio.sleep(0, None), 10)
