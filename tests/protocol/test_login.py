"""The login's two state machines (PROTOCOL.md §3), with golden bytes both ways and no I/O.

An edge and an agent machine each sit on their own ``Connection``; the test carries
``data_to_send()`` from one to the other, the way the I/O layer does. Signing is a stand-in: the
machines only ever see a callable that signs and a ``Claim`` to check.
"""

from __future__ import annotations

import pytest

from protocol import (
    AgentLogin,
    Claim,
    ClosedByPeer,
    Connection,
    EdgeLogin,
    Error,
    ErrorCode,
    Frame,
    Hello,
    LocalProtocolError,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    TunnelLimits,
    auth_message,
    encode,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME
from protocol.login import AUTH_FAILED_MESSAGE, Step

NONCE = b"\x11" * 32
HOST = "edge.example"
HELLO = Hello("0.1.0", 4, [])


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# The frames of one login, by hand (PROTOCOL.md §2, §3).
CHALLENGE = h("94 01 c4 20" + " 11" * 32 + " ac 65 64 67 65 2e 65 78 61 6d 70 6c 65 91 02")
AUTH = h("94 02 a3 6d 5f 31 02 c4 40" + " 22" * 64)  # machine "m_1", version 2, signature
READY = h(
    "96 03 a2 73 31"  # READY, session "s1"
    " ce 00 10 00 00"  # max_frame 1 MiB
    " ce 00 04 00 00"  # stream_window 256 KiB
    " ce 00 80 00 00"  # connection_window 8 MiB
    " cb 40 14 00 00 00 00 00 00"  # heartbeat_interval 5.0
)
HELLO_BYTES = h("94 04 a5 30 2e 31 2e 30 04 90")  # "0.1.0", concurrency 4, no models
AUTH_FAILED = h(
    "95 09 00 ab 61 75 74 68 5f 66 61 69 6c 65 64 d9 31"  # ERROR, stream 0, "auth_failed"
    + AUTH_FAILED_MESSAGE.encode().hex()
    + "c2"  # not retryable
)


def sign(message: bytes) -> bytes:
    return b"\x22" * 64  # what AUTH above carries; the edge side is told what to think of it


def machines() -> tuple[EdgeLogin, AgentLogin]:
    edge = EdgeLogin(Connection(Role.EDGE), HOST, TunnelLimits(), nonce=NONCE, session_id="s1")
    agent_conn = Connection(Role.AGENT, max_receive_frame=AGENT_MAX_RECEIVE_FRAME)
    return edge, AgentLogin(agent_conn, HOST, "m_1", sign, HELLO)


def carry(sender: Connection, receiver: Connection) -> list[Frame | None]:
    """Everything ``sender`` queued, received by ``receiver``."""
    return [receiver.receive(data) for data in sender.data_to_send()]


def test_a_whole_login_with_the_bytes_of_every_frame() -> None:
    edge, agent = machines()
    edge.start()
    assert edge.conn.data_to_send() == [CHALLENGE]
    assert agent.receive(agent.conn.receive(CHALLENGE)) is None  # type: ignore[arg-type]
    assert agent.conn.data_to_send() == [AUTH]
    claim = edge.receive(edge.conn.receive(AUTH))  # type: ignore[arg-type]
    assert claim == Claim("m_1", auth_message(NONCE, HOST, 2), b"\x22" * 64)
    assert edge.conn.data_to_send() == []  # nothing until the caller has checked the claim
    edge.verdict(True)
    assert edge.conn.data_to_send() == [READY]
    ready = agent.receive(agent.conn.receive(READY))  # type: ignore[arg-type]
    assert ready == Ready("s1", 1024 * 1024, 256 * 1024, 8 * 1024 * 1024, 5.0)
    assert agent.conn.data_to_send() == [HELLO_BYTES]
    assert edge.receive(edge.conn.receive(HELLO_BYTES)) == HELLO  # type: ignore[arg-type]
    assert (edge.step, agent.step) == (Step.DONE, Step.DONE)
    assert edge.conn.state is agent.conn.state is State.OPEN


def test_the_connection_states_follow_the_login() -> None:
    edge, agent = machines()
    seen = []
    edge.start()
    for step in range(4):
        sender, receiver, machine = (edge, agent, agent) if step % 2 == 0 else (agent, edge, edge)
        for frame in carry(sender.conn, receiver.conn):
            assert frame is not None
            if isinstance(machine.receive(frame), Claim):
                assert isinstance(machine, EdgeLogin)
                machine.verdict(True)
        seen.append((edge.conn.state, agent.conn.state))
    # Sending moves a connection on as receiving does: each side is one frame ahead in turn.
    assert seen == [
        (State.CHALLENGED, State.AUTHENTICATING),  # CHALLENGE crossed, AUTH queued
        (State.GREETING, State.AUTHENTICATING),  # AUTH crossed, READY queued
        (State.GREETING, State.OPEN),  # READY crossed, HELLO queued
        (State.OPEN, State.OPEN),  # HELLO crossed
    ]


def up_to_the_claim(edge: EdgeLogin, agent: AgentLogin) -> Claim:
    """CHALLENGE and AUTH across; the claim the edge must check."""
    edge.start()
    (challenge,) = carry(edge.conn, agent.conn)
    assert challenge is not None and agent.receive(challenge) is None
    (auth,) = carry(agent.conn, edge.conn)
    assert auth is not None
    claim = edge.receive(auth)
    assert isinstance(claim, Claim)
    return claim


def logged_in() -> tuple[Connection, Connection]:
    """An edge and an agent connection after a whole login, both OPEN, nothing left queued."""
    edge, agent = machines()
    up_to_the_claim(edge, agent)
    edge.verdict(True)
    (ready,) = carry(edge.conn, agent.conn)
    assert isinstance(ready, Ready) and agent.receive(ready) == ready
    (hello,) = carry(agent.conn, edge.conn)
    assert hello is not None and edge.receive(hello) == HELLO
    return edge.conn, agent.conn


def test_limits_default_to_the_protocols_and_go_out_in_ready() -> None:
    limits = TunnelLimits()
    assert (limits.max_frame, limits.stream_window, limits.connection_window) == (
        1024 * 1024,
        256 * 1024,
        8 * 1024 * 1024,
    )  # §4, §8
    assert (limits.heartbeat_interval, limits.handshake_timeout) == (5.0, 10.0)  # §9, §3
    edge = EdgeLogin(Connection(Role.EDGE), HOST, TunnelLimits(2048, 4096, 8192, 0.5))
    _, agent = machines()
    up_to_the_claim(edge, agent)
    edge.verdict(True)
    (ready,) = carry(edge.conn, agent.conn)
    assert isinstance(ready, Ready)
    assert (ready.max_frame, ready.stream_window, ready.connection_window) == (2048, 4096, 8192)
    assert ready.heartbeat_interval == 0.5
    assert len(edge.nonce) == 32 and len(ready.session_id) == 16  # random when not given
    assert agent.receive(ready) == ready
    assert agent.conn.max_send_frame == 2048  # what the edge accepts bounds what the agent sends


# ------------------------------------------------------------------ refusals, edge side


def test_a_refused_claim_is_auth_failed_with_the_one_message() -> None:
    edge, agent = machines()
    edge.start()
    carry(edge.conn, agent.conn)
    edge.receive(edge.conn.receive(AUTH))  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError) as caught:
        edge.verdict(False)
    assert (caught.value.code, str(caught.value)) == (ErrorCode.AUTH_FAILED, AUTH_FAILED_MESSAGE)
    assert edge.conn.data_to_send() == []  # READY never went
    edge.conn.fail(caught.value)
    assert edge.conn.data_to_send() == [AUTH_FAILED]
    assert edge.conn.state is State.CLOSED


