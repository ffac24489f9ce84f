"""The agent's login to its edge (PROTOCOL.md §3): the sans-I/O ``AgentLogin`` over a transport.

The agent signs with the machine key from its config, and only for the host it dialed: an edge
that names another host in its CHALLENGE is refused, so that a signature made for one edge
cannot be relayed to another.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

from agent.config import AgentConfig
from agent.transport import WebsocketsTransport
from llmtunnel.tunnel import Transport, agent_login, agent_probe
from protocol import AgentLogin, Connection, Hello, Ready, Role
from protocol.codec import AGENT_MAX_RECEIVE_FRAME

AGENT_VERSION = "0.1.0"
LOGIN_TIMEOUT = 15.0  # seconds the whole login may take (the edge allows 10)


async def login(
    transport: Transport,
    config: AgentConfig,
    max_concurrency: int,
    models: list[dict[str, Any]],
    timeout: float = LOGIN_TIMEOUT,
) -> tuple[Connection, Ready]:
    """CHALLENGE → AUTH → READY → HELLO; the connection, open, and the edge's READY. Raises
    ``ProtocolError``: ``ClosedByPeer`` when the edge turned the machine away."""
    conn = Connection(Role.AGENT, max_receive_frame=AGENT_MAX_RECEIVE_FRAME)
    hello = Hello(AGENT_VERSION, max_concurrency, models)
    machine = AgentLogin(
        conn, dialed_host(config.edge_url), config.machine_id, config.signing_key().sign, hello
    )
    ready = await agent_login(transport, machine, timeout)
    return conn, ready


def dial(config: AgentConfig, timeout: float) -> connect:
    """The WebSocket to the edge (``async with``), as the tunnel wants it."""
    return connect(
        config.connect_url,
        ssl=config.ssl_context(),
        open_timeout=timeout,
        ping_interval=None,  # liveness is the tunnel's own PING/PONG (PROTOCOL.md §9)
        compression=None,  # tokens are short; deflate would cost more CPU than it saves
        max_size=AGENT_MAX_RECEIVE_FRAME,
        user_agent_header="llmtunnel-agent",
    )


async def check_accepted(config: AgentConfig, timeout: float = LOGIN_TIMEOUT) -> None:
    """Log in as far as READY and leave: returns when the edge accepts this machine, raises
    ``ClosedByPeer`` (``auth_failed``: revoked or unknown) when it does not, or the error that
    kept the edge from answering. A running agent's tunnel is left as it is."""
    async with dial(config, timeout) as ws:
        transport = WebsocketsTransport(ws)
        conn = Connection(Role.AGENT, max_receive_frame=AGENT_MAX_RECEIVE_FRAME)
        hello = Hello(AGENT_VERSION, 1, [])  # never sent: the probe stops before HELLO
        machine = AgentLogin(
            conn, dialed_host(config.edge_url), config.machine_id, config.signing_key().sign, hello
        )
        await agent_probe(transport, machine, timeout)
        await transport.close(1000, "status probe")


def dialed_host(url: str) -> str:
    """The host of ``url`` as a client sends it in ``Host``: lowercase, the port only when it
    is not the scheme's, an IPv6 address in brackets."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}[parts.scheme]
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"
