"""A simulated OpenAI-compatible runtime (vLLM, llama.cpp's server, LM Studio, llama-cpp-python),
without a GPU: the OpenAI endpoints as those runtimes really answer them, quirks included
(``config.py`` lists them by flavour).

The end-to-end tests, ``llmtunnel sim-openai`` and the demo run against it. Replies follow the
simulated Ollama's (``llmtunnel/sim_ollama``): the words of the last user message, then filler;
``tokens=N`` replies exactly N tokens, ``fail-after=N`` breaks the stream after N tokens, and a
tool whose name is in the message is called.
"""

from llmtunnel.sim_ollama import bound_port
from llmtunnel.sim_openai.config import (
    CONFIG_KEY,
    DEFAULT_MODELS,
    FLAVOURS,
    STATS_KEY,
    Flavour,
    SimOpenAIConfig,
    SimOpenAIStats,
)
from llmtunnel.sim_openai.server import create_app, main, serve

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_MODELS",
    "FLAVOURS",
    "STATS_KEY",
    "Flavour",
    "SimOpenAIConfig",
    "SimOpenAIStats",
    "bound_port",
    "create_app",
    "main",
    "serve",
]
