from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig


def _config(domain: str, scheme: str = "https", port: int = 443) -> EdgeConfig:
    return EdgeConfig(
        domain=domain, data_dir=Path("/nowhere"), public_scheme=scheme, public_port=port
    )


def test_tenants_get_their_own_host_under_a_real_domain() -> None:
    assert _config("example.com").tenant_url("acme") == "https://acme.example.com"
    assert _config("example.com", port=8443).tenant_url("acme") == "https://acme.example.com:8443"
    assert _config("example.com", "http", 80).tenant_url("acme") == "http://acme.example.com"


@pytest.mark.parametrize("domain", ["localhost", "LOCALHOST", "box.localhost", "127.0.0.1", "::1"])
def test_on_one_machine_every_tenant_shares_the_host_that_resolves(domain: str) -> None:
    # acme.localhost resolves neither for Python nor for Node: the URL printed must work as
    # printed, and the key tells the tenants apart.
    config = _config(domain, port=8443)
    assert config.tenant_url("acme") == config.base_url == f"https://{domain}:8443"
