"""An OpenAI-compatible runtime's errors as the tunnel's (agent/openai_errors.py): each runtime's
real wording of a context overflow, and the statuses."""

from __future__ import annotations

import json

import pytest

from agent.openai_errors import Overflow, overflow, status_error
from protocol import ErrorCode

RUNTIME = "the runtime at http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("message", "prompt", "context"),
    [
        # vLLM since 0.11, with and without the output asked for.
        (
            "This model's maximum context length is 4096 tokens. However, you requested 1000"
            " output tokens and your prompt contains 3500 input tokens, for a total of 4500"
            " tokens. Please reduce the length of the input prompt or the number of requested"
            " output tokens.",
            3500,
            4096,
        ),
        (
            "This model's maximum context length is 4096 tokens. However, you requested 0 output"
            " tokens and your prompt contains at least 4097 input tokens, for a total of at least"
            " 4097 tokens.",
            4097,
            4096,
        ),
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 3000. This model's maximum"
            " context length is 4096 tokens and your request has 1200 input tokens (3000 > 4096"
            " - 1200).",
            1200,
            4096,
        ),
        (
            "This model's maximum context length is 2048 tokens. However, your request has 2100"
            " input tokens. Please reduce the length of the input messages.",
            2100,
            2048,
        ),
        # vLLM before, and llama-cpp-python (chat and completions wording).
        (
            "This model's maximum context length is 16384 tokens. However, you requested 19591"
            " tokens (9591 in the messages, 10000 in the completion). Please reduce the length"
            " of the messages or completion.",
            9591,
            16384,
        ),
        (
            "This model's maximum context length is 512 tokens. However, you requested 600 tokens"
            " (600 in the messages, None in the completion).",
            600,
            512,
        ),
        (
            "This model's maximum context length is 512 tokens, however you requested 530 tokens"
            " (520 in your prompt; 10 for the completion). Please reduce your prompt; or"
            " completion length.",
            520,
            512,
        ),
        (
            "This model's maximum context length is 4096 tokens. However, you requested 5000"
            " tokens in the messages, Please reduce the length of the messages.",
            5000,
            4096,
        ),
        (
            "The decoder prompt (length 9000) is longer than the maximum model length of 8192.",
            9000,
            8192,
        ),
        # SGLang.
        (
            "The input (61709 tokens) is longer than the model's context length (40960 tokens).",
            61709,
            40960,
        ),
        (
            "Input length (160062 tokens) exceeds the maximum allowed length (59862 tokens).",
            160062,
            59862,
        ),
        (
            "Requested token count exceeds the model's maximum context length of 32768 tokens."
            " You requested a total of 40000 tokens: 39000 tokens from the input messages and"
            " 1000 tokens for the completion.",
            39000,
            32768,
        ),
        # LM Studio.
        (
            "Trying to keep the first 5000 tokens when context the overflows. However, the model"
            " is loaded with context length of only 4096 tokens, which is not enough.",
            5000,
            4096,
        ),
        # TGI.
        (
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given:"
            " 4000 `inputs` tokens and 500 `max_new_tokens`",
            4000,
            4096,
        ),
        # llama.cpp's message (its sizes are also fields).
        (
            "request (9000 tokens) exceeds the available context size (8192 tokens), try"
            " increasing it",
            9000,
            8192,
        ),
    ],
)
def test_every_runtimes_overflow_gives_both_sizes(message: str, prompt: int, context: int) -> None:
    assert overflow(message) == Overflow(prompt, context)
    error = status_error(400, json.dumps({"error": {"message": message}}).encode(), RUNTIME, "/x")
    assert error.code is ErrorCode.CONTEXT_LENGTH_EXCEEDED
    assert str(error).startswith(f"prompt is too long: {prompt} tokens ")
    assert f" {context} maximum (the model's context on this machine; raise" in str(error)


def test_llama_cpp_gives_the_sizes_as_fields() -> None:
    error = {
        "code": 400,
        "message": "the request exceeds the available context size",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 300,
        "n_ctx": 256,
    }
    assert overflow(error["message"], error) == Overflow(300, 256)  # type: ignore[arg-type]
    assert Overflow(300, 256).prompt_fits is False and Overflow(100, 256).prompt_fits is True


@pytest.mark.parametrize(
    ("status", "body", "path", "code", "retryable", "message"),
    [
        (
            400,
            {"error": {"message": "bad temperature", "code": 400}},
            "/c",
            ErrorCode.BAD_REQUEST,
            False,
            "bad temperature",
        ),
        (
            400,
            {"object": "error", "message": "old vLLM shape", "code": 400},
            "/c",
            ErrorCode.BAD_REQUEST,
            False,
            "old vLLM shape",
        ),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "Field required"}]},
            "/c",
            ErrorCode.BAD_REQUEST,
            False,
            "messages: Field required",
        ),
        (
            404,
            {"error": {"message": "The model `x` does not exist.", "code": 404}},
            "/c",
            ErrorCode.MODEL_NOT_FOUND,
            False,
            "The model `x` does not exist.",
        ),
        (
            404,
            {"detail": "Not Found"},
            "/embeddings",
            ErrorCode.UNSUPPORTED,
            False,
            f"{RUNTIME} does not serve /embeddings (Not Found)",
        ),
        (
            501,
            {
                "error": {
                    "message": "This server does not support embeddings. Start it with"
                    " `--embeddings`",
                    "type": "not_supported_error",
                }
            },
            "/embeddings",
            ErrorCode.UNSUPPORTED,
            False,
            "Start it with `--embeddings`",
        ),
        (
            500,
            {
                "error": {
                    "message": "Llama model must be created with embedding=True to call this method"
                }
            },
            "/embeddings",
            ErrorCode.UNSUPPORTED,
            False,
            "cannot embed",
        ),
        (429, {"error": "Too many requests"}, "/c", ErrorCode.BUSY, True, "Too many requests"),
        (503, "Service Unavailable", "/c", ErrorCode.BUSY, True, "Service Unavailable"),
        (
            500,
            {"error": {"message": "CUDA out of memory"}},
            "/c",
            ErrorCode.BACKEND_ERROR,
            False,
            "CUDA out of memory",
        ),
        (
            401,
            {"error": "Unauthorized"},
            "/c",
            ErrorCode.BACKEND_ERROR,
            False,
            "refused the agent's API key (HTTP 401: Unauthorized)",
        ),
        (502, b"", "/c", ErrorCode.BACKEND_ERROR, False, "HTTP 502"),
    ],
)
def test_statuses_and_messages(
    status: int,
    body: object,
    path: str,
    code: ErrorCode,
    retryable: bool,
    message: str,
) -> None:
    if isinstance(body, bytes):
        raw = body
    else:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode()
    error = status_error(status, raw, RUNTIME, path)
    assert (error.code, error.retryable) == (code, retryable)
    assert message in str(error)
