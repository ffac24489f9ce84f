"""Ending a connection from this side: ``Connection.fail(error)`` for a failure, ``close(code,
message)`` on purpose; both queue ERROR on stream 0 and enter CLOSED (PROTOCOL.md §4, §6)."""

from __future__ import annotations

import pytest

from protocol import (
    Connection,
    Error,
    ErrorCode,
    FlowControlError,
    FrameTooLarge,
    GoAway,
    LocalProtocolError,
    Ping,
    ProtocolError,
    RemoteProtocolError,
    Role,
    State,
    decode,
)
from protocol.codec import decode_many
from tests.protocol.test_login import logged_in


def test_fail_sends_the_errors_code_and_message_and_closes() -> None:
    edge, agent = logged_in()
    edge.fail(RemoteProtocolError("bad frame"))
    assert edge.state is State.CLOSED
    (data,) = edge.data_to_send()
    assert data == bytes.fromhex("95 09 00 ae") + b"protocol_error" + b"\xa9bad frame\xc2"
    assert agent.receive(data) == Error(0, "protocol_error", "bad frame", False)
    assert agent.state is State.CLOSED


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (FrameTooLarge("frame of 2 bytes exceeds limit 1"), "frame_too_large"),
        (FlowControlError("too much"), "flow_control_error"),
        (RemoteProtocolError("no", code=ErrorCode.AUTH_FAILED), "auth_failed"),
        (LocalProtocolError("a bug of ours"), "protocol_error"),
    ],
)
def test_fail_uses_each_errors_own_code(error: ProtocolError, code: str) -> None:
    edge, _ = logged_in()
    edge.fail(error)
    (data,) = edge.data_to_send()
    assert decode(data) == Error(0, code, str(error), False)


def test_a_long_message_is_cut_to_fit_any_frame() -> None:
    edge, _ = logged_in()
    edge.fail(RemoteProtocolError("x" * 5000))
    (data,) = edge.data_to_send()
    frame = decode(data)
    assert isinstance(frame, Error) and frame.message == "x" * 1000


@pytest.mark.parametrize("role", [Role.EDGE, Role.AGENT])
def test_close_works_in_any_state_before_closed(role: Role) -> None:
    fresh = Connection(role)
    fresh.close(ErrorCode.PROTOCOL_ERROR, "login timed out")  # START: before any frame
    assert fresh.state is State.CLOSED
    edge, agent = logged_in()
    conn = edge if role is Role.EDGE else agent
    conn.send(GoAway("bye"))  # DRAINING
    conn.close(ErrorCode.HEARTBEAT_TIMEOUT, "no frame for 15 s")
    frames = [f for data in conn.data_to_send() for f in decode_many(data, len(data))]
    assert frames[-1] == Error(0, "heartbeat_timeout", "no frame for 15 s", False)
    assert conn.state is State.CLOSED


def test_once_closed_fail_and_close_do_nothing_and_nothing_more_is_sent() -> None:
    edge, agent = logged_in()
    agent.close(ErrorCode.DRAINING, "the agent is going")
    edge.receive(agent.data_to_send()[0])  # the peer's ERROR closed it
    assert edge.state is State.CLOSED
    edge.fail(RemoteProtocolError("too late"))
    edge.close(ErrorCode.MACHINE_REVOKED, "too late")
    assert edge.data_to_send() == []
    with pytest.raises(LocalProtocolError, match="after the connection closed"):
        edge.send(Ping(1))
