"""Which ``Host`` an agent may log in through: the edge's own names only.

The login's signature covers the host the agent dialed, and the edge puts the ``Host`` it was
sent into CHALLENGE (PROTOCOL.md §3). If the edge took any ``Host``, a rogue server an agent was
tricked into dialing could relay the agent's login, signed for the rogue's name, to a real
node with that name in ``Host``; refusing names that are not the edge's own ends that relay.
The edge's names: its ``--domain``, every subdomain of it (the tenants' ``SLUG.DOMAIN``), and
this node's ``--advertise`` host. A loopback name (``localhost``, 127.0.0.0/8, ::1) is also
taken, but only on a connection from loopback: a signature for it can only come from an agent
that dialed its own machine, and relaying it needs a relay on this node's machine, so
``--domain localhost`` setups and tests keep working while a remote relay gains nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class AgentHosts:
    domain: str
    advertised: str | None = None  # the host of --advertise, if any

    @classmethod
    def of(cls, domain: str, advertise_url: str | None) -> AgentHosts:
        advertised = urlsplit(advertise_url).hostname if advertise_url else None
        return cls(_name(domain), _name(advertised) if advertised else None)

    def accepts(self, host: str, remote: str | None) -> bool:
        """Whether an agent may log in through ``host`` (a ``Host`` header, port and all),
        on a connection from ``remote``."""
        name = _name(_without_port(host))
        if not name:
            return False
        if name == self.domain or name.endswith("." + self.domain) or name == self.advertised:
            return True
        return _is_loopback(name) and remote is not None and _is_loopback(remote)


def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8443
        return host[1 : host.find("]")] if "]" in host else ""
    name, colon, port = host.rpartition(":")
    return name if colon and port.isascii() and port.isdigit() and ":" not in name else host


def _name(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
