"""Each runtime's model list as the tunnel describes models (agent/openai_models.py): contexts
from where each runtime puts them, capabilities configured, reported or by default."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.openai_models import add_lm_studio, add_props, describe, parse_models


def _raw(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_vllm_and_sglang_give_max_model_len() -> None:
    listing = parse_models(
        _raw(
            {
                "object": "list",
                "data": [
                    {"id": "Qwen/Qwen3-8B", "owned_by": "vllm", "max_model_len": 40960},
                    {"id": "my-lora", "owned_by": "vllm", "root": "Qwen/Qwen3-8B"},
                    {"id": "BAAI/bge-m3-embedding", "max_model_len": 8192},
                ],
            }
        )
    )
    assert describe(listing, {}) == [
        {"name": "BAAI/bge-m3-embedding", "capabilities": ["embedding"], "context_length": 8192},
        {"name": "Qwen/Qwen3-8B", "capabilities": ["completion", "tools"], "context_length": 40960},
        {"name": "my-lora", "capabilities": ["completion", "tools"]},
    ]


def test_llama_cpp_reports_capabilities_and_its_props_the_context_it_runs_with() -> None:
    listing = parse_models(
        _raw(
            {
                "models": [
                    {
                        "name": "gemma",
                        "model": "gemma",
                        "capabilities": ["completion", "multimodal"],
                    }
                ],
                "object": "list",
                "data": [{"id": "gemma", "owned_by": "llamacpp", "meta": {"n_ctx_train": 131072}}],
            }
        )
    )
    assert listing.llama_cpp
    assert describe(listing, {}) == [
        {"name": "gemma", "capabilities": ["completion", "tools", "vision"]}  # n_ctx_train: no
    ]
    add_props(listing, _raw({"default_generation_settings": {"n_ctx": 4096}}))
    assert describe(listing, {})[0]["context_length"] == 4096
    newer = parse_models(
        _raw({"data": [{"id": "m", "owned_by": "llamacpp", "meta": {"n_ctx": 8192}}]})
    )
    assert newer.context == {"m": 8192}


def test_llama_cpp_props_say_vision_for_its_one_model() -> None:
    listing = parse_models(_raw({"data": [{"id": "m", "meta": {}}]}))
    add_props(listing, _raw({"modalities": {"vision": True}}))
    assert describe(listing, {})[0]["capabilities"] == ["completion", "vision"]


def test_lm_studio_gives_types_tool_use_and_contexts() -> None:
    listing = parse_models(
        _raw({"data": [{"id": i, "owned_by": "organization_owner"} for i in ("a", "b", "c", "d")]})
    )
    add_lm_studio(
        listing,
        _raw(
            {
                "data": [
                    {
                        "id": "a",
                        "type": "llm",
                        "capabilities": ["tool_use"],
                        "max_context_length": 32768,
                    },
                    {
                        "id": "b",
                        "type": "vlm",
                        "capabilities": [],
                        "loaded_context_length": 4096,
                        "max_context_length": 32768,
                    },
                    {"id": "c", "type": "embeddings", "max_context_length": 2048},
                    {"id": "d", "type": "llm"},
                    {"id": "not-listed", "type": "llm"},
                ]
            }
        ),
    )
    assert describe(listing, {}) == [
        {"name": "a", "capabilities": ["completion", "tools"], "context_length": 32768},
        {"name": "b", "capabilities": ["completion", "vision"], "context_length": 4096},
        {"name": "c", "capabilities": ["embedding"], "context_length": 2048},
        {"name": "d", "capabilities": ["completion", "tools"]},
    ]


def test_configured_capabilities_replace_everything_else() -> None:
    listing = parse_models(_raw({"data": [{"id": "x"}, {"id": "text-embedding-3-small"}]}))
    configured = {"x": ("completion", "vision", "thinking"), "unlisted": ("embedding",)}
    assert describe(listing, configured) == [
        {"name": "text-embedding-3-small", "capabilities": ["embedding"]},
        {"name": "x", "capabilities": ["completion", "vision", "thinking"]},
    ]


@pytest.mark.parametrize("body", [b"[]", b'{"models": []}', b"not json", b'{"data": 3}'])
def test_what_is_not_an_openai_model_list_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_models(body)


def test_odd_entries_are_skipped_and_contexts_out_of_range_unknown() -> None:
    listing = parse_models(
        _raw(
            {
                "data": [
                    {"id": ""},
                    "x",
                    {"name": "no-id"},
                    {"id": "ok", "max_model_len": 2**40},
                    {"id": "ok"},
                ]
            }
        )
    )
    assert listing.ids == ["ok"] and listing.context == {}
