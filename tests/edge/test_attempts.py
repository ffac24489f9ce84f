"""Attempts per client network (edge/attempts.py), as pairing and console sign-in use them."""

from __future__ import annotations

import pytest

from edge.agents.pairing import pairing_limiter
from edge.attempts import AttemptLimiter, client_network
from edge.console.sessions import sign_in_limiter
from edge.errors import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_past_the_limit_are_refused_until_the_bucket_refills() -> None:
    clock = Clock()
    limiter = AttemptLimiter(10, "too_many_tries", "tries", clock=clock)
    for _ in range(10):
        limiter.check("198.51.100.7")
    with pytest.raises(ApiError) as refused:
        limiter.check("198.51.100.7")
    assert (refused.value.status, refused.value.code) == (429, "too_many_tries")
    assert refused.value.message == "too many tries from this address; retry in 6 s"
    assert refused.value.headers["Retry-After"] == "6"  # one attempt back every 6 s
    limiter.check("198.51.100.8")  # another address is not affected
    clock.now += 6
    limiter.check("198.51.100.7")
    with pytest.raises(ApiError):
        limiter.check("198.51.100.7")


def test_ipv6_addresses_are_counted_per_64() -> None:
    limiter = AttemptLimiter(3, "too_many_tries", "tries", clock=Clock())
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"):
        limiter.check(host)
    with pytest.raises(ApiError):
        limiter.check("2001:db8:1:2::77")  # same /64: the same bucket
    limiter.check("2001:db8:1:3::1")  # the next /64 is another network
    assert client_network("::ffff:192.0.2.1") == "192.0.2.1"  # IPv4-mapped: the IPv4 address
    assert client_network("2001:db8::1") == "2001:db8::/64"


def test_the_map_of_networks_stays_bounded() -> None:
    limiter = AttemptLimiter(10, "too_many_tries", "tries", max_networks=1000, clock=Clock())
    for n in range(50_000):
        limiter.check(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert limiter.tracked == 1000


@pytest.mark.parametrize(
    ("limiter", "code", "message"),
    [
        (pairing_limiter(1), "too_many_pairing_attempts", "too many pairing attempts"),
        (sign_in_limiter(1), "too_many_sign_in_attempts", "too many sign-in attempts"),
    ],
)
def test_pairing_and_sign_in_say_what_was_refused(
    limiter: AttemptLimiter, code: str, message: str
) -> None:
    limiter.check(None)  # an unknown peer address: one shared bucket
    with pytest.raises(ApiError) as refused:
        limiter.check(None)
    assert refused.value.code == code
    assert refused.value.message.startswith(message + " from this address; retry in ")
