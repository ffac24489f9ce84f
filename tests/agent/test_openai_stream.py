"""Reading an OpenAI-compatible runtime's SSE into neutral pieces (agent/openai_stream.py), fed
the lines each runtime really sends, whole and a byte at a time where it matters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.backend import BackendError, Finish, Piece
from agent.openai_stream import DONE, Reply, event
from protocol import ErrorCode

RUNTIME = "the runtime at http://127.0.0.1:8000/v1"


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps({"id": "c", "choices": choices, **extra}).encode()


def _one(reply: Reply, chunk: dict[str, Any]) -> Piece | None:
    """What one chunk adds, alone in its piece (the backend puts a batch's in one)."""
    piece = Piece()
    reply.chunk(chunk, piece)
    return piece if piece.content or piece.thinking or piece.tool_calls else None


def _read(lines: list[bytes], chat: bool = True) -> tuple[list[Piece], Finish]:
    reply = Reply(RUNTIME, chat)
    pieces = []
    done = False
    for line in lines:
        chunk = event(line, RUNTIME)
        if not isinstance(chunk, dict):
            done = done or chunk is DONE
            continue
        piece = _one(reply, chunk)
        if piece is not None:
            pieces.append(piece)
    assert done
    leftover = reply.leftover()
    return pieces + ([leftover] if leftover else []), reply.finish()


def test_vllm_usage_comes_in_a_last_chunk_with_no_choices() -> None:
    pieces, finish = _read(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": "Hel"}),
            _chunk({"content": "lo"}),
            _chunk({}, "stop"),
            _chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}),
            b"data: [DONE]",
        ]
    )
    assert [p.content for p in pieces] == ["Hel", "lo"]
    assert finish == Finish("stop", 7, 2, {})


def test_llama_cpp_sends_null_content_and_timings_with_usage_on_the_finish_chunk() -> None:
    timings = {"prompt_n": 5, "prompt_ms": 1.5, "predicted_n": 2, "predicted_ms": 20.25}
    usage = {"prompt_tokens": 5, "completion_tokens": 2}
    pieces, finish = _read(
        [
            _chunk({"role": "assistant", "content": None}),
            _chunk({"reasoning_content": "hm"}),
            _chunk({"content": "ok"}),
            _chunk({}, "length", usage=usage, timings=timings),
            b"data: [DONE]",
        ]
    )
    assert [(p.content, p.thinking) for p in pieces] == [("", "hm"), ("ok", "")]
    assert finish.finish_reason == "length" and finish.usage_reported
    assert finish.timings == {
        "prompt_eval_duration": 1_500_000,
        "eval_duration": 20_250_000,
        "total_duration": 21_750_000,
    }


def test_no_usage_anywhere_is_said_so() -> None:
    _, finish = _read([_chunk({"content": "x"}), _chunk({}, "stop"), b"data: [DONE]"])
    assert finish == Finish("stop", 0, 0, {}, usage_reported=False)


def test_newer_vllm_and_lm_studio_name_thinking_reasoning() -> None:
    pieces, _ = _read([_chunk({"reasoning": "let me"}), _chunk({}, "stop"), b"data: [DONE]"])
    assert pieces == [Piece("", "let me")]


def test_tool_calls_cut_anywhere_come_out_whole_each_when_the_next_begins() -> None:
    arguments = json.dumps({"city": "Zürich", "days": [1, 2]}, ensure_ascii=False)
    lines = [_chunk({"role": "assistant", "content": ""})]
    for index, (call_id, name) in enumerate((("call_a", "get_weather"), ("call_b", "get_time"))):
        head = {"index": index, "id": call_id, "type": "function"}
        lines.append(
            _chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        )
        for start in range(0, len(arguments), 2):  # mid-key, mid-string, mid-number
            fragment = arguments[start : start + 2]
            lines.append(
                _chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            )
    usage = {"prompt_tokens": 1, "completion_tokens": 9}
    lines += [_chunk({}, "tool_calls"), _chunk(None, usage=usage), b"data: [DONE]"]
    reply = Reply(RUNTIME, chat=True)
    out: list[tuple[int, Piece]] = []
    for number, line in enumerate(lines):
        chunk = event(line, RUNTIME)
        if isinstance(chunk, dict) and (piece := _one(reply, chunk)) is not None:
            out.append((number, piece))
    compact = json.dumps({"city": "Zürich", "days": [1, 2]}, separators=(",", ":"))
    # The first call leaves when the second begins; the second with the finish reason, which
    # comes on a chunk of its own.
    assert [(n, p.tool_calls) for n, p in out] == [
        (len(lines) // 2 - 1, [{"id": "call_a", "name": "get_weather", "arguments": compact}]),
        (len(lines) - 3, [{"id": "call_b", "name": "get_time", "arguments": compact}]),
    ]
    assert reply.finish().finish_reason == "tool_calls"


def test_calls_without_index_or_id_and_calls_left_open_at_the_end() -> None:
    pieces, finish = _read(
        [
            _chunk({"tool_calls": [{"function": {"name": "f", "arguments": '{"a":'}}]}),
            _chunk({"tool_calls": [{"function": {"arguments": "1}"}}]}),
            b"data: [DONE]",  # no finish reason at all: the call is still handed on
        ]
    )
    ((call,),) = [p.tool_calls for p in pieces]
    assert call["name"] == "f" and call["arguments"] == '{"a":1}'
    assert call["id"].startswith("call_") and len(call["id"]) == 29
    assert finish.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("lines", "wanted"),
    [
        (
            [
                _chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{oops"}}
                        ]
                    }
                ),
                _chunk({}, "tool_calls"),
            ],
            "called 'f' with arguments that are not a JSON object: {oops",
        ),
        (
            [
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                _chunk({}, "stop"),
            ],
            "sent a malformed tool call",
        ),
        (
            [
                _chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}),
                _chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}),
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            ],
            "sent more of tool call 0 after the next one began",
        ),
    ],
)
def test_calls_that_cannot_be_carried_whole_are_backend_errors(
    lines: list[bytes], wanted: str
) -> None:
    reply = Reply(RUNTIME, chat=True)
    with pytest.raises(BackendError) as caught:
        for line in lines:
            chunk = event(line, RUNTIME)
            assert isinstance(chunk, dict)
            reply.chunk(chunk, Piece())
    assert caught.value.code is ErrorCode.BACKEND_ERROR and wanted in str(caught.value)