def test_an_auth_in_a_version_the_edge_did_not_offer_is_unsupported_version() -> None:
    edge, _ = machines()
    edge.start()
    edge.conn.data_to_send()
    version_3 = edge.conn.receive(h("94 02 a3 6d 5f 31 03 c4 40" + " 22" * 64))
    assert version_3 is not None
    with pytest.raises(RemoteProtocolError) as caught:
        edge.receive(version_3)
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert str(caught.value) == "protocol version 3"


def test_a_frame_before_auth_is_refused_by_the_connection_itself() -> None:
    edge, _ = machines()
    edge.start()
    with pytest.raises(RemoteProtocolError, match="HELLO is not allowed in state challenged"):
        edge.conn.receive(HELLO_BYTES)


def test_the_agents_error_ends_the_login_as_closed_by_peer() -> None:
    edge, _ = machines()
    edge.start()
    assert edge.conn.data_to_send() == [CHALLENGE]
    frame = edge.conn.receive(encode(Error(0, "protocol_error", "no thanks", False)))
    assert frame is not None
    with pytest.raises(ClosedByPeer) as caught:
        edge.receive(frame)
    assert (caught.value.error_code, caught.value.error_message) == ("protocol_error", "no thanks")
    assert edge.conn.state is State.CLOSED
    edge.conn.fail(caught.value)  # nobody to answer: a no-op once closed
    assert edge.conn.data_to_send() == []


