from __future__ import annotations

import pytest

from edge.auth import host_slug


@pytest.mark.parametrize(
    ("host", "slug"),
    [
        ("acme.example.com", "acme"),
        ("ACME.Example.com:8443", "acme"),
        ("acme.example.com.", "acme"),
        ("example.com", None),
        ("localhost:8443", None),
        ("127.0.0.1:8443", None),
        ("[::1]:8443", None),
        ("::1", None),
        ("acme.example.org", None),
        ("evil-example.com", None),
    ],
)
def test_host_slug(host: str, slug: str | None) -> None:
    assert host_slug(host, "example.com") == slug
