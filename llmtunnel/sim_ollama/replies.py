"""What a simulated model answers: deterministic replies, tool calls, thinking, metrics."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from llmtunnel.sim_ollama.config import (
    DEFAULT_REPLY_TOKENS,
    FILLER,
    MAX_REPLY_TOKENS,
    THOUGHTS,
    OllamaError,
    SimModel,
)


def thinking_on(model: SimModel, think: object) -> bool:
    wants = think not in (None, False)
    if wants and "thinking" not in model.capabilities:
        raise OllamaError(400, f'"{model.name}" does not support thinking')
    # A thinking model thinks unless told not to (think absent means on).
    return "thinking" in model.capabilities and think is not False


def _directive(text: str, name: str) -> int | None:
    match = re.search(rf"\b{name}=(\d+)", text)
    return min(int(match.group(1)), MAX_REPLY_TOKENS) if match else None


def _words(text: str) -> list[str]:
    return [w for w in text.split() if "=" not in w]


def _reply_tokens(prompt: str, count: int) -> list[str]:
    words = _words(prompt) + FILLER
    return [(" " if i else "") + words[i % len(words)] for i in range(count)]


def _arguments(parameters: object) -> dict[str, Any]:
    schema = parameters if isinstance(parameters, dict) else {}
    properties = schema.get("properties") or {}
    values = {"string": "example", "number": 1, "integer": 1, "boolean": True}
    return {
        name: values.get((properties.get(name) or {}).get("type", "string"), "example")
        for name in schema.get("required") or []
    }


def tool_calls_for(tools: list[Any], text: str) -> list[dict[str, Any]]:
    calls = []
    for tool in tools:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        name = function.get("name")
        if isinstance(name, str) and name and name in text:
            calls.append(
                {
                    "id": "call_" + secrets.token_hex(4),
                    # Ollama's quirk: many parsers leave index 0 on every call.
                    "function": {
                        "index": 0,
                        "name": name,
                        "arguments": _arguments(function.get("parameters")),
                    },
                }
            )
    return calls


def count_prompt_tokens(texts: list[str], tools: object) -> int:
    count = sum(len(t.split()) for t in texts) + 4 * len(texts)
    if tools:
        count += len(json.dumps(tools)) // 4
    return max(count, 1)


@dataclass
class Plan:
    """What one generation will produce."""

    thinking: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str = "stop"
    fail_after: int | None = None
    prompt_tokens: int = 1


def make_plan(
    model: SimModel, prompt: str, options: dict[str, Any], think: bool, tool_reply: str | None
) -> Plan:
    plan = Plan(thinking=list(THOUGHTS) if think else [])
    if tool_reply is not None:
        plan.content = _reply_tokens(f"The tool said: {tool_reply}", len(tool_reply.split()) + 3)
    else:
        count = _directive(prompt, "tokens") or DEFAULT_REPLY_TOKENS
        plan.content = _reply_tokens(prompt, count)
    plan.fail_after = _directive(prompt, "fail-after")
    limit = options.get("num_predict")
    if isinstance(limit, int) and limit >= 0 and limit < len(plan.thinking) + len(plan.content):
        keep = max(0, limit - len(plan.thinking))
        plan.thinking = plan.thinking[:limit]
        plan.content = plan.content[:keep]
        plan.done_reason = "length"
    stops = options.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    _cut_at_stop(plan, [stop for stop in stops if isinstance(stop, str) and stop])
    return plan


def _cut_at_stop(plan: Plan, stops: list[str]) -> None:
    """Drop the tokens from the one where a stop string begins, as Ollama does."""
    text = "".join(plan.content)
    found = [text.find(stop) for stop in stops if stop in text]
    if not found:
        return
    cut, length, keep = min(found), 0, 0
    for token in plan.content:
        if length + len(token) > cut:
            break
        length += len(token)
        keep += 1
    plan.content = plan.content[:keep]
    plan.done_reason = "stop"


def final_metrics(plan: Plan, started: float) -> dict[str, Any]:
    total = max(int((time.perf_counter() - started) * 1e9), 1000)
    generated = len(plan.thinking) + len(plan.content)
    metrics = {
        "total_duration": total,
        "load_duration": max(total // 20, 1),
        "prompt_eval_count": plan.prompt_tokens,
        "prompt_eval_duration": max(total // 10, 1),
        "eval_count": generated,
        "eval_duration": max(total - total // 5, 1),
    }
    return {k: v for k, v in metrics.items() if v}  # Ollama omits zero values
