"""An OpenAI-compatible runtime's streamed reply (server-sent events) as neutral pieces.

Each ``data:`` line is one chunk: vLLM, SGLang, llama.cpp, LM Studio and llama-cpp-python put one
JSON object on one line, end with ``data: [DONE]``, and may send ``: ping`` comments. What the
reader copes with, because the runtimes do it (docs/ARCHITECTURE.md "The agent's backends"):

- usage in a last chunk with empty ``choices`` (vLLM, SGLang, with ``include_usage``), in the
  finish chunk (llama.cpp), in every chunk (vLLM's ``continuous_usage_stats``), or nowhere
  (llama-cpp-python): the last one seen counts, and none at all is said in END (§7);
- llama.cpp's ``timings`` (milliseconds) beside it, kept as Ollama's nanosecond names;
- a tool call streamed in pieces: its id and name first, then its arguments in fragments cut
  anywhere, even inside a JSON string; several calls one after another by ``index``; and
  ``finish_reason: "tool_calls"`` on a chunk of its own. A call is handed on whole (the tunnel
  never splits one, §8) once the next one begins or the choice finishes;
- thinking as ``reasoning_content`` (llama.cpp, SGLang, older vLLM) or ``reasoning`` (newer vLLM,
  LM Studio); a first chunk whose ``content`` is ``null``;
- an error after the stream began: ``data: {"error": …}``, or llama.cpp's older ``error:`` field
  (``agent/openai_errors.py``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import orjson

from agent.backend import BackendError, Finish, Piece, count
from agent.openai_errors import stream_error
from protocol import ErrorCode
from protocol.frames import MAX_TOKENS, ToolCall
from protocol.json_values import INT64_MAX

DONE = object()  # what ``event`` returns for ``data: [DONE]``
# llama.cpp's timings (ms) under Ollama's names (ns), so the edge logs one vocabulary.
_TIMINGS = {"prompt_ms": "prompt_eval_duration", "predicted_ms": "eval_duration"}


def event(line: bytes, runtime: str) -> dict[str, Any] | object | None:
    """One line of the reply: a chunk, ``DONE``, or ``None`` for a line that carries nothing
    (a comment, ``event:``, ``id:``, ``retry:``). Raises the runtime's error."""
    field, _, value = line.rstrip(b"\r").partition(b":")  # sse-starlette ends lines in CRLF
    if field == b"data":
        value = value.removeprefix(b" ")
        if value == b"[DONE]":
            return DONE
        chunk = _json(value, runtime)
        if "error" in chunk or chunk.get("object") == "error":
            raise stream_error(chunk, runtime)
        return chunk
    if field == b"error":  # llama.cpp before the end of 2025
        raise stream_error({"error": _json(value.removeprefix(b" "), runtime)}, runtime)
    return None


def _json(value: bytes, runtime: str) -> dict[str, Any]:
    # orjson: one event per token, where the standard parser costs the agent most of its CPU
    # after the network (README "Benchmarks").
    try:
        chunk = orjson.loads(value)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        raise BackendError(
            ErrorCode.BACKEND_ERROR, f"{runtime} sent an event that is not a JSON object"
        )
    return chunk


