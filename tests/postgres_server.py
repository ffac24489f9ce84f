"""Throwaway PostgreSQL servers for the tests: ``initdb`` in a temporary directory, a free loopback
port, password authentication, durability off (a test database never outlives its run), stopped
and removed at the end. PostgreSQL refuses to run as root: as root, its commands run as the
``postgres`` user, which owns the directory.

The cluster sorts text like a typical production database (ICU ``en-US``, where punctuation
and case weigh less than letters), so that a query that forgets byte order shows it.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "llmtunnel"
TESTS_DATABASE = "llmtunnel_tests"


def find_bindir() -> Path | None:
    """Where ``initdb``, ``pg_ctl`` and ``psql`` are: the newest Debian-packaged PostgreSQL, or
    ``pg_config --bindir``, or ``initdb`` on PATH; ``None`` when PostgreSQL is not installed."""

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if Path(bindir, "initdb").exists():
            return Path(bindir)
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and Path(out.stdout.strip(), "initdb").exists():
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One cluster; ``start``/``stop`` may be called again (a test stops it mid-run)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # As root, in /tmp: the postgres user must reach it, which a root-only TMPDIR forbids.
        where = "/tmp" if os.geteuid() == 0 else None  # noqa: S108
        self.root = Path(tempfile.mkdtemp(prefix="llmtunnel-pg-", dir=where))
        self.data = self.root / "data"
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self._names = itertools.count(1)
        self._tests_database = False
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", USER, "--pwfile", str(pwfile)),
            *("--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8"),
            *self._locale_options(),
            "--no-sync",
        )
        pwfile.unlink()

    def _locale_options(self) -> list[str]:
        out = self._run("initdb", "--version").stdout
        match = re.search(r"(\d+)", out)
        if match and int(match.group(1)) >= 15:
            return ["--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"]
        return ["--locale=C.UTF-8"]

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._as, str(self.bindir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port} -c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-F -c synchronous_commit=off -c full_page_writes=off",  # durability: not here
                "-c max_connections=300",
            ]
        )
        log = self.root / "server.log"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "30", "-o", options, "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{USER}:{secret}@127.0.0.1:{self.port}/{database}"

    def psql(self, database: str, sql: str) -> str:
        """Run ``sql`` as the superuser; returns its unaligned output."""
        command = [
            str(self.bindir / "psql"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database),
            *("-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql),
        ]
        env = {**os.environ, "PGPASSWORD": self.password}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def new_schema(self) -> str:
        """The URL of a new, empty schema of the tests' database, as if it were a database of
        its own (``search_path`` in the URL, which asyncpg sends as a setting): creating one
        takes a millisecond where ``CREATE DATABASE`` takes a quarter of a second."""
        if not self._tests_database:
            self.psql("postgres", f"CREATE DATABASE {TESTS_DATABASE}")
            self._tests_database = True
        name = f"test_{next(self._names)}"
        self.psql(TESTS_DATABASE, f"CREATE SCHEMA {name}")
        return f"{self.url(TESTS_DATABASE)}?search_path={name}"

    def drop_schema(self, url: str) -> None:
        name = url.rpartition("search_path=")[2]
        self.psql(TESTS_DATABASE, f"DROP SCHEMA IF EXISTS {name} CASCADE")
