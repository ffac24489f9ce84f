"""A Realtime session's conversation: the items the client created and the assistant's replies,
in order, held in memory for the session only (no content at rest: it is gone when the socket
closes) and bounded. Nothing here does I/O.

Items are kept as the server shows them (``conversation.item.added`` / ``retrieved``): messages
with ``input_text``/``input_image`` (user), ``input_text`` (system) or ``output_text``
(assistant) parts, ``function_call`` and ``function_call_output`` items. Audio parts are refused,
never dropped: the client learns which part, and why.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from edge import json_input
from edge.api.realtime.errors import EventError, audio_refused, invalid

# A conversation holds at most this many items, and about this many bytes of them (their JSON,
# text as UTF-8; a reply counts as it grows). Past either, the client gets ``conversation_full``.
MAX_ITEMS = 1_000
MAX_BYTES = 4 * 1024 * 1024
MAX_ITEM_ID = 64
ROOT = "root"  # previous_item_id that puts an item first

Item = dict[str, Any]


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def item_size(item: Item) -> int:
    return len(json.dumps(item, ensure_ascii=False).encode())


class Conversation:
    """Items in order, by id; ``MAX_ITEMS`` and ``MAX_BYTES`` at most."""

    def __init__(self, max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.items: list[Item] = []
        self.bytes = 0
        self._sizes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> Item | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Put ``item`` after ``previous_item_id`` (at the end when ``None``, first when
        ``"root"``); returns the id of the item before it now, if any."""
        if item["id"] in self._sizes:
            raise invalid(
                f"an item with id {item['id']!r} is already in the conversation",
                "item.id",
                code="item_id_exists",
            )
        size = item_size(item)
        self._ensure_room(1, size)
        if previous_item_id is None:
            index = len(self.items)
        elif previous_item_id == ROOT:
            index = 0
        else:
            index = self._index(previous_item_id, "previous_item_id") + 1
        self.items.insert(index, item)
        self._sizes[item["id"]] = size
        self.bytes += size
        return self.items[index - 1]["id"] if index else None

    def delete(self, item_id: str) -> None:
        del self.items[self._index(item_id, "item_id")]
        self.bytes -= self._sizes.pop(item_id)

    def grow(self, item_id: str, size: int) -> None:
        """An item of the assistant's reply grew by ``size`` bytes of text."""
        if item_id not in self._sizes:
            return  # deleted while the reply was being written: no longer held here
        self._ensure_room(0, size)
        self._sizes[item_id] += size
        self.bytes += size

    def _ensure_room(self, items: int, size: int) -> None:
        if len(self.items) + items > self.max_items or self.bytes + size > self.max_bytes:
            raise EventError(
                "conversation_full",
                f"a conversation holds at most {self.max_items:,} items and "
                f"{self.max_bytes:,} bytes; delete items (conversation.item.delete) or start a "
                "new session",
            )

    def _index(self, item_id: str, param: str) -> int:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        raise invalid(f"no item with id {item_id!r} in the conversation", param, "item_not_found")


# ---------------------------------------------------------------------- items from clients


def parse_item(raw: object, where: str) -> Item:
    """A client's item (``conversation.item.create``, or ``response.create``'s ``input``) as the
    server shows it; ``EventError`` naming the field otherwise (audio: ``audio_not_supported``)."""
    if not isinstance(raw, dict):
        raise invalid("an item must be an object", where)
    item_id = raw.get("id")
    if item_id is None:
        item_id = new_id("item_")
    elif not isinstance(item_id, str) or not 0 < len(item_id) <= MAX_ITEM_ID:
        raise invalid(f"an item id is a string of 1 to {MAX_ITEM_ID} characters", f"{where}.id")
    kind = raw.get("type", "message")
    head: Item = {"id": item_id, "object": "realtime.item", "type": kind, "status": "completed"}
    if kind == "message":
        role = raw.get("role")
        if role not in ("user", "system", "assistant"):
            raise invalid("role must be user, system or assistant", f"{where}.role")
        return {**head, "role": role, "content": _parts(raw.get("content"), role, where)}
    if kind == "function_call":
        return {**head, **_function_call(raw, where)}
    if kind == "function_call_output":
        call_id, output = raw.get("call_id"), raw.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise invalid("a function_call_output needs its call_id", f"{where}.call_id")
        if not isinstance(output, str):
            raise invalid("output must be a string", f"{where}.output")
        return {**head, "call_id": call_id, "output": output}
    raise invalid(
        f"items of type {kind!r} are not supported: message, function_call and "
        "function_call_output are",
        f"{where}.type",
    )


_TEXT_PARTS = {
    "user": ("input_text", "text"),
    "system": ("input_text", "text"),
    "assistant": ("output_text", "text"),
}
_AUDIO_PARTS = ("input_audio", "output_audio", "audio")


def _parts(content: object, role: str, where: str) -> list[dict[str, Any]]:
    text_type = _TEXT_PARTS[role][0]
    if isinstance(content, str):
        return [{"type": text_type, "text": content}]
    if not isinstance(content, list):
        raise invalid("content must be a list of parts", f"{where}.content")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}.content.{index}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _AUDIO_PARTS:
            raise audio_refused(at, f"an {kind} content part")
        if kind in _TEXT_PARTS[role] and isinstance(part, dict):
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid("a text part needs its text", f"{at}.text")
            parts.append({"type": text_type, "text": text})
        elif kind == "input_image" and role == "user" and isinstance(part, dict):
            parts.append(_image(part, at))
        else:
            raise invalid(f"unsupported content part type {kind!r} in a {role} message", at)
    return parts


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise invalid(
            "only base64 `data:` image URLs are supported; remote image URLs are not fetched",
            f"{where}.image_url",
        )
    image = {"type": "input_image", "image_url": url}
    if part.get("detail") in ("auto", "low", "high"):
        image["detail"] = part["detail"]
    return image


def _function_call(raw: dict[str, Any], where: str) -> Item:
    call_id = raw.get("call_id") or new_id("call_")
    name, arguments = raw.get("name"), raw.get("arguments", "{}")
    if not isinstance(call_id, str):
        raise invalid("call_id must be a string", f"{where}.call_id")
    if not isinstance(name, str) or not name:
        raise invalid("a function_call needs the function's name", f"{where}.name")
    try:
        parsed = json_input.loads(arguments) if isinstance(arguments, str) else None
    except json_input.JsonInputError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid(
            "function_call arguments must be a JSON object encoded as a string",
            f"{where}.arguments",
        )
    return {"call_id": call_id, "name": name, "arguments": arguments}
