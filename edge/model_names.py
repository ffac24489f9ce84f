"""Model names as Ollama reads them, so that the names people type find the models machines serve.

Ollama lists full names (``qwen3:latest``, ``nomic-embed-text:latest``) but accepts the short
forms everywhere: a name without a tag means ``:latest``, and ``library/`` or
``registry.ollama.ai/library/`` before it name the same model (docs/ARCHITECTURE.md "Ollama as
the agent sees it"). The edge resolves a requested name against what machines serve: the exact
name first (so names of other runtimes, ``Qwen/Qwen2.5-7B-Instruct``, stay as they are), then
Ollama's reading of it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

_PREFIXES = ("registry.ollama.ai/library/", "library/")


def canonical(name: str) -> str:
    """Ollama's reading of ``name``: without a library prefix, with ``:latest`` when untagged."""
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def resolve(name: str, served: Collection[str]) -> str | None:
    """The served name ``name`` stands for: itself, or the one Ollama would take it for."""
    if name in served:
        return name
    wanted = canonical(name)
    return next((candidate for candidate in served if canonical(candidate) == wanted), None)


def same_model(name: str, names: Iterable[str]) -> bool:
    """Whether ``name`` names one of ``names`` as Ollama reads them."""
    wanted = canonical(name)
    return any(canonical(other) == wanted for other in names)
