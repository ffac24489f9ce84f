"""The simulated OpenAI-compatible runtime's settings, models and counters.

``Flavour`` picks whose quirks it shows (docs/ARCHITECTURE.md "The agent's backends"):

- ``vllm``: ``max_model_len`` in the model list; usage in a last chunk with empty ``choices``
  when ``stream_options.include_usage`` asks; thinking as ``reasoning``; a ``max_tokens`` that
  does not fit beside the prompt refused with a 400; errors as ``{"error": {…}}``.
- ``llama.cpp``: the model list with ``meta`` and an Ollama-style ``models`` list with
  capabilities, ``/props``; a first chunk whose ``content`` is ``null``; ``timings`` and usage on
  the finish chunk, whether asked or not; thinking as ``reasoning_content``; an overlong prompt
  refused with ``exceed_context_size_error``; an error after the start as an ``error:`` field;
  no embeddings unless started with ``--embeddings`` (501).
- ``lm-studio``: a bare model list and ``/api/v0/models`` with types and contexts.
- ``plain``: llama-cpp-python's server: nothing beyond ids, and no usage in a stream at all.

Every flavour streams a tool call as OpenAI does, in pieces: its id and name, then its
arguments in fragments cut every few characters (inside strings and keys too), and the finish
reason on a chunk of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from llmtunnel.sim_ollama import SimModel, SimStats

Flavour = Literal["vllm", "llama.cpp", "lm-studio", "plain"]
FLAVOURS: tuple[Flavour, ...] = ("vllm", "llama.cpp", "lm-studio", "plain")
EMBEDDING_DIMENSIONS = 384
ARGUMENT_FRAGMENT = 3  # characters per streamed fragment of a tool call's arguments
KEPT_BODIES = 64  # request bodies remembered for tests to look at

DEFAULT_MODELS: tuple[SimModel, ...] = (
    SimModel("Qwen/Qwen3-8B", "qwen3", "8.2B", ("completion", "tools", "thinking"), 40960),
    SimModel("meta-llama/Llama-3.2-3B-Instruct", "llama", "3.2B", ("completion", "tools"), 8192),
    SimModel("google/gemma-3-4b-it", "gemma3", "4.3B", ("completion", "vision"), 8192),
    SimModel("nomic-ai/nomic-embed-text-v1.5", "nomic-bert", "137M", ("embedding",), 2048),
)


@dataclass
class SimOpenAIConfig:
    flavour: Flavour = "vllm"
    tokens_per_second: float = 0.0  # 0: as fast as possible
    models: tuple[SimModel, ...] = DEFAULT_MODELS
    context_length: int = 8192  # the server's (vLLM's --max-model-len; llama.cpp's -c)
    api_key: str | None = None  # vLLM's --api-key: every request must carry it
    embeddings: bool = True  # llama.cpp's --embeddings; False: TGI's missing route for others
    refuses_stream_options: bool = False  # a strict server that knows no stream_options


@dataclass
class SimOpenAIStats(SimStats):
    """The simulated Ollama's counters (``queued`` stays 0: no parallel limit here), and more."""

    not_found: int = 0  # requests for a route this flavour does not have
    bodies: list[dict[str, Any]] = field(default_factory=list)  # the last requests, as sent

    def keep(self, body: dict[str, Any]) -> None:
        self.bodies = [*self.bodies, body][-KEPT_BODIES:]


CONFIG_KEY = web.AppKey("sim_openai_config", SimOpenAIConfig)
STATS_KEY = web.AppKey("sim_openai_stats", SimOpenAIStats)


class OpenAIError(Exception):
    """An error reply: ``body`` is the whole JSON body, in the flavour's shape."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def error(status: int, message: str, kind: str = "BadRequestError", **extra: Any) -> OpenAIError:
    """OpenAI's error shape, which vLLM, llama.cpp and LM Studio all use now."""
    return OpenAIError(
        status,
        {"error": {"message": message, "type": kind, "param": None, "code": status, **extra}},
    )


def served(config: SimOpenAIConfig, name: object) -> SimModel:
    for model in config.models:
        if model.name == name:
            return model
    raise error(404, f"The model `{name}` does not exist.", "NotFoundError")


def context_of(config: SimOpenAIConfig, model: SimModel) -> int:
    return min(config.context_length, model.context_length)
