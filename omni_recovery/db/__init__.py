"""The recovery database: PostgreSQL schema `omni`, its migrations, connections and audit log.

- `server`: the embedded PostgreSQL server kept in the workspace (`database_url(settings)` starts or
  reuses it, `stop_embedded(settings)` stops it), or the operator's server from a URL.
- `schema`: numbered SQL migrations in `migrations/`, applied by `init_database(url)`.
- `connection`: `connect(url)` with errors that name the host and never the password.
- `audit`: `audit(conn, operation, subject, detail)` appends to `omni.audit_log`.

Everything here raises `omni_recovery.errors.DatabaseError` for what an operator can fix.
"""

from omni_recovery.db.audit import audit
from omni_recovery.db.connection import connect, describe_url, redact_url
from omni_recovery.db.schema import SCHEMA, init_database
from omni_recovery.db.server import database_url, stop_embedded

__all__ = [
    "SCHEMA",
    "audit",
    "connect",
    "database_url",
    "describe_url",
    "init_database",
    "redact_url",
    "stop_embedded",
]
