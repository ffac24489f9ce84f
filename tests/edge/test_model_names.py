from __future__ import annotations

import pytest

from edge.model_names import canonical, resolve, same_model

SERVED = ["qwen3:8b", "nomic-embed-text:latest", "Qwen/Qwen2.5-7B-Instruct", "library/x:1"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen3", "qwen3:latest"),
        ("qwen3:8b", "qwen3:8b"),
        ("library/qwen3", "qwen3:latest"),
        ("registry.ollama.ai/library/qwen3:8b", "qwen3:8b"),
        ("hf.co/org/model", "hf.co/org/model:latest"),
        ("host:5000/model", "host:5000/model:latest"),  # a port is not a tag
    ],
)
def test_names_read_as_ollama_reads_them(name: str, expected: str) -> None:
    assert canonical(name) == expected


def test_a_requested_name_resolves_to_what_is_served() -> None:
    assert resolve("nomic-embed-text", SERVED) == "nomic-embed-text:latest"
    assert resolve("library/qwen3:8b", SERVED) == "qwen3:8b"
    assert resolve("Qwen/Qwen2.5-7B-Instruct", SERVED) == "Qwen/Qwen2.5-7B-Instruct"  # exact
    assert resolve("x:1", SERVED) == "library/x:1"
    assert resolve("qwen3", SERVED) is None  # qwen3 means qwen3:latest, which is not served
    assert same_model("nomic-embed-text:latest", ["nomic-embed-text"])
    assert not same_model("qwen3:8b", ["qwen3"])
