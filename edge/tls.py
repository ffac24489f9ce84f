"""TLS for the edge: a self-signed CA for trying it out, server contexts, certificate reloading.

``ensure_self_signed`` makes a local CA and a certificate for ``DOMAIN``, ``*.DOMAIN``,
``localhost`` and the loopback addresses, signed by it (ECDSA P-256). ``CertificateReloader`` keeps
the server's ``SSLContext`` and loads renewed files into it, so new handshakes use the new chain
without a restart.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)


class TLSConfigError(ValueError):
    """A certificate or key file is missing, unreadable or does not match; the message names it."""


@dataclass(frozen=True, slots=True)
class SelfSignedBundle:
    ca_cert: Path
    cert: Path
    key: Path


def _write(path: Path, data: bytes, private: bool) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _names(domain: str) -> list[x509.GeneralName]:
    return [
        x509.DNSName(domain),
        x509.DNSName(f"*.{domain}"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]


def _still_valid(bundle: SelfSignedBundle, domain: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(bundle.cert.read_bytes())
        x509.load_pem_x509_certificate(bundle.ca_cert.read_bytes())
    except (OSError, ValueError):
        return False
    if not bundle.key.exists():
        return False
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7)
    return set(sans) == set(_names(domain)) and cert.not_valid_after_utc > soon


def ensure_self_signed(directory: Path, domain: str) -> SelfSignedBundle:
    """A local CA and a server certificate for ``domain`` in ``directory``; reused while valid."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle = SelfSignedBundle(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    if _still_valid(bundle, domain):
        return bundle
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"llmtunnel local CA ({domain})")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(_names(domain)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / "ca-key.pem", _key_pem(ca_key), private=True)
    _write(bundle.key, _key_pem(key), private=True)
    _write(bundle.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(bundle.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    return bundle


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    for path in (cert, key):
        if not path.is_file():
            raise TLSConfigError(f"TLS file {path} does not exist")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"cannot load certificate {cert} with key {key}: {exc}") from None


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving ``cert`` (full chain, PEM) with ``key``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key)
    return context


def client_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifies certificate and host name; trusts only ``ca_file`` when given, else the system."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class CertificateReloader:
    """The server's context, reloaded in place when the certificate or key file changes."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._cert = cert
        self._key = key
        self.context = server_ssl_context(cert, key)
        self._seen = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[int, int, int], ...]:
        stats = []
        for path in (self._cert, self._key):
            try:
                st = path.stat()
                stats.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append((0, 0, 0))
        return tuple(stats)

    def reload_if_changed(self) -> bool:
        """Reload when either file changed on disk; a broken replacement keeps the old chain."""
        current = self._fingerprint()
        if current == self._seen:
            return False
        self._seen = current
        try:
            # Validate on a scratch context first: a half-written pair must not break the live one.
            server_ssl_context(self._cert, self._key)
            self.context.load_cert_chain(self._cert, self._key)
        except (TLSConfigError, ssl.SSLError, OSError) as exc:
            log.warning("keeping the current certificate: %s", exc)
            return False
        log.info("reloaded TLS certificate from %s", self._cert)
        return True

    async def watch(self, interval: float = 30.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
