"""What an agent says about its machine's models (PROTOCOL.md §5), checked on arrival.

A model list is kept in the edge's memory for as long as the machine is online and walked on every
routing decision, so each entry is bounded and holds nothing but the fields below.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import RemoteProtocolError

MAX_MODELS = 1024
MAX_MODEL_NAME = 256
MAX_CAPABILITIES = 32
MAX_CAPABILITY = 32
MAX_MODEL_DETAIL = 64  # family, parameter_size, quantization
MAX_CONTEXT_LENGTH = 2**31 - 1


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RemoteProtocolError(message)


_MODEL_DETAILS = ("family", "parameter_size", "quantization")
_MODEL_KEYS = frozenset({"name", "capabilities", "context_length", *_MODEL_DETAILS})


def check_model(model: object) -> None:
    """One entry of a model list (§5): ``name`` and ``capabilities``, optionally
    ``context_length`` and the short ``family``, ``parameter_size`` and ``quantization``; nothing
    else, so no value of unchecked type (a msgpack ``bin``, say) reaches the edge's JSON."""
    if not (
        isinstance(model, dict)
        and isinstance(name := model.get("name"), str)
        and isinstance(capabilities := model.get("capabilities"), list)
        and all(isinstance(c, str) for c in capabilities)
    ):
        raise RemoteProtocolError(
            "each model must be a map with a string name and a list of capabilities"
        )
    _require(0 < len(name) <= MAX_MODEL_NAME, f"a model name must be 1 to {MAX_MODEL_NAME} chars")
    _require(
        len(capabilities) <= MAX_CAPABILITIES
        and all(len(c) <= MAX_CAPABILITY for c in capabilities),
        f"model {name!r}: at most {MAX_CAPABILITIES} capabilities of {MAX_CAPABILITY} chars",
    )
    unknown = sorted(str(key) for key in model if key not in _MODEL_KEYS)
    _require(not unknown, f"model {name!r} has unknown fields {unknown}")
    context = model.get("context_length")
    _require(
        context is None or (type(context) is int and 0 <= context <= MAX_CONTEXT_LENGTH),
        f"model {name!r}: context_length must be an integer from 0 to {MAX_CONTEXT_LENGTH}",
    )
    for detail in _MODEL_DETAILS:
        value = model.get(detail)
        _require(
            value is None or (isinstance(value, str) and len(value) <= MAX_MODEL_DETAIL),
            f"model {name!r}: {detail} must be a string of at most {MAX_MODEL_DETAIL} chars",
        )


def check_models(models: list[Any]) -> None:
    _require(len(models) <= MAX_MODELS, f"{len(models)} models, more than {MAX_MODELS}")
    for model in models:
        check_model(model)
