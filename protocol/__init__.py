"""llmtunnel's tunnel protocol: frames, codec, windows and the connection state machine.

Sans-I/O: nothing here touches a socket or an event loop, so edge and agent share it unchanged and
its tests run synchronously. The specification is ``docs/PROTOCOL.md``; comments cite its sections.
The one asyncio adapter both ends run it in is ``llmtunnel.tunnel``, outside this package, which
imports no asyncio at all.
"""

from protocol.codec import DEFAULT_MAX_FRAME, decode, encode
from protocol.errors import (
    ClosedByPeer,
    ErrorCode,
    FlowControlError,
    FrameTooLarge,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StreamClosed,
)
from protocol.frames import (
    NO_STREAM,
    Auth,
    Cancel,
    Challenge,
    Delta,
    Embeddings,
    End,
    Error,
    Frame,
    FrameType,
    GoAway,
    Health,
    Hello,
    Models,
    Nodes,
    Open,
    Ping,
    Pong,
    Ready,
    StreamFrame,
    Window,
)
from protocol.handshake import SUPPORTED_VERSIONS, auth_message, choose_version
from protocol.login import AgentLogin, Claim, EdgeLogin, TunnelLimits
from protocol.mux import Connection, Role, State, connection_error

__all__ = [
    "DEFAULT_MAX_FRAME",
    "NO_STREAM",
    "SUPPORTED_VERSIONS",
    "AgentLogin",
    "Auth",
    "Cancel",
    "Challenge",
    "Claim",
    "ClosedByPeer",
    "Connection",
    "Delta",
    "EdgeLogin",
    "Embeddings",
    "End",
    "Error",
    "ErrorCode",
    "FlowControlError",
    "Frame",
    "FrameTooLarge",
    "FrameType",
    "GoAway",
    "Health",
    "Hello",
    "LocalProtocolError",
    "Models",
    "Nodes",
    "Open",
    "Ping",
    "Pong",
    "ProtocolError",
    "Ready",
    "RemoteProtocolError",
    "Role",
    "State",
    "StreamClosed",
    "StreamFrame",
    "TunnelLimits",
    "Window",
    "auth_message",
    "choose_version",
    "connection_error",
    "decode",
    "encode",
]
