"""The connection pool every query group shares, its transactions, and how failures are named."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.exceptions import InternalClientError

from edge.store.interface import Clock
from edge.store.postgres.migrations import migrate
from edge.store.records import Conflict, OpenFailed, RejectedRow, StoreError, StoreUnavailable
from edge.store.urls import redacted

if TYPE_CHECKING:  # generic only in asyncpg's stubs
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

CONNECT_TIMEOUT = 10.0  # opening one connection
ACQUIRE_TIMEOUT = 10.0  # waiting for a free connection of the pool: past it, unavailable now
COMMAND_TIMEOUT = 30.0  # one statement; a stalled server is unavailable, not a hung request
CLOSE_TIMEOUT = 10.0
MIN_CONNECTIONS = 1
MAX_CONNECTIONS = 10

_SETTINGS = {"application_name": "llmtunnel-edge"}

# SQLSTATE classes and codes that say the database cannot serve now, whatever the row: a lost or
# refused connection (08, 28, 3D), a transaction to retry (40: serialization failure,
# deadlock), no space, memory or connection slots (53), shutdown, restart or a timeout (57),
# I/O errors (58), a read-only server (25006: a standby after a failover), a lock or object in
# use (55P03, 55006), a grant taken away (42501), an internal error (XX).
_NOW_CLASSES = frozenset({"08", "28", "3D", "40", "53", "57", "58", "XX"})
_NOW_STATES = frozenset({"25006", "55P03", "55006", "42501"})


def classify(exc: BaseException) -> StoreError | None:
    """``StoreUnavailable`` (now) or ``RejectedRow`` (ever) for a failure of the database or its
    driver; ``None`` for anything else, which is left as it is.

    Rows: a data exception (class 22: a number out of range, text that is not valid UTF-8 or
    holds a NUL, a value of the wrong type, which asyncpg reports as 22000 before sending it), a
    violated constraint (23), and any other refusal of the statement, as SQLite's
    ``ProgrammingError`` is a row error there."""
    if isinstance(exc, StoreError):
        return None
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if state[:2] in _NOW_CLASSES or state in _NOW_STATES:
            return StoreUnavailable(_message(exc))
        return RejectedRow(f"{type(exc).__name__}: {_message(exc)}")
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | InternalClientError):
        # Refused, reset or timed-out connections; asyncpg's own "connection is closed", and its
        # "cannot switch to state …; another operation is in progress" from a connection that a
        # server shutting down cut mid-statement (seen in the cluster's restart test).
        return StoreUnavailable(_message(exc))
    if isinstance(exc, ValueError | TypeError | OverflowError):
        return RejectedRow(f"{type(exc).__name__}: {_message(exc)}")
    return None


def _message(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def classified(conflict: str | None = None) -> Iterator[None]:
    """Name what is raised inside: ``Conflict(conflict)`` for a violated constraint when given
    (a taken name: SQLite's ``IntegrityError`` becomes one in the same places), else what
    ``classify`` says; anything it does not name goes through as it is."""
    try:
        yield
    except Exception as exc:
        if conflict is not None and isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            raise Conflict(conflict) from None
        named = classify(exc)
        if named is None:
            raise
        raise named from exc


@contextlib.contextmanager
def conflicts(message: str) -> Iterator[None]:
    """``Conflict(message)`` for a violated constraint inside a block that learns the name only
    part-way (inside a transaction, whose own classification lets the ``Conflict`` through)."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError:
        raise Conflict(message) from None


# What opening raises for a server that cannot be reached or refuses us, or a malformed URL.
_OPEN_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Db:
    """The pool (asyncpg), the clock, and the schema version found when it was opened."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], clock: Clock, version: int) -> None:
        self.pool = pool
        self.clock = clock
        self.schema_version = version

    @classmethod
    async def open(
        cls,
        url: str,
        clock: Clock = time.time,
        *,
        min_connections: int = MIN_CONNECTIONS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> Db:
        """Connect, migrate (once, under a lock, however many nodes start together), then open
        the pool. ``OpenFailed``, one line naming the URL without its password, when the server
        cannot be reached, refuses the credentials or the database, or cannot be migrated."""
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, server_settings=_SETTINGS)
            try:
                version = await migrate(conn)
            finally:
                await conn.close(timeout=CLOSE_TIMEOUT)
            pool = await asyncpg.create_pool(
                url,
                min_size=min_connections,
                max_size=max_connections,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                max_inactive_connection_lifetime=300.0,
                server_settings=_SETTINGS,
            )
        except _OPEN_ERRORS as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else _message(exc)
            raise OpenFailed(f"cannot open the database {redacted(url)}: {reason}") from None
        return cls(pool, clock, version)

    async def close(self) -> None:
        """Let the connections in use come back (for ``CLOSE_TIMEOUT`` at most), then close."""
        try:
            await asyncio.wait_for(self.pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            self.pool.terminate()

    @contextlib.asynccontextmanager
    async def connection(self, conflict: str | None = None) -> AsyncIterator[Connection]:
        """A connection of the pool, for statements that need no transaction together."""
        with classified(conflict):
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self, conflict: str | None = None) -> AsyncIterator[Connection]:
        """A connection in a transaction: committed when the block ends, rolled back on *any*
        exception (cancellation included); the connection goes back to the pool either way,
        reset (asyncpg rolls back what is left open, or closes a connection it cannot reset)."""
        with classified(conflict):
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, conn.transaction():
                yield conn

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(query, *args)

    async def execute(self, query: str, *args: object, conflict: str | None = None) -> int:
        """Run one statement; returns how many rows it changed."""
        async with self.connection(conflict) as conn:
            return changed(await conn.execute(query, *args))


def changed(status: str) -> int:
    """The row count of a command tag: ``UPDATE 3`` → 3, ``INSERT 0 1`` → 1."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0
