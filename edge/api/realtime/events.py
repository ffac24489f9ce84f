"""The Realtime API's client events: decoded strictly (``edge.json_input``), checked, and made
into one typed event each. Nothing here does I/O.

Served: ``session.update``, ``conversation.item.create``, ``conversation.item.delete``,
``conversation.item.retrieve``, ``response.create`` and ``response.cancel``. Refused with
``audio_not_supported``: the audio buffers' events (``input_audio_buffer.*``,
``output_audio_buffer.clear``), ``conversation.item.truncate`` (it cuts audio) and
``transcription_session.update``. Anything else is ``unknown_event_type``; an event that is not
a JSON object with a ``type`` is ``invalid_json``; one over ``MAX_EVENT_BYTES`` is
``event_too_large``. Each refusal names the client's ``event_id``, and the session goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge import json_input
from edge.api.realtime.conversation import Item, parse_item
from edge.api.realtime.errors import EventError, audio_refused, invalid
from edge.api.realtime.settings import parse_changes

# An event larger than this is refused unread (``event_too_large``); the socket itself closes
# (1009) on a message past SOCKET_MAX_MESSAGE, which is not even read into memory whole.
MAX_EVENT_BYTES = 1024 * 1024
SOCKET_MAX_MESSAGE = 4 * MAX_EVENT_BYTES
MAX_METADATA = 16  # pairs, as on OpenAI: keys of at most 64 characters, values of 512
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

SERVED = (
    "session.update",
    "conversation.item.create",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)
AUDIO_EVENTS = {
    "input_audio_buffer.append": "input_audio_buffer.append sends audio",
    "input_audio_buffer.commit": "input_audio_buffer.commit commits audio",
    "input_audio_buffer.clear": "input_audio_buffer.clear clears audio",
    "output_audio_buffer.clear": "output_audio_buffer.clear clears audio",
    "conversation.item.truncate": "conversation.item.truncate cuts an item's audio",
    "transcription_session.update": "a transcription session transcribes audio",
}


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    event_id: str | None
    changes: dict[str, Any]  # ``Settings`` fields the client set


@dataclass(frozen=True, slots=True)
class ItemCreate:
    event_id: str | None
    item: Item
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ItemDelete:
    event_id: str | None
    item_id: str


@dataclass(frozen=True, slots=True)
class ItemRetrieve:
    event_id: str | None
    item_id: str


@dataclass(frozen=True, slots=True)
class Reference:
    """An ``item_reference`` in a response's ``input``: an item of the conversation, by id."""

    id: str


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    event_id: str | None
    changes: dict[str, Any]  # the session's settings this response overrides
    in_conversation: bool  # conversation "auto" (the default); False for "none"
    input: list[Item | Reference] | None  # the response's own context instead of the conversation
    metadata: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class ResponseCancel:
    event_id: str | None
    response_id: str | None


ClientEvent = (
    SessionUpdate | ItemCreate | ItemDelete | ItemRetrieve | ResponseCreate | ResponseCancel
)


def parse(raw: bytes) -> ClientEvent:
    """The client event in ``raw`` (one WebSocket message); ``EventError`` otherwise, naming the
    event's ``event_id`` when it had one."""
    body = decode(raw)
    event_id = body.get("event_id")
    try:
        return _typed(body["type"], body, event_id)
    except EventError as exc:
        exc.event_id = event_id
        raise


def decode(raw: bytes) -> dict[str, Any]:
    """``raw`` as an event: a JSON object with a string ``type`` (and ``event_id``, if any)."""
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(
            "event_too_large",
            f"an event may have at most {MAX_EVENT_BYTES:,} bytes; this one has {len(raw):,}",
        )
    try:
        body = json_input.loads(raw)
    except json_input.JsonInputError as exc:
        raise EventError("invalid_json", f"the event is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EventError("invalid_json", "an event must be a JSON object")
    event_id = body.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise invalid("event_id must be a string", "event_id")
    if not isinstance(body.get("type"), str):
        error = invalid("every event needs its type, a string", "type")
        error.event_id = event_id
        raise error
    return body


def _typed(kind: str, body: dict[str, Any], event_id: str | None) -> ClientEvent:
    if kind == "session.update":
        return SessionUpdate(event_id, parse_changes(body.get("session"), "session", session=True))
    if kind == "conversation.item.create":
        previous = _optional_id(body, "previous_item_id")
        return ItemCreate(event_id, parse_item(body.get("item"), "item"), previous)
    if kind == "conversation.item.delete":
        return ItemDelete(event_id, _item_id(body))
    if kind == "conversation.item.retrieve":
        return ItemRetrieve(event_id, _item_id(body))
    if kind == "response.create":
        return _response_create(body, event_id)
    if kind == "response.cancel":
        return ResponseCancel(event_id, _optional_id(body, "response_id"))
    if kind in AUDIO_EVENTS:
        raise audio_refused("type", AUDIO_EVENTS[kind])
    raise invalid(
        f"unknown event type {kind[:64]!r}; this server accepts " + ", ".join(SERVED),
        "type",
        code="unknown_event_type",
    )


def _item_id(body: dict[str, Any]) -> str:
    item_id = body.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise invalid("item_id must name an item", "item_id")
    return item_id


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise invalid(f"{name} must be a string", name)
    return value


def _response_create(body: dict[str, Any], event_id: str | None) -> ResponseCreate:
    raw = body.get("response")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise invalid("response must be an object", "response")
    changes = parse_changes(raw, "response", session=False)
    conversation = raw.get("conversation", "auto")
    if conversation not in ("auto", "none", None):
        raise invalid(
            "conversation must be auto or none: a session has one conversation",
            "response.conversation",
        )
    return ResponseCreate(
        event_id,
        changes,
        conversation != "none",
        _input(raw.get("input")),
        _metadata(raw.get("metadata")),
    )


def _input(raw: object) -> list[Item | Reference] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise invalid("input must be a list of items", "response.input")
    items: list[Item | Reference] = []
    for index, entry in enumerate(raw):
        where = f"response.input.{index}"
        if isinstance(entry, dict) and entry.get("type") == "item_reference":
            item_id = entry.get("id")
            if not isinstance(item_id, str) or not item_id:
                raise invalid("an item_reference needs the item's id", f"{where}.id")
            items.append(Reference(item_id))
        else:
            items.append(parse_item(entry, where))
    return items


def _metadata(raw: object) -> dict[str, str] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or len(raw) > MAX_METADATA
        or not all(
            isinstance(v, str) and len(k) <= MAX_METADATA_KEY and len(v) <= MAX_METADATA_VALUE
            for k, v in raw.items()
        )
    ):
        raise invalid(
            f"metadata is at most {MAX_METADATA} string pairs: keys of at most "
            f"{MAX_METADATA_KEY} characters, values of at most {MAX_METADATA_VALUE}",
            "response.metadata",
        )
    return dict(raw)
