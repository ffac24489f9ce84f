"""The login (PROTOCOL.md §3) as two sans-I/O state machines, one for each end of a ``Connection``.

    edge (EdgeLogin)                                      agent (AgentLogin)
    start()                ───────── CHALLENGE ───────►   receive(): checks the host it dialed,
                                                          picks the version, signs, sends AUTH
    receive(AUTH) → Claim  ◄──────── AUTH ─────────────
    the caller verifies the Claim's signature with its own keys, then answers:
    verdict(True)          ───────── READY ───────────►   receive(): sends HELLO → Ready
    receive(HELLO) → Hello ◄──────── HELLO ────────────

Neither machine touches a socket, a clock or a key. The edge hands the caller a ``Claim`` (machine
id, the exact message that must have been signed, the signature) because looking the machine up
is the caller's business, and may be slow; the agent signs with a callable it is given. What is
signed is ``handshake.auth_message``. Frames go out through the ``Connection``, which checks
them like any other; the I/O layer flushes ``data_to_send()`` between steps.

Calling a machine out of turn is a ``LocalProtocolError``. Every refusal raises: a
``RemoteProtocolError`` for a frame that does not belong (its ``code`` is
``unsupported_version`` or ``auth_failed`` where §3 says so), ``ClosedByPeer`` when the peer
ended the login with ERROR on stream 0. The I/O layer answers the first with
``Connection.fail(error)`` and closes; the whole login is bounded in time by the I/O layer
(``TunnelLimits.handshake_timeout``, 10 s at the edge).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from protocol.codec import DEFAULT_MAX_FRAME
from protocol.errors import (
    ClosedByPeer,
    ErrorCode,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from protocol.frames import NO_STREAM, Auth, Challenge, Error, Frame, Hello, Ready
from protocol.handshake import NONCE_SIZE, SUPPORTED_VERSIONS, auth_message, choose_version
from protocol.mux import Connection

# The one answer to a failed login, whatever failed (§3): it must not tell which ids exist.
AUTH_FAILED_MESSAGE = "unknown machine, revoked machine or bad signature"


@dataclass(frozen=True, slots=True)
class TunnelLimits:
    """What an edge imposes on every agent connection: sent in READY (§4, §8, §9), and the time
    the whole login may take (§3). The defaults are the protocol's."""

    max_frame: int = DEFAULT_MAX_FRAME
    stream_window: int = 256 * 1024
    connection_window: int = 8 * 1024 * 1024
    heartbeat_interval: float = 5.0
    handshake_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Claim:
    """An agent's AUTH, for the edge to check: ``signature`` must verify over ``message`` with
    the public key registered for ``machine_id`` (§3)."""

    machine_id: str
    message: bytes
    signature: bytes


class Step(Enum):
    CHALLENGE = "challenge"  # edge: nothing sent yet; agent: waiting for CHALLENGE
    AUTH = "auth"  # edge: waiting for AUTH
    VERDICT = "verdict"  # edge: waiting for the caller to check the claim
    READY = "ready"  # agent: waiting for READY
    HELLO = "hello"  # edge: waiting for HELLO
    DONE = "done"


def _unexpected(frame: Frame, expected: str) -> ProtocolError:
    """What to raise for ``frame`` where ``expected`` belonged: the peer's own ERROR on stream 0
    ends the login as the peer's decision, anything else is a protocol error."""
    if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
        return ClosedByPeer(frame.code, frame.message)
    return RemoteProtocolError(f"expected {expected}, got {frame.TYPE.name}")


