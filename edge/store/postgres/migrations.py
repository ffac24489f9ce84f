"""The PostgreSQL schema as numbered migrations, recorded in ``schema_migrations``. Never edit one
that has shipped: add the next.

Its own numbering, not SQLite's: migration 1 is the schema SQLite reached in four steps, in
PostgreSQL's types (``DOUBLE PRECISION`` for Unix seconds, ``BIGINT`` for every integer: SQLite's
INTEGER is 64-bit, so the same numbers fit in both, ``BYTEA``, ``BOOLEAN``).

JSON: ``api_keys.models`` is ``JSONB`` (a small list, compared as a value). A stored response and
its input items are ``JSON``, which keeps the text as written: a stored response is read back
with its keys in the order it was written (``JSONB`` would reorder them), and a ``\\u0000`` a
client sent is kept, as SQLite keeps it (``JSONB`` refuses it).

Names that are listed sorted (slugs, machine, key and alias names, days) are ``COLLATE "C"``:
byte order, as SQLite sorts, whatever the database's locale.

Several edge nodes may start together on one database: ``migrate`` runs under an advisory lock,
so one of them migrates and the others, once it has committed, find nothing left to do.
"""

from __future__ import annotations

import asyncpg

MIGRATIONS: tuple[str, ...] = (
    # 1: the whole schema (SQLite's migrations 1 to 4): tenants and their response storage switch,
    # machines, pairing codes, API keys with their limits and secrets (for rotation), admin keys,
    # usage per key and day, audit events, model aliases, stored responses.
    """
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        slug TEXT COLLATE "C" NOT NULL UNIQUE,
        created_at DOUBLE PRECISION NOT NULL,
        store_responses BOOLEAN NOT NULL DEFAULT false
    );
    CREATE TABLE machines (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT COLLATE "C" NOT NULL,
        public_key BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE UNIQUE INDEX machines_live_name ON machines(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE TABLE pairing_codes (
        code_hash TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        machine_name TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT COLLATE "C" NOT NULL,
        prefix TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        last_used_at DOUBLE PRECISION,
        models JSONB,  -- list of model names; NULL: every model
        budget_tokens BIGINT,
        budget_period TEXT,  -- 'day' | 'week' | 'month' (UTC)
        rpm BIGINT,
        tpm BIGINT,
        machine_id TEXT REFERENCES machines(id)  -- requests route only to this machine
    );
    CREATE UNIQUE INDEX api_keys_live_name ON api_keys(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE INDEX api_keys_machine ON api_keys(machine_id) WHERE machine_id IS NOT NULL;
    CREATE TABLE api_key_secrets (
        secret_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION  -- set by a rotation: the end of this secret's grace period
    );
    CREATE INDEX api_key_secrets_key ON api_key_secrets(key_id);
    CREATE TABLE admin_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id),  -- NULL: the operator, who manages every tenant
        secret_hash TEXT NOT NULL UNIQUE,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION,
        name TEXT COLLATE "C"  -- NULL for the operator key
    );
    CREATE UNIQUE INDEX admin_keys_live_name ON admin_keys(tenant_id, name)
        WHERE revoked_at IS NULL AND name IS NOT NULL;
    CREATE TABLE usage_daily (
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        day TEXT COLLATE "C" NOT NULL,  -- UTC date the request started, YYYY-MM-DD
        tenant_id TEXT NOT NULL,
        requests BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        PRIMARY KEY (key_id, day)
    );
    CREATE INDEX usage_daily_tenant ON usage_daily(tenant_id, day);
    CREATE TABLE audit_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,  -- 'request' | 'admin'
        actor TEXT NOT NULL,  -- the key's name, or 'operator' / 'admin:NAME' for admin actions
        action TEXT NOT NULL,  -- 'POST /v1/chat/completions', 'key.rotated', …
        subject TEXT,  -- what an admin action acted on
        key_id TEXT,
        machine TEXT,
        model TEXT,
        status BIGINT,
        error_code TEXT,
        prompt_tokens BIGINT,
        completion_tokens BIGINT,
        ttft_ms DOUBLE PRECISION,
        duration_ms DOUBLE PRECISION,
        client TEXT,
        user_agent TEXT
    );
    CREATE INDEX audit_events_tenant ON audit_events(tenant_id, at);
    CREATE INDEX audit_events_at ON audit_events(at);
    CREATE TABLE model_aliases (
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        alias TEXT COLLATE "C" NOT NULL,
        model TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant_id, alias)
    );
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        key_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        response JSON NOT NULL,  -- the response object, as written
        input_items JSON NOT NULL  -- list: the conversation before the response's output
    );
    CREATE INDEX responses_tenant ON responses(tenant_id, created_at);
    """,
    # 2: console sessions (edge/console), by a digest of their id; they end with their admin key.
    """
    CREATE TABLE console_sessions (
        session_hash TEXT PRIMARY KEY,
        admin_key_id TEXT NOT NULL REFERENCES admin_keys(id),
        created_at DOUBLE PRECISION NOT NULL,
        last_seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX console_sessions_seen ON console_sessions(last_seen_at);
    """,
    # 3: the id of each API request (its x-request-id, README "Operating it"), so that an audit
    # row can be matched with the edge's and the agent's log lines (SQLite's migration 6).
    """
    ALTER TABLE audit_events ADD COLUMN request_id TEXT;
    """,
)

# pg_advisory_xact_lock's key: any constant every node agrees on ('llmtunnl' in ASCII).
LOCK_KEY = 0x6C6C6D74756E6E6C

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


async def migrate(
    conn: asyncpg.Connection[asyncpg.Record], migrations: tuple[str, ...] = MIGRATIONS
) -> int:
    """Bring the database up to date; returns its schema version.

    One transaction that first takes a transaction-level advisory lock: nodes that start together
    queue on it; the first applies what is missing and records each version, and its commit both
    publishes the schema and releases the lock, so the next finds every version recorded and
    applies nothing. A failing migration rolls back whole (PostgreSQL's DDL is transactional),
    the lock with it. A database a newer node has already taken further is left as it is.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(_VERSIONS)
        found = await conn.fetchval("SELECT COALESCE(max(version), 0) FROM schema_migrations")
        version = int(found)
        for number, script in enumerate(migrations[version:], start=version + 1):
            await conn.execute(script)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", number)
            version = number
    return version
