"""How the simulated runtime writes a reply: server-sent events in its flavour's shapes, or one
object when not streamed (config.py's docstring lists the quirks)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmtunnel.sim_ollama.replies import Plan
from llmtunnel.sim_openai.config import (
    ARGUMENT_FRAGMENT,
    CONFIG_KEY,
    STATS_KEY,
    SimOpenAIConfig,
    error,
)


@dataclass
class Turn:
    """One reply to write: the plan, the calls it makes, and what the request asked of it."""

    plan: Plan
    model: str
    chat: bool
    stream: bool
    include_usage: bool
    calls: list[dict[str, Any]] = field(default_factory=list)  # {id, name, arguments: str}
    cut_without_a_word: bool = False  # llama-cpp-python's streamed overflow: 200, then nothing

    @property
    def completion_tokens(self) -> int:
        fragments = sum(len(_fragments(c["arguments"])) for c in self.calls)
        return len(self.plan.thinking) + len(self.plan.content) + fragments

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else self.plan.done_reason


async def reply(request: web.Request, turn: Turn) -> web.StreamResponse:
    """Write ``turn``, counting it as started, completed or cancelled (the client went away)."""
    config = request.app[CONFIG_KEY]
    with request.app[STATS_KEY].counted():
        if turn.stream:
            return await _stream(request, turn, config)
        return await _whole(turn, config)


def _usage(turn: Turn) -> dict[str, int]:
    prompt, completion = turn.plan.prompt_tokens, turn.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _timings(turn: Turn, started: float) -> dict[str, Any]:
    """llama.cpp's, in milliseconds."""
    elapsed = max((time.perf_counter() - started) * 1000, 0.01)
    generated = max(turn.completion_tokens, 1)
    return {
        "prompt_n": turn.plan.prompt_tokens,
        "prompt_ms": round(elapsed / 10, 3),
        "predicted_n": turn.completion_tokens,
        "predicted_ms": round(elapsed * 0.9, 3),
        "predicted_per_second": generated / (elapsed / 1000),
    }


def _fragments(text: str) -> list[str]:
    return [text[i : i + ARGUMENT_FRAGMENT] for i in range(0, len(text), ARGUMENT_FRAGMENT)]


async def _whole(turn: Turn, config: SimOpenAIConfig) -> web.Response:
    for _ in turn.plan.thinking + turn.plan.content:
        await _pace(config)
    if turn.plan.fail_after is not None:
        raise error(500, "the engine died", "InternalServerError")
    text = "".join(turn.plan.content)
    body: dict[str, Any] = {
        "id": "cmpl-" + secrets.token_hex(8),
        "object": "chat.completion" if turn.chat else "text_completion",
        "created": int(time.time()),
        "model": turn.model,
        "usage": _usage(turn),
    }
    if turn.chat:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if turn.plan.thinking:
            message[_reasoning(config)] = "".join(turn.plan.thinking)
        if turn.calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in turn.calls
            ]
        choice: dict[str, Any] = {"index": 0, "message": message}
    else:
        choice = {"index": 0, "text": text}
    body["choices"] = [{**choice, "logprobs": None, "finish_reason": turn.finish_reason}]
    return web.json_response(body)


async def _pace(config: SimOpenAIConfig) -> None:
    rate = config.tokens_per_second
    await asyncio.sleep(1 / rate if rate > 0 else 0)  # also yields: no stream starves the rest


def _reasoning(config: SimOpenAIConfig) -> str:
    return "reasoning_content" if config.flavour == "llama.cpp" else "reasoning"


async def _stream(request: web.Request, turn: Turn, config: SimOpenAIConfig) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    if turn.cut_without_a_word:
        assert request.transport is not None
        request.transport.close()  # what llama-cpp-python does when the prompt does not fit
        return response
    started = time.perf_counter()
    envelope = {
        "id": "chatcmpl-" + secrets.token_hex(8),
        "object": "chat.completion.chunk" if turn.chat else "text_completion",
        "created": int(time.time()),
        "model": turn.model,
    }

    async def send(
        delta: dict[str, Any] | str | None, finish: str | None = None, **extra: Any
    ) -> None:
        choice: dict[str, Any] = {"index": 0}
        if turn.chat:
            choice["delta"] = delta
        else:
            choice["text"] = delta
        choice.update(logprobs=None, finish_reason=finish)
        await _event(response, {**envelope, "choices": [choice], **extra})

    if turn.chat:
        await send({"role": "assistant", "content": None if config.flavour == "llama.cpp" else ""})
    for token in turn.plan.thinking:
        await _pace(config)
        await send({_reasoning(config): token} if turn.chat else token)
    for index, token in enumerate(turn.plan.content):
        if turn.plan.fail_after is not None and index >= turn.plan.fail_after:
            await _fail(response, config)
            return response
        await _pace(config)
        await send({"content": token} if turn.chat else token)
    for index, call in enumerate(turn.calls):
        head = {"index": index, "id": call["id"], "type": "function"}
        await send({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]})
        for fragment in _fragments(call["arguments"]):
            await send({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    final: dict[str, Any] = {}
    if config.flavour == "llama.cpp":  # usage and timings ride on the finish chunk, asked or not
        final = {"usage": _usage(turn), "timings": _timings(turn, started)}
    await send({} if turn.chat else "", turn.finish_reason, **final)
    if turn.include_usage and config.flavour in ("vllm", "lm-studio"):
        await _event(response, {**envelope, "choices": [], "usage": _usage(turn)})
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


async def _fail(response: web.StreamResponse, config: SimOpenAIConfig) -> None:
    """An error once the stream had begun: llama.cpp's older ``error:`` field, the others'
    ``data: {"error": …}``, then the end of the stream."""
    failure = error(500, "the engine died mid-generation", "InternalServerError").body
    if config.flavour == "llama.cpp":
        await response.write(b"error: " + json.dumps(failure["error"]).encode() + b"\n\n")
    else:
        await _event(response, failure)
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
