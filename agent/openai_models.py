"""What an OpenAI-compatible runtime serves, as the tunnel describes models (PROTOCOL.md §2).

``GET /v1/models`` names the models and little else. The context length comes from what the
runtime adds where it adds it: vLLM's and SGLang's ``max_model_len``, LM Studio's
``loaded_context_length`` (or ``max_context_length``), llama.cpp's ``meta.n_ctx`` (or its
``/props``, for a server of one model), a ``context_length``. llama.cpp's trained context
(``n_ctx_train``) is not used: the server usually runs with far less, and a context it does not
have would be a wrong promise.

The OpenAI API says nothing of capabilities. They come, in this order:

1. from the agent's configuration for that model (``--capabilities MODEL=…``), which replaces
   everything else: the operator knows the model;
2. from what the runtime reports: LM Studio's ``type`` (``llm``, ``vlm``, ``embeddings``) and
   ``capabilities`` (``tool_use``) in ``/api/v0/models``; llama.cpp's ``capabilities``
   (``multimodal`` is ``vision``) and ``/props`` ``modalities``;
3. by default ``completion`` and ``tools``, or ``embedding`` alone for a model whose name says
   it embeds (``nomic-embed-text``, ``text-embedding-3-small``). ``tools`` is on because every
   such runtime takes OpenAI's ``tools`` and refuses them itself, with its own message, when it
   cannot parse calls for a model (vLLM without ``--enable-auto-tool-choice``, llama.cpp
   without ``--jinja``); ``vision``, ``thinking`` and ``insert`` are off because a runtime may
   drop what it does not understand silently (a template that renders no image, a suffix
   ignored), so they are claimed only where reported or configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from protocol.machine import MAX_CONTEXT_LENGTH

CAPABILITIES = frozenset({"completion", "tools", "thinking", "vision", "embedding", "insert"})
DEFAULT_CHAT = ("completion", "tools")
DEFAULT_EMBEDDING = ("embedding",)


@dataclass
class Listing:
    """What the runtime said about its models: from ``/v1/models`` and its extras."""

    ids: list[str] = field(default_factory=list)
    context: dict[str, int] = field(default_factory=dict)
    reported: dict[str, set[str]] = field(default_factory=dict)  # capabilities it reported
    llama_cpp: bool = False  # a llama.cpp server: its /props says more of its one model


def parse_models(body: bytes) -> Listing:
    """``/v1/models``; ``ValueError`` when it is not an OpenAI model list."""
    data = json.loads(body)
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not an OpenAI model list (no `data` list)")
    listing = Listing()
    for entry in entries:
        name = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or name in listing.ids:
            continue
        listing.ids.append(name)
        meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
        listing.llama_cpp = listing.llama_cpp or bool(meta) or entry.get("owned_by") == "llamacpp"
        for value in (
            entry.get("max_model_len"),
            entry.get("loaded_context_length"),
            meta.get("n_ctx"),
            entry.get("context_length"),
        ):
            if (context := _context(value)) is not None:
                listing.context[name] = context
                break
    # llama.cpp also lists its models Ollama's way, with capabilities.
    others = data.get("models")
    for entry in others if isinstance(others, list) else ():
        if not isinstance(entry, dict):
            continue
        name, reported = entry.get("model") or entry.get("name"), entry.get("capabilities")
        if name in listing.ids and isinstance(reported, list):
            listing.reported[name] = _llama_cpp_capabilities(reported)
    return listing


def add_props(listing: Listing, body: bytes) -> None:
    """llama.cpp's ``/props``: the context its one model runs with, whether it sees images."""
    props = json.loads(body)
    if not isinstance(props, dict) or len(listing.ids) != 1:
        return
    (name,) = listing.ids
    settings = props.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if name not in listing.context and (context := _context(n_ctx)) is not None:
        listing.context[name] = context
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and modalities.get("vision") is True:
        listing.reported.setdefault(name, {"completion"}).add("vision")


def add_lm_studio(listing: Listing, body: bytes) -> None:
    """LM Studio's ``/api/v0/models``: each model's type, capabilities and context."""
    data = json.loads(body)
    entries = data.get("data") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        name = entry.get("id") if isinstance(entry, dict) else None
        if name not in listing.ids:
            continue
        kind = entry.get("type")
        if kind in ("embeddings", "embedding"):
            listing.reported[name] = {"embedding"}
        elif kind in ("llm", "vlm"):
            reported = {"completion", "vision"} if kind == "vlm" else {"completion"}
            extra = entry.get("capabilities")
            if isinstance(extra, list):  # reported: whether it does tools is known
                reported |= {"tools"} if "tool_use" in extra else set()
            else:
                reported |= {"tools"}  # not reported: the default stands
            listing.reported[name] = reported
        for value in (entry.get("loaded_context_length"), entry.get("max_context_length")):
            if name not in listing.context and (context := _context(value)) is not None:
                listing.context[name] = context


def describe(listing: Listing, configured: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """The tunnel's model maps, capabilities chosen as the module docstring says."""
    models = []
    for name in listing.ids:
        capabilities = configured.get(name)
        if capabilities is None:
            reported = listing.reported.get(name)
            capabilities = tuple(sorted(reported)) if reported else default_capabilities(name)
        model: dict[str, Any] = {"name": name, "capabilities": list(capabilities)}
        if name in listing.context:
            model["context_length"] = listing.context[name]
        models.append(model)
    return sorted(models, key=lambda m: str(m["name"]))


def default_capabilities(name: str) -> tuple[str, ...]:
    return DEFAULT_EMBEDDING if "embed" in name.lower() else DEFAULT_CHAT


def _llama_cpp_capabilities(reported: list[Any]) -> set[str]:
    names = {str(c) for c in reported}
    out = {"vision" if c == "multimodal" else c for c in names} & CAPABILITIES
    if "completion" in out and "tools" not in names:
        out.add("tools")  # llama.cpp does not say; the default stands
    return out


def _context(value: Any) -> int | None:
    return value if type(value) is int and 0 < value <= MAX_CONTEXT_LENGTH else None
