"""Exceptions of the tunnel protocol (docs/PROTOCOL.md §6).

    ProtocolError               root; ``code`` is the ERROR code that goes on the wire
    ├── LocalProtocolError      this side asked for something the protocol forbids (a caller bug)
    │   └── StreamClosed        sending on a stream that has ended or was cancelled
    ├── RemoteProtocolError     the peer broke the protocol: answer ERROR(0) and close
    │   ├── FrameTooLarge       a frame over the negotiated size limit
    │   └── FlowControlError    the peer sent more than the credit it was given
    └── ClosedByPeer            the peer ended the connection with ERROR on stream 0 (its code)

Nothing else leaves ``protocol/``: the decoder turns every malformed input into one of these.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Codes of ERROR frames: connection codes close the tunnel, stream codes end one stream."""

    # Connection level (stream id 0).
    PROTOCOL_ERROR = "protocol_error"
    FRAME_TOO_LARGE = "frame_too_large"
    FLOW_CONTROL = "flow_control_error"
    UNSUPPORTED_VERSION = "unsupported_version"
    AUTH_FAILED = "auth_failed"
    MACHINE_REVOKED = "machine_revoked"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    # Stream level.
    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    MODEL_NOT_FOUND = "model_not_found"
    UNSUPPORTED = "unsupported"
    BUSY = "busy"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BACKEND_ERROR = "backend_error"
    BACKEND_TIMEOUT = "backend_timeout"
    DRAINING = "draining"
    INTERNAL = "internal_error"


class ProtocolError(Exception):
    """Root of every exception raised by ``protocol``. ``code`` is the class's unless one is
    given (an ``unsupported_version`` or ``auth_failed`` is a protocol error with its own code)."""

    code: ErrorCode = ErrorCode.PROTOCOL_ERROR

    def __init__(self, message: str = "", *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class LocalProtocolError(ProtocolError):
    """This side tried to send a frame the protocol does not allow in the current state."""


class StreamClosed(LocalProtocolError):
    """The stream has ended or was cancelled; nothing more may be sent on it."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed, unknown or out of state."""


class FrameTooLarge(RemoteProtocolError):
    code = ErrorCode.FRAME_TOO_LARGE


class FlowControlError(RemoteProtocolError):
    code = ErrorCode.FLOW_CONTROL


class ClosedByPeer(ProtocolError):
    """The peer closed the connection with ERROR on stream 0 (§6): ``error_code`` and
    ``error_message`` are what it sent. Nothing more may be sent; there is nobody to answer."""

    def __init__(self, error_code: str, error_message: str) -> None:
        super().__init__(f"{error_code}: {error_message}")
        self.error_code = error_code
        self.error_message = error_message
