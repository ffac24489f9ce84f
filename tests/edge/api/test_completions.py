from __future__ import annotations

from typing import Any

import pytest

from edge.api import completions as oc
from edge.errors import ApiError
from protocol import Delta, End
from protocol.requests import to_wire


def _neutral(req: oc.CompletionRequest, caps: list[str]) -> dict[str, Any]:
    """The neutral request as the tunnel carries it."""
    return to_wire(oc.to_neutral(req, caps))


def _req(**overrides: Any) -> oc.CompletionRequest:
    return oc.parse_request({"model": "m", "prompt": "Once upon", **overrides})


def _param_of(body: dict[str, Any], capabilities: list[str] | None = None) -> str | None:
    with pytest.raises(ApiError) as caught:
        _neutral(oc.parse_request({"model": "m", **body}), capabilities or ["completion"])
    assert caught.value.status == 400
    return caught.value.param


def test_neutral_generate_with_openais_default_max_tokens() -> None:
    assert _neutral(_req(), ["completion"]) == {
        "op": "generate",
        "model": "m",
        "prompt": "Once upon",
        "options": {"num_predict": 16},
    }
    assert _neutral(_req(max_tokens=None), [])["options"] == {"num_predict": 16}


def test_given_options_are_forwarded_and_stop_becomes_a_list() -> None:
    neutral = _neutral(
        _req(
            max_tokens=40,
            temperature=0.3,
            top_p=0.9,
            seed=7,
            stop="\n",
            presence_penalty=0.5,
            frequency_penalty=-0.5,
        ),
        ["completion"],
    )
    assert neutral["options"] == {
        "num_predict": 40,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "stop": ["\n"],
    }
    assert _neutral(_req(stop=["a", "b"]), [])["options"]["stop"] == ["a", "b"]


def test_a_list_of_one_prompt_is_that_prompt() -> None:
    assert _neutral(_req(prompt=["def f():"]), [])["prompt"] == "def f():"


@pytest.mark.parametrize("prompt", [["a", "b"], [], [1, 2, 3], [[1, 2]], 42, None, {"text": "x"}])
def test_batches_token_arrays_and_other_shapes_name_prompt(prompt: object) -> None:
    with pytest.raises(ApiError) as caught:
        _req(prompt=prompt)
    assert (caught.value.status, caught.value.param) == (400, "prompt")
    assert "exactly one string" in caught.value.message


def test_a_missing_prompt_or_model_is_named() -> None:
    for body, param in (({"model": "m"}, "prompt"), ({"prompt": "x"}, "model")):
        with pytest.raises(ApiError) as caught:
            oc.parse_request(body)
        assert caught.value.param == param
        assert "required" in caught.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"best_of": 3}, "best_of"),
        ({"echo": True}, "echo"),
        ({"logprobs": 2}, "logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_what_cannot_be_served_is_a_400_naming_the_parameter(
    body: dict[str, Any], param: str
) -> None:
    assert _param_of({"prompt": "x", **body}) == param


def test_harmless_values_of_unsupported_parameters_pass() -> None:
    neutral = _neutral(_req(n=1, best_of=1, echo=False, user="u", logit_bias={}), [])
    assert neutral["op"] == "generate"


def test_suffix_needs_the_insert_capability_of_a_known_model() -> None:
    assert _param_of({"prompt": "def f(", "suffix": "return x"}, ["completion"]) == "suffix"
    neutral = _neutral(_req(suffix="return x"), ["completion", "insert"])
    assert neutral["suffix"] == "return x"
    # Unknown model (no capabilities known): left to the dispatch, which answers 404.
    assert _neutral(_req(suffix="return x"), [])["suffix"] == "return x"


def test_thinking_models_are_told_not_to_think() -> None:
    assert _neutral(_req(), ["completion", "thinking"])["think"] is False
    assert "think" not in _neutral(_req(), ["completion"])


def _end(reason: str = "stop") -> End:
    return End(1, reason, 5, 3, {})


def test_completion_object() -> None:
    renderer = oc.CompletionRenderer("m")
    body = renderer.completion(
        [Delta(1, "Hello", "", []), Delta(1, ", world", "hmm", [])], _end("length")
    )
    assert body["id"].startswith("cmpl-")
    assert body["object"] == "text_completion"
    assert body["model"] == "m"
    assert isinstance(body["created"], int)
    assert body["choices"] == [
        {"text": "Hello, world", "index": 0, "logprobs": None, "finish_reason": "length"}
    ]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_stream_chunks_share_id_and_end_with_finish_then_usage() -> None:
    renderer = oc.CompletionRenderer("m")
    chunks = [
        renderer.first_chunk(),
        renderer.delta_chunk(Delta(1, "Hi", "", [])),
        renderer.finish_chunk(_end("weird")),
        renderer.usage_chunk(_end()),
    ]
    assert {c["id"] for c in chunks} == {renderer.id}
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert [c["choices"][0]["text"] for c in chunks[:3]] == ["", "Hi", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:3]] == [None, None, "stop"]
    assert chunks[3]["choices"] == []
    assert chunks[3]["usage"]["total_tokens"] == 8