class EdgeLogin:
    """The edge's half of §3 on ``conn`` (a fresh ``Role.EDGE`` connection).

    ``edge_host`` is the Host the agent connected to; ``nonce`` and ``session_id`` are random
    unless given (tests pin them)."""

    def __init__(
        self,
        conn: Connection,
        edge_host: str,
        limits: TunnelLimits,
        *,
        nonce: bytes | None = None,
        session_id: str | None = None,
    ) -> None:
        self.conn = conn
        self.edge_host = edge_host
        self.nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
        self.step = Step.CHALLENGE
        self._ready = Ready(
            secrets.token_hex(8) if session_id is None else session_id,
            limits.max_frame,
            limits.stream_window,
            limits.connection_window,
            limits.heartbeat_interval,
        )
        self._version = 0

    def start(self) -> None:
        """Queue CHALLENGE: the nonce, the host, the versions this side speaks."""
        self._expect(Step.CHALLENGE)
        self.conn.send(Challenge(self.nonce, self.edge_host, list(SUPPORTED_VERSIONS)))
        self.step = Step.AUTH

    def receive(self, frame: Frame) -> Claim | Hello:
        """The agent's next frame: AUTH gives the ``Claim`` to verify, HELLO ends the login."""
        if self.step is Step.AUTH:
            if not isinstance(frame, Auth):
                raise _unexpected(frame, "AUTH")
            if frame.version not in SUPPORTED_VERSIONS:
                raise RemoteProtocolError(
                    f"protocol version {frame.version}", code=ErrorCode.UNSUPPORTED_VERSION
                )
            self._version = frame.version
            self.step = Step.VERDICT
            message = auth_message(self.nonce, self.edge_host, frame.version)
            return Claim(frame.machine_id, message, frame.signature)
        self._expect(Step.HELLO)
        if not isinstance(frame, Hello):
            raise _unexpected(frame, "HELLO")
        self.step = Step.DONE
        return frame

    def verdict(self, accepted: bool) -> None:
        """The caller checked the claim: READY if ``accepted``, else ``RemoteProtocolError``
        ``auth_failed`` with the one message for every failure (§3)."""
        self._expect(Step.VERDICT)
        if not accepted:
            raise RemoteProtocolError(AUTH_FAILED_MESSAGE, code=ErrorCode.AUTH_FAILED)
        self.conn.send(self._ready)
        self.step = Step.HELLO

    def _expect(self, step: Step) -> None:
        if self.step is not step:
            raise LocalProtocolError(f"the login is at {self.step.value}, not {step.value}")


class AgentLogin:
    """The agent's half of §3 on ``conn`` (a fresh ``Role.AGENT`` connection).

    ``dialed_host`` is the host (and port, if not the scheme's) the agent connected to, as a
    Host header carries it; ``sign`` makes the Ed25519 signature of a message; ``hello`` is sent
    as the first frame after READY."""

    def __init__(
        self,
        conn: Connection,
        dialed_host: str,
        machine_id: str,
        sign: Callable[[bytes], bytes],
        hello: Hello,
    ) -> None:
        self.conn = conn
        self.dialed_host = dialed_host.lower()
        self.machine_id = machine_id
        self.step = Step.CHALLENGE
        self._sign = sign
        self._hello = hello

    def receive(self, frame: Frame) -> Ready | None:
        """The edge's next frame: CHALLENGE is answered with AUTH (``None``: not done yet),
        READY with HELLO, and returned: the login is over."""
        if self.step is Step.CHALLENGE:
            if not isinstance(frame, Challenge):
                raise _unexpected(frame, "CHALLENGE")
            self._answer(frame)
            self.step = Step.READY
            return None
        if self.step is not Step.READY:
            raise LocalProtocolError(f"the login is at {self.step.value}, not ready")
        if not isinstance(frame, Ready):
            raise _unexpected(frame, "READY")
        self.conn.send(self._hello)
        self.step = Step.DONE
        return frame

    def _answer(self, challenge: Challenge) -> None:
        if challenge.edge_host.lower() != self.dialed_host:
            # Signing whatever host the peer names would let one edge log in to another with us.
            raise RemoteProtocolError(
                f"edge says it is {challenge.edge_host!r}, but this agent dialed"
                f" {self.dialed_host!r}"
            )
        version = choose_version(challenge.versions)
        signature = self._sign(auth_message(challenge.nonce, self.dialed_host, version))
        self.conn.send(Auth(self.machine_id, version, signature))
