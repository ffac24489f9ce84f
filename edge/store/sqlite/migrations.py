"""The SQLite schema as numbered migrations, applied in order and recorded in
``PRAGMA user_version``. Never edit one that has shipped: add the next."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: tenants, machines, pairing codes, API keys, operator and tenant admin keys.
    """
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE machines (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        public_key BLOB NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE UNIQUE INDEX machines_live_name ON machines(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE TABLE pairing_codes (
        code_hash TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        machine_name TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL
    );
    CREATE UNIQUE INDEX api_keys_live_name ON api_keys(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE TABLE admin_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id),  -- NULL: the operator, who manages every tenant
        secret_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    # 2: key limits and machine binding; secrets in their own table so that a rotated key keeps
    # its old secret through a grace period; usage per key and day; audit events. api_keys is
    # rebuilt without its secret column (SQLite cannot drop a UNIQUE column in place).
    """
    CREATE TEMP TABLE old_key_secrets AS SELECT id, secret_hash, created_at FROM api_keys;
    CREATE TABLE api_keys_v2 (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL,
        models TEXT,  -- JSON list of model names; NULL: every model
        budget_tokens INTEGER,
        budget_period TEXT,  -- 'day' | 'week' | 'month' (UTC)
        rpm INTEGER,
        tpm INTEGER,
        machine_id TEXT REFERENCES machines(id)  -- requests route only to this machine
    );
    INSERT INTO api_keys_v2 (id, tenant_id, name, prefix, created_at, expires_at, revoked_at,
                             last_used_at)
        SELECT id, tenant_id, name, prefix, created_at, expires_at, revoked_at, last_used_at
        FROM api_keys;
    DROP TABLE api_keys;
    ALTER TABLE api_keys_v2 RENAME TO api_keys;
    CREATE UNIQUE INDEX api_keys_live_name ON api_keys(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE INDEX api_keys_machine ON api_keys(machine_id) WHERE machine_id IS NOT NULL;
    CREATE TABLE api_key_secrets (
        secret_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        created_at REAL NOT NULL,
        expires_at REAL  -- set by a rotation: the end of this secret's grace period
    ) WITHOUT ROWID;
    CREATE INDEX api_key_secrets_key ON api_key_secrets(key_id);
    INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
        SELECT secret_hash, id, created_at FROM old_key_secrets;
    DROP TABLE old_key_secrets;
    CREATE TABLE usage_daily (
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        day TEXT NOT NULL,  -- UTC date the request started, YYYY-MM-DD
        tenant_id TEXT NOT NULL,
        requests INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        PRIMARY KEY (key_id, day)
    ) WITHOUT ROWID;
    CREATE INDEX usage_daily_tenant ON usage_daily(tenant_id, day);
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,  -- 'request' | 'admin'
        actor TEXT NOT NULL,  -- the key's name, or 'operator' / 'tenant-admin' for admin actions
        action TEXT NOT NULL,  -- 'POST /v1/chat/completions', 'key.rotated', …
        subject TEXT,  -- what an admin action acted on
        key_id TEXT,
        machine TEXT,
        model TEXT,
        status INTEGER,
        error_code TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        ttft_ms REAL,
        duration_ms REAL,
        client TEXT,
        user_agent TEXT
    );
    CREATE INDEX audit_events_tenant ON audit_events(tenant_id, at);
    CREATE INDEX audit_events_at ON audit_events(at);
    ALTER TABLE admin_keys ADD COLUMN name TEXT;  -- NULL for the operator key
    CREATE UNIQUE INDEX admin_keys_live_name ON admin_keys(tenant_id, name)
        WHERE revoked_at IS NULL AND name IS NOT NULL;
    """,
    # 3: per-tenant model aliases, so that clients with fixed model names work (gpt-4o → qwen3).
    """
    CREATE TABLE model_aliases (
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        alias TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, alias)
    ) WITHOUT ROWID;
    """,
    # 4: opt-in storage of Responses API responses (off by default: content at rest is the
    # exception), with the conversation items a later response continues from.
    """
    ALTER TABLE tenants ADD COLUMN store_responses INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        key_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        response TEXT NOT NULL,  -- the response object, JSON
        input_items TEXT NOT NULL  -- JSON list: the conversation before the response's output
    );
    CREATE INDEX responses_tenant ON responses(tenant_id, created_at);
    """,
    # 5: console sessions (edge/console), by a digest of their id; they end with their admin key.
    """
    CREATE TABLE console_sessions (
        session_hash TEXT PRIMARY KEY,
        admin_key_id TEXT NOT NULL REFERENCES admin_keys(id),
        created_at REAL NOT NULL,
        last_seen_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX console_sessions_seen ON console_sessions(last_seen_at);
    """,
    # 6: the id of each API request (its x-request-id, README "Operating it"), so that an audit
    # row can be matched with the edge's and the agent's log lines.
    """
    ALTER TABLE audit_events ADD COLUMN request_id TEXT;
    """,
)
