"""``item_reference`` input items (``{"type": "item_reference", "id": …}``): an item of an
earlier response, named instead of sent again. Vercel's AI SDK sends one for every reasoning
item (and, when it believes responses are stored, for earlier messages) of the steps before.

A reference is resolved, in this order, to:

1. an item with that id sent in full in the same request (or in the conversation
   ``previous_response_id`` continues); it is already in the conversation where it was sent,
   so the reference adds nothing;
2. when the tenant stores responses, the output item with that id of a stored response of this
   tenant (an output item's id names its response: ``render.response_of``);
3. nothing: a reference to a reasoning item (``rs_…``) is skipped, since Ollama takes no past
   thinking anyway; any other is a 400 naming the id, and saying what would make it work.

The only I/O is ``load``, the store's lookup of one stored response, handed in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edge.api.responses.render import output_to_items, response_of
from edge.errors import bad_request

Load = Callable[[str], Awaitable[dict[str, Any] | None]]  # a stored response of this tenant

REASONING_PREFIX = "rs_"


async def resolve_references(
    items: list[dict[str, Any]], earlier: list[dict[str, Any]], storing: bool, load: Load
) -> list[dict[str, Any]]:
    """``items`` (a request's input) with each ``item_reference`` replaced by the item it names,
    or left out; ``earlier`` is the stored conversation the request continues, if any."""
    if not any(_is_reference(item) for item in items):
        return items
    sent = {
        item["id"]: item
        for item in [*earlier, *items]
        if isinstance(item, dict) and not _is_reference(item) and isinstance(item.get("id"), str)
    }
    loaded: dict[str, dict[str, Any] | None] = {}
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not _is_reference(item):
            out.append(item)
            continue
        item_id = item.get("id")
        where = f"input.{index}"
        if not isinstance(item_id, str) or not item_id:
            raise bad_request("an item_reference needs the id of an item", param=f"{where}.id")
        if item_id in sent:
            continue
        found = await _stored_item(item_id, loaded, load) if storing else None
        if found is not None:
            out.append(found)
        elif not item_id.startswith(REASONING_PREFIX):
            raise bad_request(_unresolved(item_id, storing), param=where)
    return out


def _is_reference(item: object) -> bool:
    return isinstance(item, dict) and item.get("type") == "item_reference"


async def _stored_item(
    item_id: str, loaded: dict[str, dict[str, Any] | None], load: Load
) -> dict[str, Any] | None:
    response_id = response_of(item_id)
    if response_id is None:
        return None
    if response_id not in loaded:
        loaded[response_id] = await load(response_id)
    response = loaded[response_id]
    if response is None:
        return None
    return next((i for i in output_to_items(response) if i.get("id") == item_id), None)


def _unresolved(item_id: str, storing: bool) -> str:
    if storing:
        return (
            f"item_reference {item_id!r} names no item of this request or of a stored response "
            "of this tenant: send the item in full instead"
        )
    return (
        f"item_reference {item_id!r} cannot be resolved: response storage is off for this "
        "tenant, so earlier items must be sent in full (Vercel's AI SDK does with "
        "`providerOptions: {openai: {store: false}}`), or an admin can turn storage on with "
        "`llmtunnel admin tenant update SLUG --store-responses`"
    )