def test_calling_the_edge_machine_out_of_turn_is_a_local_error() -> None:
    edge, _ = machines()
    with pytest.raises(LocalProtocolError, match="at challenge, not verdict"):
        edge.verdict(True)
    edge.start()
    with pytest.raises(LocalProtocolError, match="at auth, not challenge"):
        edge.start()


# ------------------------------------------------------------------ refusals, agent side


def test_the_agent_signs_only_for_the_host_it_dialed() -> None:
    _, agent = machines()
    edge = EdgeLogin(Connection(Role.EDGE), "other.example", TunnelLimits(), nonce=NONCE)
    edge.start()
    (challenge,) = carry(edge.conn, agent.conn)
    assert challenge is not None
    with pytest.raises(RemoteProtocolError) as caught:
        agent.receive(challenge)
    assert str(caught.value) == (
        "edge says it is 'other.example', but this agent dialed 'edge.example'"
    )
    assert agent.conn.data_to_send() == []  # nothing signed, nothing sent


def test_the_host_is_compared_and_signed_in_lowercase() -> None:
    signed: list[bytes] = []

    def recording(message: bytes) -> bytes:
        signed.append(message)
        return b"\x22" * 64

    agent = AgentLogin(Connection(Role.AGENT), "Edge.EXAMPLE", "m_1", recording, HELLO)
    edge = EdgeLogin(Connection(Role.EDGE), "EDGE.example", TunnelLimits(), nonce=NONCE)
    edge.start()
    (challenge,) = carry(edge.conn, agent.conn)
    assert challenge is not None
    agent.receive(challenge)
    assert signed == [auth_message(NONCE, "edge.example", 2)]
    (auth,) = carry(agent.conn, edge.conn)
    assert auth is not None
    claim = edge.receive(auth)
    assert isinstance(claim, Claim) and claim.message == signed[0]  # both sign the same bytes


def test_no_common_version_is_unsupported_version() -> None:
    _, agent = machines()
    offering_7 = h("94 01 c4 20" + " 11" * 32 + " ac" + HOST.encode().hex() + "91 07")
    frame = agent.conn.receive(offering_7)
    assert frame is not None
    with pytest.raises(RemoteProtocolError) as caught:
        agent.receive(frame)
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION


def test_the_edges_refusal_reaches_the_agent_as_closed_by_peer() -> None:
    edge, agent = machines()
    up_to_the_claim(edge, agent)
    frame = agent.conn.receive(AUTH_FAILED)
    assert frame is not None
    with pytest.raises(ClosedByPeer) as caught:
        agent.receive(frame)
    assert caught.value.error_code == "auth_failed"
    assert caught.value.error_message == AUTH_FAILED_MESSAGE
    assert agent.conn.state is State.CLOSED


def test_calling_the_agent_machine_after_the_login_is_a_local_error() -> None:
    edge, agent = machines()
    up_to_the_claim(edge, agent)
    edge.verdict(True)
    (ready,) = carry(edge.conn, agent.conn)
    assert isinstance(ready, Ready) and agent.receive(ready) == ready
    with pytest.raises(LocalProtocolError, match="at done, not ready"):
        agent.receive(ready)
