"""Throwaway Redis servers for the tests: Debian's ``redis-server`` in a temporary directory, on a
free loopback port, without persistence unless asked (a restart then loses everything, as a
cache node that is replaced would), stopped and removed at the end.

``start``/``stop`` may be called again: a test restarts the server mid-load. ``stop`` is a
``SIGKILL`` by default (what a crash looks like to the edge), or a clean ``SHUTDOWN``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STARTUP_TIMEOUT = 10.0


def find_redis_server() -> Path | None:
    """Where ``redis-server`` is (Debian's package installs it in /usr/bin), or ``None``."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``url`` is where it listens (database 0)."""

    def __init__(self, program: Path, persist: bool = False) -> None:
        self.program = program
        self.root = Path(tempfile.mkdtemp(prefix="llmtunnel-redis-"))
        self.port = free_port()
        self.persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (nothing when it runs already) and wait until it answers."""
        if self._process is not None and self._process.poll() is None:
            return
        args = [
            str(self.program),
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root)),
            *("--save", "", "--daemonize", "no", "--protected-mode", "yes"),
            *("--appendonly", "yes" if self.persist else "no", "--appendfsync", "no"),
            *("--logfile", str(self.root / "redis.log")),
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read() if self._process.stderr else b""
                raise RuntimeError(f"redis-server exited: {error.decode(errors='replace')}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in time")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, crash: bool = True) -> None:
        """Stop the server: killed at once (``crash``), or asked to shut down cleanly."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if crash:
            process.kill()
        else:
            process.terminate()  # redis-server shuts down cleanly on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def flush(self) -> None:
        """Empty every database (one test's counters must not be another's)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)

    def destroy(self) -> None:
        with contextlib.suppress(OSError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
