"""The agent's login: which host it signs for (PROTOCOL.md §3)."""

from __future__ import annotations

from agent.login import dialed_host


def test_the_dialed_host_is_what_clients_send_as_host() -> None:
    assert dialed_host("https://Acme.Example.com") == "acme.example.com"
    assert dialed_host("https://acme.example.com:443") == "acme.example.com"
    assert dialed_host("https://localhost:8443") == "localhost:8443"
    assert dialed_host("http://[::1]:8080") == "[::1]:8080"
