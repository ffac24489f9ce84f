"""The Realtime API's errors: what an ``error`` event carries (``render.error_event``).

An ``EventError`` is raised wherever a client event cannot be served as sent; the socket turns it
into an ``error`` event and goes on reading, so one bad event never ends the session."""

from __future__ import annotations

from edge.errors import ApiError

INVALID = "invalid_request_error"
AUDIO_NOT_SUPPORTED = "audio_not_supported"
AUDIO_MESSAGE = (
    "this server serves the Realtime API's text modality only: send text "
    '(`input_text` items, `output_modalities: ["text"]`); audio input and output are not supported'
)


class EventError(Exception):
    """A client event refused: ``code`` a client can act on, a human ``message``, the field at
    fault (``param``) and the ``event_id`` of the client event, when it had one."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        kind: str = INVALID,  # the error's ``type`` in the event
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id
        self.type = kind

    @classmethod
    def from_api(cls, error: ApiError, event_id: str | None = None) -> EventError:
        """The pipeline's ``ApiError`` (401, 403, 429, 503, a backend failure…) as an event
        error, its code and type as the HTTP dialects would have sent them."""
        return cls(error.code, error.message, param=error.param, event_id=event_id, kind=error.type)


def invalid(message: str, param: str | None = None, code: str = "invalid_request") -> EventError:
    return EventError(code, message, param=param)


def audio_refused(param: str, what: str) -> EventError:
    """The one answer to anything audio: ``what`` was sent, at ``param``."""
    return EventError(AUDIO_NOT_SUPPORTED, f"{what}: {AUDIO_MESSAGE}", param=param)
