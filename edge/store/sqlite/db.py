"""The one SQLite connection every query group shares, and its transactions."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from edge.store.records import RejectedRow, StoreUnavailable
from edge.store.sqlite.migrations import MIGRATIONS

Clock = Callable[[], float]

# What the sqlite3 module raises for a row it can never store, as opposed to a moment it cannot.
_ROW_ERRORS = (
    OverflowError,
    ValueError,
    TypeError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)


class Db:
    """The connection (WAL, autocommit outside explicit transactions) and the clock."""

    def __init__(self, path: Path | str, clock: Clock = time.time) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.clock = clock
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self.conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    @property
    def schema_version(self) -> int:
        (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        return int(version)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on *any* exception: the connection is
        shared by every tenant, so a transaction left open by one bad request would wedge them
        all."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def classified(self) -> Iterator[None]:
        """Name a failure for callers that retry: ``StoreUnavailable`` (now) or
        ``RejectedRow`` (ever)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        except _ROW_ERRORS as exc:
            raise RejectedRow(f"{type(exc).__name__}: {exc}") from exc
