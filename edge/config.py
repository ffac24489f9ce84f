"""The edge's settings, with every limit in one place (README "Limits")."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from protocol import TunnelLimits

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    domain: str
    data_dir: Path
    public_scheme: str = "https"
    public_port: int = 443
    max_body: int = 16 * MIB
    max_reply_bytes: int = 64 * MIB  # a non-streaming reply is held whole; past it: 502
    request_timeout: float = 600.0  # the whole request, first token to last
    first_token_timeout: float = 300.0  # includes loading the model on the GPU box
    queue_timeout: float = 30.0  # waiting for a free slot on a busy machine
    max_queued: int = 256  # requests waiting for a slot, over all tenants; past it: 503
    drain_timeout: float = 30.0  # on shutdown, how long running streams may take to finish
    audit_flush_interval: float = 1.0  # a kill -9 loses at most this much audit and usage
    audit_retention_days: float = 90.0  # older audit events are pruned (usage is kept)
    # Client connections (edge/http_guard.py, edge/listener.py). A new connection must complete
    # its TLS handshake and first request head within header_timeout of being accepted; a
    # kept-alive one may then wait idle_timeout for its next request, whose head must be complete
    # within header_timeout of its first byte. Running requests (streams, agent tunnels) are
    # never timed by these.
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_connections: int | None = None  # per listener; None: the open-file limit less a reserve
    pairing_ttl: float = 15 * 60.0
    pairing_attempts_per_minute: int = 10
    tunnel: TunnelLimits = field(default_factory=TunnelLimits)
    agent_ca_file: Path | None = None  # a private CA the agent must trust (--self-signed)
    # None: SQLite in data_dir (one node); a postgresql:// URL: PostgreSQL, which several edge
    # nodes may share (docs/ARCHITECTURE.md "State"). Kept out of repr: it may hold a password.
    database_url: str | None = field(default=None, repr=False)
    # None: one node, limits in this process. A redis:// URL: limits, revocations and the node
    # directory shared with every node on that Redis (docs/ARCHITECTURE.md "Several edge
    # nodes"). Kept out of repr: it may hold a password.
    redis_url: str | None = field(default=None, repr=False)
    node_id: str | None = None  # this node's name in the cluster; None: a random one
    # Where agents and the other nodes reach this node itself (not the load balancer's name):
    # agents learn it to hold a second tunnel here, nodes to forward requests here.
    advertise_url: str | None = None
    peer_ca_file: Path | None = None  # a private CA the other nodes' certificates come from
    reservation_ttl: float = 60.0  # a budget reservation its node stops renewing expires then
    # Where GET /metrics is served (README "Operating it"); None: no metrics at all, and
    # nothing counted. Never the public listener.
    metrics_address: tuple[str, int] | None = None

    def tenant_url(self, slug: str) -> str:
        """Where the tenant's clients and agents reach the edge: ``SLUG.DOMAIN``, or the bare
        domain where tenant names cannot resolve (``localhost``, an IP address: trying it on one
        machine), since the key says which tenant a request is for (README "On one machine")."""
        if not self.tenant_hosts_resolve:
            return self.base_url
        return f"{self.public_scheme}://{slug}.{self.domain}{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.public_scheme}://{self.domain}{self._port}"

    @property
    def tenant_hosts_resolve(self) -> bool:
        """Whether ``SLUG.DOMAIN`` names can resolve. Subdomains of ``localhost`` do not for
        most resolvers (glibc, Python, Node), and an IP address has none."""
        name = self.domain.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return False
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return True
        return False

    @property
    def _port(self) -> str:
        default = 443 if self.public_scheme == "https" else 80
        return "" if self.public_port == default else f":{self.public_port}"
