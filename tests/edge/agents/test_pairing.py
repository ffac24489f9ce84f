from __future__ import annotations

import pytest

from edge.agents.pairing import AttemptLimiter, client_network
from edge.errors import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_past_the_limit_are_refused_until_the_bucket_refills() -> None:
    clock = Clock()
    limiter = AttemptLimiter(10, clock=clock)
    for _ in range(10):
        limiter.check("198.51.100.7")
    with pytest.raises(ApiError) as refused:
        limiter.check("198.51.100.7")
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "6"  # one attempt back every 6 s
    limiter.check("198.51.100.8")  # another address is not affected
    clock.now += 6
    limiter.check("198.51.100.7")
    with pytest.raises(ApiError):
        limiter.check("198.51.100.7")


def test_ipv6_addresses_are_counted_per_64() -> None:
    limiter = AttemptLimiter(3, clock=Clock())
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"):
        limiter.check(host)
    with pytest.raises(ApiError):
        limiter.check("2001:db8:1:2::77")  # same /64: the same bucket
    limiter.check("2001:db8:1:3::1")  # the next /64 is another network
    assert client_network("::ffff:192.0.2.1") == "192.0.2.1"  # IPv4-mapped: the IPv4 address
    assert client_network("2001:db8::1") == "2001:db8::/64"


def test_the_map_of_networks_stays_bounded() -> None:
    limiter = AttemptLimiter(10, max_networks=1000, clock=Clock())
    for n in range(50_000):
        limiter.check(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert limiter.tracked == 1000
