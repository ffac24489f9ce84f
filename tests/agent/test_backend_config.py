"""The agent's backends as the command line gives them (agent/backend_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.backend_config import (
    BackendSpec,
    build,
    combined,
    parse_backend,
    parse_capabilities,
    read_key,
    specs,
)
from agent.backends import Backends
from agent.config import ConfigError
from agent.ollama import OllamaBackend
from agent.openai_backend import OpenAIBackend


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("openai=http://127.0.0.1:8000/v1", BackendSpec("openai", "http://127.0.0.1:8000/v1")),
        ("openai=https://gpu.lan/vllm/v1/", BackendSpec("openai", "https://gpu.lan/vllm/v1")),
        ("ollama=127.0.0.1:11500", BackendSpec("ollama", "http://127.0.0.1:11500")),
        ("OLLAMA=http://localhost", BackendSpec("ollama", "http://localhost:80")),  # as Ollama
        (
            "openai=http://h:1/v1,key-file=~/vllm.key",
            BackendSpec("openai", "http://h:1/v1", Path("~/vllm.key").expanduser()),
        ),
    ],
)
def test_backends_as_written(text: str, wanted: BackendSpec) -> None:
    assert parse_backend(text) == wanted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vllm=http://h:8000/v1", "KIND ollama or openai (vLLM, SGLang, llama.cpp and LM Studio"),
        ("http://h:8000/v1", "KIND ollama or openai"),
        ("openai=", "KIND ollama or openai"),
        ("openai=http://h:8000", "ends in /v1 (vLLM: http://127.0.0.1:8000/v1"),
        ("openai=ftp://h/v1", "looks like http://HOST:PORT/v1"),
        ("ollama=http://h:11434/v1", "is Ollama's OpenAI layer"),
        ("ollama=unix:///run/ollama.sock", "looks like http://HOST:PORT"),
        ("openai=http://h/v1,keyfile=k", "'keyfile=k' is not an option"),
    ],
)
def test_mistakes_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_backend(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_ollama_alone_or_the_backends_given() -> None:
    assert specs([], "http://127.0.0.1:11434", False, None) == [
        BackendSpec("ollama", "http://127.0.0.1:11434")
    ]
    key = Path("/k")
    given = specs(
        ["ollama=h:1", "openai=http://h:2/v1", "openai=http://h:3/v1,key-file=/own"],
        "ignored:1",
        False,
        key,
    )
    assert [s.key_file for s in given] == [None, key, Path("/own")]
    for args, message in [
        ((["ollama=h:1"], "h:2", True, None), "--ollama and --backend together"),
        (([], "h:2", False, key), "none is configured"),
        ((["ollama=h:1"], "h:2", False, key), "none is given"),
        ((["openai=http://h:2/v1", "openai=http://h:2/v1/"], "x", False, None), "given twice"),
    ]:
        with pytest.raises(ConfigError, match=message):
            specs(*args)


def test_capabilities_per_model() -> None:
    assert parse_capabilities(["Qwen/Qwen3-8B=completion, tools,thinking", "a=b=embedding"]) == {
        "Qwen/Qwen3-8B": ("completion", "tools", "thinking"),
        "a=b": ("embedding",),
    }
    for bad in ("no-equals", "=tools", "m=", "m=tools,fly"):
        with pytest.raises(ConfigError, match="--capabilities"):
            parse_capabilities([bad])


def test_keys_are_read_alone_from_their_file(tmp_path: Path) -> None:
    good = tmp_path / "k"
    good.write_text("  sk-abc\n")
    assert read_key(good) == "sk-abc"
    for content in ("", "two words\n", "a\nb\n"):
        good.write_text(content)
        with pytest.raises(ConfigError, match="must hold the key alone"):
            read_key(good)
    with pytest.raises(ConfigError, match=r"cannot read the key file .*: No such file"):
        read_key(tmp_path / "missing")


async def test_one_backend_is_served_as_it_is_and_several_through_the_router(
    tmp_path: Path,
) -> None:
    key = tmp_path / "k"
    key.write_text("sk-1\n")
    one = build([BackendSpec("ollama", "http://h:1")], {}, 4)
    assert isinstance(combined(one), OllamaBackend)
    several = build(
        [BackendSpec("ollama", "http://h:1"), BackendSpec("openai", "http://h:2/v1", key)], {}, 4
    )
    assert [n.label for n in several] == ["ollama http://h:1", "openai http://h:2/v1"]
    assert isinstance(several[1].backend, OpenAIBackend)
    router = combined(several)
    assert isinstance(router, Backends)
    await router.aclose()
    await one[0].backend.aclose()
