"""``llmtunnel edge serve`` as an operator starts it, with a permissive umask and a low soft
open-file limit: what it leaves on disk, the limit it runs with, and what reaches its log when a
client sends garbage carrying a key."""

from __future__ import annotations

import json
import resource
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edge.listener import default_max_connections

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _wait_until_serving(url: str, ca: Path, edge: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert edge.poll() is None, "the edge exited"
        if ca.exists():
            try:
                httpx.get(url, verify=ssl.create_default_context(cafile=str(ca)), timeout=1)
                return
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def _bad_request(port: int, ca: Path, key: str) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(
            b"GET /admin/v1/tenants HTTP/1.1\r\nHost: localhost\r\n"
            + f"Authorization: Bearer {key[:15]}\x01{key[15:]}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
        return answer


def test_edge_serve_keeps_its_files_private_its_limit_high_and_its_log_clean(
    tmp_path: Path,
) -> None:
    port, data = _free_port(), tmp_path / "edge"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = min(hard, 512)
    edge = subprocess.Popen(
        [
            "sh", "-c", f'ulimit -Sn {soft} && umask 022 && exec "$@"', "sh",
            sys.executable, "-m", "llmtunnel", "edge", "serve", "--domain", "example.test",
            "--listen", f"127.0.0.1:{port}", "--data-dir", str(data), "--self-signed",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        ca = data / "tls" / "ca.pem"
        _wait_until_serving(f"https://localhost:{port}/healthz", ca, edge)

        # Raised from soft to hard at start, and the connection cap sized below it.
        assert resource.prlimit(edge.pid, resource.RLIMIT_NOFILE) == (hard, hard)

        # The data directory, its database and secrets, and the self-signed CA's keys: private.
        assert _mode(data) == _mode(data / "tls") == 0o700
        for name in ("edge.db", "edge.db-wal", "edge.db-shm", "server.secret", "admin.key"):
            assert _mode(data / name) == 0o600, name
        for name in ("key.pem", "ca-key.pem"):
            assert _mode(data / "tls" / name) == 0o600, name
        for name in ("cert.pem", "ca.pem"):
            assert _mode(data / "tls" / name) == 0o644, name

        # 15 unparsable requests carrying the operator key.
        key = (data / "admin.key").read_text().strip()
        for _ in range(15):
            head, _, body = _bad_request(port, ca, key).partition(b"\r\n\r\n")
            assert head.split()[1] == b"400"
            assert json.loads(body)["error"]["code"] == "bad_request"
            assert key[12:20].encode() not in head + body
    finally:
        edge.send_signal(signal.SIGTERM)
        output, _ = edge.communicate(timeout=30)
    assert edge.returncode == 0, output

    assert f"accepting at most {default_max_connections(hard)} connections" in output
    secret = key.removeprefix("sk-lt-admin-")
    assert not [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in output]
    lines = output.splitlines()
    bad = [line for line in lines if "bad request from 127.0.0.1" in line]
    assert len(bad) == 10  # the log's rate limit: 10 a minute of one kind…
    summaries = [line for line in lines if "suppressed" in line]
    assert len(summaries) == 1 and "suppressed 5 similar messages" in summaries[0]  # …then a sum