def test_legacy_completions_read_the_text_of_each_choice() -> None:
    lines = [
        b'data: {"choices":[{"index":0,"text":"once","finish_reason":null}]}',
        b'data: {"choices":[{"index":0,"text":" upon","finish_reason":"length"}]}',
        b"data: [DONE]",
    ]
    pieces, finish = _read(lines, chat=False)
    assert [p.content for p in pieces] == ["once", " upon"]
    assert finish.finish_reason == "length"


def test_comments_and_other_fields_carry_nothing() -> None:
    for line in (b": ping", b"event: message", b"id: 4", b"retry: 100", b":"):
        assert event(line, RUNTIME) is None
    assert event(b"data:[DONE]", RUNTIME) is DONE  # the space after the colon is optional


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        # vLLM: an error event once the stream began.
        (
            b'data: {"error": {"message": "engine dead", "type": "InternalServerError",'
            b' "code": 500}}',
            ErrorCode.BACKEND_ERROR,
            f"{RUNTIME}: engine dead",
        ),
        # Older vLLM wrapped its whole error response in it.
        (
            b'data: {"error": {"object": "error", "message": "bad", "type": "BadRequestError",'
            b' "code": 400}}',
            ErrorCode.BAD_REQUEST,
            "bad",
        ),
        # llama.cpp before late 2025: an `error:` field, not `data:`.
        (
            b'error: {"code": 400, "message": "the request exceeds the available context size,'
            b' try increasing the context size or enable context shift",'
            b' "type": "invalid_request_error"}',
            ErrorCode.CONTEXT_LENGTH_EXCEEDED,
            "the request exceeds the available context size",
        ),
        (b"data: not json", ErrorCode.BACKEND_ERROR, "sent an event that is not a JSON object"),
        (b"data: [1, 2]", ErrorCode.BACKEND_ERROR, "sent an event that is not a JSON object"),
    ],
)
def test_errors_in_the_stream_are_raised_as_the_runtime_said_them(
    line: bytes, code: ErrorCode, message: str
) -> None:
    with pytest.raises(BackendError) as caught:
        event(line, RUNTIME)
    assert caught.value.code is code
    assert message in str(caught.value)


def test_a_reply_fed_a_byte_at_a_time_by_the_line_reader_is_the_same() -> None:
    # HttpStream cuts lines from whatever the socket delivers; each line reaches the reader
    # whole, so what matters is that every runtime's line is one event: checked on a body cut
    # into single bytes and joined back by newline, as the reader does.
    body = (
        b"\n\n".join(
            [
                _chunk({"content": "é"}),
                _chunk({}, "stop"),
                _chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 1}),
                b"data: [DONE]",
            ]
        )
        + b"\n\n"
    )
    buffer = bytearray()
    lines = []
    for byte in body:
        buffer.append(byte)
        if byte == ord("\n"):
            line = bytes(buffer).strip()
            buffer.clear()
            if line:
                lines.append(line)
    pieces, finish = _read(lines)
    assert pieces == [Piece("é")] and finish == Finish("stop", 1, 1, {})


def test_lines_ending_in_crlf_are_read_the_same() -> None:
    # sse-starlette (llama-cpp-python's server) separates events with CRLF; the pool's lines
    # keep the CR.
    pieces, finish = _read(
        [_chunk({"content": "a"}) + b"\r", _chunk({}, "stop") + b"\r", b"data: [DONE]\r"]
    )
    assert pieces == [Piece("a")] and finish.finish_reason == "stop"
