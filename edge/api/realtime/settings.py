"""A Realtime session's settings (``session.update``) and one response's overrides of them
(``response.create``'s ``response``): validated and normalized. Nothing here does I/O.

Only what a client sets changes (the API's rule: a field absent from ``session.update`` keeps its
value). Output is always text: ``output_modalities`` with ``audio`` is refused, as is a
``transcription`` session; ``audio`` settings are accepted and change nothing, since no audio
ever flows. Tools are ``function`` tools (MCP servers are refused); ``tool_choice`` ``none``
drops them, a named function sends only that one, ``auto`` and ``required`` send all (Ollama
cannot force a call). ``reasoning.effort`` turns a thinking model's thinking off (``minimal``)
or sets its level; the thinking itself is not sent (the Realtime API has no item for it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edge.api.realtime.errors import EventError, audio_refused, invalid

MAX_MODEL_NAME = 256
EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
TOOL_CHOICES = ("auto", "none", "required")


@dataclass(frozen=True, slots=True)
class Settings:
    """What a response is made with: the session's settings, or a response's overrides of them."""

    model: str | None = None  # from the connect URL (?model=) or session.update
    instructions: str = ""
    max_output_tokens: int | None = None  # None: "inf", as much as the model writes
    tools: tuple[dict[str, Any], ...] = ()  # function tools, as the session shows them
    tool_choice: str | dict[str, Any] = "auto"
    reasoning_effort: str | None = None  # as the chat dialect's reasoning_effort

    def updated(self, changes: dict[str, Any]) -> Settings:
        return dataclasses.replace(self, **changes)


def parse_changes(raw: object, where: str, *, session: bool) -> dict[str, Any]:
    """The settings ``raw`` sets (only those it names), normalized as ``Settings`` fields;
    ``EventError`` naming ``where.field`` otherwise. ``session``: a ``session.update``'s
    ``session`` (which may name the model and the session type), else a response's."""
    if not isinstance(raw, dict):
        raise invalid(f"{where} must be an object", where)
    changes: dict[str, Any] = {}
    if session:
        _session_type(raw.get("type", "realtime"), f"{where}.type")
        if "model" in raw:
            changes["model"] = check_model(raw["model"], f"{where}.model")
    if "instructions" in raw:
        instructions = raw["instructions"]
        if instructions is not None and not isinstance(instructions, str):
            raise invalid("instructions must be a string", f"{where}.instructions")
        changes["instructions"] = instructions or ""
    if "output_modalities" in raw:
        _modalities(raw["output_modalities"], f"{where}.output_modalities")
    if "max_output_tokens" in raw:
        changes["max_output_tokens"] = _max_tokens(
            raw["max_output_tokens"], f"{where}.max_output_tokens"
        )
    if "tools" in raw:
        changes["tools"] = _tools(raw["tools"], f"{where}.tools")
    if "tool_choice" in raw:
        changes["tool_choice"] = _tool_choice(raw["tool_choice"], f"{where}.tool_choice")
    if "reasoning" in raw:
        changes["reasoning_effort"] = _effort(raw["reasoning"], f"{where}.reasoning")
    return changes


def _session_type(kind: object, where: str) -> None:
    if kind == "transcription":
        raise audio_refused(where, "a transcription session transcribes audio")
    if kind != "realtime":
        raise invalid("the session type must be `realtime`", where)


def check_model(model: object, where: str) -> str:
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_NAME:
        raise invalid(f"model must be a model name of 1 to {MAX_MODEL_NAME} characters", where)
    return model


def _modalities(modalities: object, where: str) -> None:
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise invalid('output_modalities must be a list such as ["text"]', where)
    if "audio" in modalities:
        raise audio_refused(where, "output_modalities asks for audio")
    if modalities != ["text"]:
        raise invalid('output_modalities must be ["text"]', where)


def _max_tokens(value: object, where: str) -> int | None:
    if value is None or value == "inf":
        return None
    if type(value) is not int or value < 1:
        raise invalid('max_output_tokens must be a positive integer or "inf"', where)
    return value


def _tools(tools: object, where: str) -> tuple[dict[str, Any], ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise invalid("tools must be a list", where)
    return tuple(_tool(tool, f"{where}.{index}") for index, tool in enumerate(tools))


def _tool(tool: object, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise invalid("a tool must be an object", where)
    kind = tool.get("type", "function")
    if kind != "function":
        raise invalid(
            f"tools of type {kind!r} are not supported: only `function` tools, which your code "
            "runs",
            f"{where}.type",
        )
    name, description, parameters = (tool.get(k) for k in ("name", "description", "parameters"))
    if not isinstance(name, str) or not name:
        raise invalid("a function tool needs a name", f"{where}.name")
    if description is not None and not isinstance(description, str):
        raise invalid("description must be a string", f"{where}.description")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid("parameters must be a JSON schema object", f"{where}.parameters")
    return {"type": "function", "name": name, "description": description, "parameters": parameters}


def _tool_choice(choice: object, where: str) -> str | dict[str, Any]:
    if choice is None:
        return "auto"
    if choice in TOOL_CHOICES:
        assert isinstance(choice, str)
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "name": name}
    raise invalid("tool_choice must be auto, none, required or {type: function, name}", where)


def _effort(reasoning: object, where: str) -> str | None:
    if reasoning is None:
        return None
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else ""
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise invalid(
            "reasoning.effort must be minimal, low, medium, high or xhigh", f"{where}.effort"
        )
    return EFFORTS[effort]


def named_tools(settings: Settings) -> list[dict[str, Any]]:
    """The tools a response sends, as chat-completions tools: ``tool_choice`` ``none`` sends
    none, a named function only that one (``EventError`` when no tool has that name)."""
    choice = settings.tool_choice
    if choice == "none":
        return []
    tools = list(settings.tools)
    if isinstance(choice, dict):
        tools = [tool for tool in tools if tool["name"] == choice["name"]]
        if not tools:
            raise EventError(
                "invalid_request",
                f"tool_choice names the function {choice['name']!r}, which is not in tools",
                param="tool_choice",
            )
    return [
        {
            "type": "function",
            "function": {
                k: tool[k] for k in ("name", "description", "parameters") if tool[k] is not None
            },
        }
        for tool in tools
    ]
