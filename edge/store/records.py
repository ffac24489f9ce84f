"""What the store holds, as the rest of the edge sees it, and the errors it raises.

StoreError              root
├── Conflict            a name is already taken
├── StoreUnavailable    the database cannot be written now; retrying may work
├── RejectedRow         a row the database refuses whatever the moment
└── OpenFailed          the database cannot be opened (unreachable, credentials refused, …)
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUDIT_COLUMNS = (
    "tenant_id",
    "at",
    "kind",
    "actor",
    "action",
    "subject",
    "key_id",
    "machine",
    "model",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "ttft_ms",
    "duration_ms",
    "client",
    "user_agent",
    "request_id",  # the x-request-id the client got; also in the edge's and agent's logs
)

AuditRow = tuple[object, ...]  # values in AUDIT_COLUMNS order
# (key_id, UTC day, tenant_id, requests, prompt_tokens, completion_tokens)
UsageIncrement = tuple[str, str, str, int, int, int]


class StoreError(Exception):
    """Root of the store's errors."""


class Conflict(StoreError):
    """The name is already taken."""


class StoreUnavailable(StoreError):
    """The database cannot be written now (locked, disk full, I/O error); retrying may work."""


class RejectedRow(StoreError):
    """A row the database refuses whatever the moment (a number out of range, a wrong type):
    retrying it can never work."""


class OpenFailed(StoreError):
    """The database could not be opened: the server cannot be reached, refuses the credentials
    or the database, or the URL is not one the edge knows. The message is one line that names
    the database without its password, for the operator."""


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    slug: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    tenant_id: str
    name: str
    public_key: bytes
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What a key may do; ``None`` everywhere means no limit."""

    models: tuple[str, ...] | None = None
    budget_tokens: int | None = None
    budget_period: str | None = None  # 'day' | 'week' | 'month', UTC
    rpm: int | None = None
    tpm: int | None = None
    machine_id: str | None = None  # bound: requests route only to this machine


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    limits: KeyLimits = field(default_factory=KeyLimits)


@dataclass(frozen=True, slots=True)
class UsageRow:
    key_name: str
    day: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ModelUsageRow:
    """A tenant's API requests of one UTC day, one key and one model, from the audit events
    (so within their retention): tokens as the machines reported them."""

    day: str
    key_name: str | None  # None: the key is gone
    model: str | None  # None: the request failed before it named a served model
    requests: int
    errors: int  # status 400 and above
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """A tenant's API requests in one time bucket ``[start, start + bucket)``, from the audit
    events: what the console's charts draw."""

    tenant_id: str
    start: float
    requests: int
    errors: int  # status 400 and above
    prompt_tokens: int
    completion_tokens: int
    ttft_ms_avg: float | None  # over the requests that produced output
    ttft_ms_max: float | None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which of a tenant's audit events to read, newest first; every field narrows."""

    since: float = 0.0
    until: float | None = None  # exclusive
    key_id: str | None = None
    machine: str | None = None
    kind: str | None = None  # 'request' | 'admin'
    status_min: int | None = None  # inclusive; events without a status (admin) never match
    status_max: int | None = None
    before: tuple[float, int] | None = None  # a page's cursor: (at, id) of the last event seen


@dataclass(frozen=True, slots=True)
class AdminKey:
    id: str
    tenant_id: str | None  # None: the operator
    name: str | None = None
    created_at: float = 0.0

    @property
    def actor(self) -> str:
        """Who acted, as the audit trail names it."""
        return "operator" if self.tenant_id is None else f"admin:{self.name}"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in console session of a live admin key (edge/console)."""

    admin: AdminKey
    created_at: float
    last_seen_at: float
