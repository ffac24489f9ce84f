"""The edge's state (docs/ARCHITECTURE.md "State"): an interface of query groups (``interface.py``),
the records it deals in (``records.py``) and its implementations (``sqlite/``)."""

from edge.store.interface import (
    AdminKeys,
    Aliases,
    Keys,
    Machines,
    Responses,
    Store,
    Tenants,
    Usage,
)
from edge.store.records import (
    AUDIT_COLUMNS,
    AdminKey,
    ApiKey,
    AuditRow,
    Conflict,
    KeyLimits,
    Machine,
    RejectedRow,
    StoreError,
    StoreUnavailable,
    Tenant,
    UsageIncrement,
    UsageRow,
)
from edge.store.sqlite import SqliteStore

__all__ = [
    "AUDIT_COLUMNS",
    "AdminKey",
    "AdminKeys",
    "Aliases",
    "ApiKey",
    "AuditRow",
    "Conflict",
    "KeyLimits",
    "Keys",
    "Machine",
    "Machines",
    "RejectedRow",
    "Responses",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Tenant",
    "Tenants",
    "Usage",
    "UsageIncrement",
    "UsageRow",
]
