"""``llmtunnel agent pair``: trade a one-time code for this machine's identity at the edge."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent import config as agent_config
from agent.config import AgentConfig, ConfigError
from agent.diagnose import explain


class PairingFailed(Exception):
    """The edge refused the code or could not be reached; the message says why."""


async def pair(code: str, edge_url: str, ca_file: str | None) -> AgentConfig:
    """Generate a key pair, register its public half with the code, return the new config."""
    edge_url = agent_config.normalize_edge_url(edge_url)
    key, public_key = agent_config.new_key()
    body = await _post(
        edge_url + "/agent/pair", {"code": code, "public_key": public_key}, edge_url, ca_file
    )
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return AgentConfig(
        edge_url=edge_url,
        machine_id=body["machine_id"],
        machine_name=body["machine_name"],
        tenant=body["tenant"],
        private_key=base64.b64encode(seed).decode(),
        ca_file=ca_file,
    )


async def _post(url: str, payload: dict[str, str], edge_url: str, ca_file: str | None) -> Any:
    try:
        ssl_context = agent_config.client_ssl_context(edge_url, ca_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use CA file {ca_file}: {exc}") from None
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, json=payload, ssl=ssl_context or True) as response,
        ):
            body = await response.json(content_type=None)
            if response.status >= 400:
                message = body.get("error", {}).get("message") if isinstance(body, dict) else None
                raise PairingFailed(f"the edge refused pairing ({response.status}): {message}")
            return body
    except aiohttp.ClientError as exc:
        raise PairingFailed(explain(exc, edge_url)) from None
    except TimeoutError:
        raise PairingFailed(f"the edge at {edge_url} did not answer within 30 s") from None