class Reply:
    """Reads one reply's chunks (``chunk``) into pieces; ``finish()`` once the stream ended."""

    def __init__(self, runtime: str, chat: bool) -> None:
        self._runtime = runtime
        self._chat = chat
        self._calls = _ToolCalls(runtime)
        self._called = False
        self.finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._timings: dict[str, Any] | None = None

    def chunk(self, chunk: dict[str, Any], piece: Piece) -> None:
        """Add what ``chunk`` says to ``piece`` (several chunks may go into one)."""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        timings = chunk.get("timings")
        if isinstance(timings, dict):
            self._timings = timings
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]  # the agent never asks for n > 1
        if self._chat:
            self._delta(choice, piece)
        else:
            piece.content += _text(choice.get("text"))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            piece.tool_calls += self._calls.flush()
        self._called = self._called or bool(piece.tool_calls)

    def _delta(self, choice: dict[str, Any], piece: Piece) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        thinking = delta.get("reasoning_content")
        if thinking is None:
            thinking = delta.get("reasoning")
        piece.content += _text(delta.get("content"))
        piece.thinking += _text(thinking)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                piece.tool_calls += self._calls.add(call)

    def leftover(self) -> Piece | None:
        """Calls still open when the stream ended without a finish reason."""
        calls = self._calls.flush()
        self._called = self._called or bool(calls)
        return Piece(tool_calls=calls) if calls else None

    def finish(self) -> Finish:
        """How the reply ended: its reason (``tool_calls`` whenever the model called one, as
        the Ollama backend says it), the runtime's counts, or none said (§7)."""
        if self._called:
            reason = "tool_calls"
        else:
            reason = "length" if self.finish_reason == "length" else "stop"
        timings = _timings(self._timings)
        usage = self._usage
        prompt = usage.get("prompt_tokens") if usage else None
        completion = usage.get("completion_tokens") if usage else None
        if type(prompt) is not int or type(completion) is not int:
            return Finish(reason, 0, 0, timings, usage_reported=False)
        return Finish(reason, count(prompt, MAX_TOKENS), count(completion, MAX_TOKENS), timings)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _timings(timings: dict[str, Any] | None) -> dict[str, int]:
    if not timings:
        return {}
    out: dict[str, int] = {}
    for source, name in _TIMINGS.items():
        value = timings.get(source)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            out[name] = count(int(value * 1_000_000), INT64_MAX)
    if out:
        out["total_duration"] = count(sum(out.values()), INT64_MAX)
    return out


class _ToolCalls:
    """Tool calls being streamed, by ``index``: each handed on whole, once complete."""

    def __init__(self, runtime: str) -> None:
        self._runtime = runtime
        self._open: dict[int, dict[str, Any]] = {}  # index → {id, name, arguments: [str]}
        self._done: set[int] = set()
        self._last = -1

    def add(self, delta: Any) -> list[ToolCall]:
        """Take one ``tool_calls`` entry of a delta; the calls it completes."""
        if not isinstance(delta, dict):
            raise self._malformed()
        index = delta.get("index")
        if type(index) is not int:
            # No index (a runtime that sends each call whole): a new id starts a new call.
            fresh = delta.get("id") and self._open.get(self._last, {}).get("id") != delta["id"]
            index = self._last + 1 if fresh or self._last < 0 else self._last
        if index in self._done:
            raise BackendError(
                ErrorCode.BACKEND_ERROR,
                f"{self._runtime} sent more of tool call {index} after the next one began",
            )
        finished = self.flush(before=index) if index > self._last else []
        self._last = max(self._last, index)
        call = self._open.setdefault(index, {"id": "", "name": "", "arguments": []})
        if isinstance(delta.get("id"), str) and delta["id"]:
            call["id"] = delta["id"]
        function = delta.get("function")
        if isinstance(function, dict):
            name = function.get("name")
            if isinstance(name, str) and name and not call["name"]:  # some repeat it
                call["name"] = name
            arguments = function.get("arguments")
            if isinstance(arguments, dict):  # whole, as an object: not OpenAI's shape, but seen
                arguments = json.dumps(arguments)
            if isinstance(arguments, str):
                call["arguments"].append(arguments)
        return finished

    def flush(self, before: int | None = None) -> list[ToolCall]:
        """The open calls (those with an index below ``before``), whole, in index order."""
        ready = sorted(i for i in self._open if before is None or i < before)
        calls = [self._whole(self._open.pop(i)) for i in ready]
        self._done.update(ready)
        return calls

    def _whole(self, call: dict[str, Any]) -> ToolCall:
        """A complete call as the tunnel carries it: arguments as compact JSON text of an
        object (PROTOCOL.md §2), so every dialect can render it; the runtime's id, or one."""
        if not call["name"]:
            raise self._malformed()
        text = "".join(call["arguments"]).strip() or "{}"
        try:
            arguments = json.loads(text)
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise BackendError(
                ErrorCode.BACKEND_ERROR,
                f"the model called {call['name']!r} with arguments that are not a JSON object:"
                f" {text[:200]}",
            )
        return {
            "id": call["id"] or "call_" + secrets.token_hex(12),
            "name": call["name"],
            "arguments": json.dumps(arguments, separators=(",", ":")),
        }

    def _malformed(self) -> BackendError:
        return BackendError(ErrorCode.BACKEND_ERROR, f"{self._runtime} sent a malformed tool call")
