"""The agent's backends as the command line gives them (README "Several runtimes"):

    --backend KIND=URL[,key-file=PATH]   repeated; KIND is ollama or openai
    --backend-key-file PATH              the key of every openai backend that names none
    --capabilities MODEL=CAP[,CAP…]      repeated; what an OpenAI-compatible runtime's model can do
    --ollama URL                         alone, as before: one ollama backend

Everything wrong is a ``ConfigError`` with one line that says what to write instead; a runtime
that does not answer is not (it may start after the agent: the machine is degraded until it
does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.backend import Backend
from agent.backends import Backends, Named
from agent.config import ConfigError
from agent.ollama import OllamaBackend, base_url
from agent.openai_backend import OpenAIBackend
from agent.openai_models import CAPABILITIES

KINDS = ("ollama", "openai")
_USAGE = (
    "--backend takes KIND=URL[,key-file=PATH] with KIND ollama or openai (vLLM, SGLang,"
    " llama.cpp and LM Studio are all openai), e.g. --backend openai=http://127.0.0.1:8000/v1"
)


@dataclass(frozen=True, slots=True)
class BackendSpec:
    kind: str
    url: str
    key_file: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.url}"


def parse_backend(text: str) -> BackendSpec:
    kind, equals, rest = text.partition("=")
    kind = kind.strip().lower()
    if not equals or kind not in KINDS or not rest.strip():
        raise ConfigError(f"{_USAGE}; got {text!r}")
    url, *options = rest.split(",")
    key_file = None
    for option in options:
        name, equals, value = option.partition("=")
        if name.strip() != "key-file" or not equals or not value.strip():
            raise ConfigError(
                f"--backend {text!r}: {option!r} is not an option; the one there is is"
                " key-file=PATH"
            )
        key_file = Path(value.strip()).expanduser()
    return BackendSpec(kind, openai_url(url) if kind == "openai" else ollama_url(url), key_file)


def openai_url(url: str) -> str:
    """An OpenAI base URL: http(s)://HOST[:PORT]/…/v1."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"an openai backend's URL looks like http://HOST:PORT/v1; got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        raise ConfigError(
            f"an openai backend's URL is the runtime's OpenAI base URL, which ends in /v1 (vLLM:"
            f" http://127.0.0.1:8000/v1, llama.cpp: http://127.0.0.1:8080/v1); got {url!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def ollama_url(url: str) -> str:
    """Ollama's own address, as ``OLLAMA_HOST`` is read (a bare host:port is fine)."""
    text = url.strip()
    scheme = text.partition("://")[0] if "://" in text else "http"
    if scheme not in ("http", "https"):
        raise ConfigError(f"an ollama backend's URL looks like http://HOST:PORT; got {url!r}")
    address = base_url(text)
    if address.rstrip("/").endswith("/v1"):
        raise ConfigError(
            f"{url!r} is Ollama's OpenAI layer: give Ollama's own address (http://127.0.0.1:11434)"
            " for --backend ollama=, or go through that layer with --backend openai=…/v1"
        )
    return address


def specs(
    backends: list[str], ollama: str, ollama_given: bool, key_file: Path | None
) -> list[BackendSpec]:
    """The backends to run: ``--backend`` ones, or the one ``--ollama`` names."""
    if backends and ollama_given:
        raise ConfigError(
            "--ollama and --backend together: give Ollama as --backend ollama=URL beside the others"
        )
    if not backends:
        if key_file is not None:
            raise ConfigError(
                "--backend-key-file is the key of an openai backend, and none is configured"
                " (--backend openai=URL/v1)"
            )
        return [BackendSpec("ollama", ollama_url(ollama))]
    parsed = [parse_backend(text) for text in backends]
    seen: set[str] = set()
    for spec in parsed:
        if spec.url in seen:
            raise ConfigError(f"the backend {spec.url} is given twice")
        seen.add(spec.url)
    if key_file is not None:
        if not any(spec.kind == "openai" for spec in parsed):
            raise ConfigError("--backend-key-file is the key of an openai backend; none is given")
        parsed = [
            BackendSpec(s.kind, s.url, key_file) if s.kind == "openai" and s.key_file is None else s
            for s in parsed
        ]
    return parsed


def parse_capabilities(items: list[str]) -> dict[str, tuple[str, ...]]:
    """``MODEL=CAP,CAP`` entries (a model name may hold ``=``; a capability cannot)."""
    known = ", ".join(sorted(CAPABILITIES))
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        model, equals, text = item.rpartition("=")
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        if not equals or not model.strip() or not names:
            raise ConfigError(f"--capabilities takes MODEL=CAP[,CAP…] ({known}); got {item!r}")
        unknown = [name for name in names if name not in CAPABILITIES]
        if unknown:
            raise ConfigError(f"--capabilities {item!r}: unknown {unknown[0]!r}; they are {known}")
        out[model.strip()] = names
    return out


def read_key(path: Path) -> str:
    """A runtime's API key, alone in its file (kept out of the process list)."""
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if not key or any(c.isspace() for c in key):
        raise ConfigError(f"the key file {path} must hold the key alone, on one line")
    return key


def build(
    wanted: list[BackendSpec], capabilities: Mapping[str, tuple[str, ...]], max_connections: int
) -> list[Named]:
    """The backends, keys read (each runtime gets its own pool of ``max_connections``)."""
    made: list[Named] = []
    for spec in wanted:
        key = read_key(spec.key_file) if spec.key_file is not None else None
        backend: Backend
        if spec.kind == "openai":
            backend = OpenAIBackend(spec.url, max_connections, key, capabilities)
        else:
            backend = OllamaBackend(spec.url, max_connections, api_key=key)
        made.append(Named(spec.label, backend))
    return made


def combined(backends: list[Named]) -> Backend:
    """What the session runs on: the one backend itself, or the router over several."""
    return backends[0].backend if len(backends) == 1 else Backends(backends)
