"""The agent's identity on disk: edge URL, machine id and the Ed25519 private key (0600 JSON)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ValidationError

CONFIG_ENV = "LLMTUNNEL_AGENT_CONFIG"


class ConfigError(Exception):
    """The agent config is missing, unreadable or unsafe; the message says what to do."""


class AgentConfig(BaseModel):
    edge_url: str
    machine_id: str
    machine_name: str
    tenant: str
    private_key: str  # base64 of the raw 32-byte Ed25519 seed
    ca_file: str | None = None

    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(self.private_key))

    @property
    def connect_url(self) -> str:
        """The WebSocket URL agents dial: wss:// for https:// edges."""
        parts = urlsplit(self.edge_url)
        scheme = {"https": "wss", "http": "ws"}[parts.scheme]
        return urlunsplit((scheme, parts.netloc, "/agent/connect", "", ""))

    def ssl_context(self) -> ssl.SSLContext | None:
        return client_ssl_context(self.edge_url, self.ca_file)


def client_ssl_context(edge_url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """Certificate and hostname verification always on; ``ca_file`` trusts a private CA."""
    if urlsplit(edge_url).scheme != "https":
        return None
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def normalize_edge_url(url: str) -> str:
    """``https://acme.example.com/v1/`` → ``https://acme.example.com``; refuses other schemes."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(f"edge URL must look like https://HOST[:PORT], got {url!r}")
    return urlunsplit((parts.scheme, parts.netloc.lower(), "", "", ""))


def new_key() -> tuple[Ed25519PrivateKey, str]:
    """A fresh key pair: the private key and the base64 public key to send when pairing."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key, base64.b64encode(public).decode()


def default_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "llmtunnel" / "agent.json"


def load(path: Path) -> AgentConfig:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"no agent config at {path}; run `llmtunnel agent pair CODE --edge URL` first"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds the machine's private key but is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
        )
    try:
        return AgentConfig.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"{path} is not a valid agent config: {exc}") from None


def save(config: AgentConfig, path: Path) -> None:
    """Write atomically; the file is 0600 from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(config.model_dump(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
