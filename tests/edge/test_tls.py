"""Self-signed bundle, real TLS handshakes on loopback, and certificate reloading."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from edge.tls import (
    CertificateReloader,
    TLSConfigError,
    client_ssl_context,
    ensure_self_signed,
    server_ssl_context,
)


def test_bundle_has_the_right_names_and_private_keys(tmp_path: Path) -> None:
    bundle = ensure_self_signed(tmp_path, "example.com")
    cert = x509.load_pem_x509_certificate(bundle.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "example.com",
        "*.example.com",
        "localhost",
    }
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    for key in (bundle.key, tmp_path / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_bundle_is_reused_and_remade_for_another_domain(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, "example.com")
    cert_bytes = first.cert.read_bytes()
    assert ensure_self_signed(tmp_path, "example.com").cert.read_bytes() == cert_bytes
    assert ensure_self_signed(tmp_path, "example.org").cert.read_bytes() != cert_bytes


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, CertificateReloader, Path]]:
    bundle = ensure_self_signed(tmp_path / "one", "example.com")
    reloader = CertificateReloader(bundle.cert, bundle.key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=reloader.context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, reloader, bundle.ca_cert
    finally:
        server.close()
        await server.wait_closed()


async def _peer_serial(port: int, ca: Path, hostname: str) -> int:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ssl_context(ca), server_hostname=hostname
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert await reader.read() == b"ok"
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_handshake_verifies_names_and_ca(
    tls_server: tuple[int, CertificateReloader, Path], tmp_path: Path
) -> None:
    port, _, ca = tls_server
    assert await _peer_serial(port, ca, "acme.example.com")
    assert await _peer_serial(port, ca, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        await _peer_serial(port, ca, "acme.example.org")
    other_ca = ensure_self_signed(tmp_path / "other", "example.com").ca_cert
    with pytest.raises(ssl.SSLCertVerificationError):
        await _peer_serial(port, other_ca, "acme.example.com")


async def test_renewed_certificate_is_served_without_restart(
    tls_server: tuple[int, CertificateReloader, Path], tmp_path: Path
) -> None:
    port, reloader, ca = tls_server
    before = await _peer_serial(port, ca, "acme.example.com")
    assert not reloader.reload_if_changed()
    # A renewal: new certificate and key (here from a new CA) written over the served files.
    renewed_dir = tmp_path / "renewed"
    shutil.copytree(tmp_path / "one", renewed_dir)
    (renewed_dir / "cert.pem").unlink()
    renewed = ensure_self_signed(renewed_dir, "example.com")
    shutil.copy(renewed.cert, tmp_path / "one" / "cert.pem")
    shutil.copy(renewed.key, tmp_path / "one" / "key.pem")
    shutil.copy(renewed.ca_cert, tmp_path / "one" / "ca.pem")
    assert reloader.reload_if_changed()
    after = await _peer_serial(port, tmp_path / "one" / "ca.pem", "acme.example.com")
    assert after != before


async def test_a_broken_replacement_keeps_the_old_certificate(
    tls_server: tuple[int, CertificateReloader, Path], tmp_path: Path
) -> None:
    port, reloader, ca = tls_server
    before = await _peer_serial(port, ca, "acme.example.com")
    (tmp_path / "one" / "cert.pem").write_text("not a certificate")
    assert not reloader.reload_if_changed()
    assert await _peer_serial(port, ca, "acme.example.com") == before


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match=r"nothing\.pem"):
        server_ssl_context(tmp_path / "nothing.pem", tmp_path / "key.pem")
