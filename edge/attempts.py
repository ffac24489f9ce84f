"""Attempts per client network: how pairing codes and console sign-ins resist online guessing.

A client network is an IPv4 address or an IPv6 /64 (one host usually holds a whole /64, so single
IPv6 addresses would be free to rotate). Each network has a bucket of ``limit`` attempts refilled
continuously; the buckets live in an LRU map of at most ``max_networks`` entries, so an attempt
costs O(1) however many addresses try. A network evicted from a full map starts over with a full
bucket, which a caller could only bring about by owning ``max_networks`` other networks.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from edge.errors import ApiError


class AttemptLimiter:
    """At most ``limit`` attempts per ``window`` seconds per client network, successful or not;
    past it, 429 ``code`` saying ``too many {what} from this address`` with ``Retry-After``."""

    def __init__(
        self,
        limit: int,
        code: str,
        what: str,
        window: float = 60.0,
        max_networks: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._rate = limit / window
        self._code = code
        self._what = what
        self._max_networks = max_networks
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # level, updated

    def check(self, address: str | None) -> None:
        """Spend one attempt of ``address``'s network (``None``: the peer's address is unknown,
        and all such attempts share one bucket)."""
        now = self._clock()
        network = client_network(address or "unknown")
        level, updated = self._buckets.pop(network, (float(self._limit), now))
        level = min(float(self._limit), level + (now - updated) * self._rate)
        if level < 1:
            self._buckets[network] = (level, now)
            retry = math.ceil((1 - level) / self._rate)
            raise ApiError(
                429,
                self._code,
                f"too many {self._what} from this address; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        self._buckets[network] = (level - 1, now)  # most recent last
        if len(self._buckets) > self._max_networks:
            self._buckets.popitem(last=False)

    @property
    def tracked(self) -> int:
        """How many networks have a bucket now (at most ``max_networks``)."""
        return len(self._buckets)


def client_network(address: str) -> str:
    """The unit attempts are counted by: the IPv4 address (also when IPv4-mapped), the IPv6
    /64, else the text itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
