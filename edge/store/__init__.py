"""The edge's state (docs/ARCHITECTURE.md "State"): an interface of query groups (``interface.py``),
the records it deals in (``records.py``), its implementations (``sqlite/``, ``postgres/``) and
``open_store``, which chooses one (``opening.py``)."""

from edge.store.interface import (
    AdminKeys,
    Aliases,
    Clock,
    Keys,
    Machines,
    Responses,
    Store,
    Tenants,
    Usage,
)
from edge.store.opening import open_store
from edge.store.records import (
    AUDIT_COLUMNS,
    AdminKey,
    ApiKey,
    AuditRow,
    Conflict,
    KeyLimits,
    Machine,
    OpenFailed,
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
    "Clock",
    "Conflict",
    "KeyLimits",
    "Keys",
    "Machine",
    "Machines",
    "OpenFailed",
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
    "open_store",
]
