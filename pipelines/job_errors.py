"""What a failed Dagster run tells the operator: one line, never a traceback.

`user_error` finds the library's own error (a RecoveryError) inside Dagster's wrappers. When there is
none but the Dagster instance itself could not write its storage (SQLite under the workspace's
dagster/ folder: a full disk, a file-size limit, a quota), it says so naming that folder and the
cause, since every command that runs a job fails that way and the traceback names neither.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from omni_recovery.errors import RecoveryError

# What a write refused for want of room says (disk full, file-size limit, quota).
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def user_error(exc: BaseException, dagster_home: Path | None = None) -> BaseException:
    """The library's own error inside a Dagster wrapper, if there is one; else, given the instance's
    folder, a failure of the instance's storage said in one line; else `exc`."""
    chain = list(_chain(exc))
    ours = next((e for e in chain if isinstance(e, RecoveryError)), None)
    if ours is not None:
        return ours
    failure = _storage_failure(chain, dagster_home) if dagster_home is not None else None
    return failure or exc


def _storage_failure(chain: list[BaseException], dagster_home: Path) -> RecoveryError | None:
    """One line naming `dagster_home` and the cause, when an error of `chain` is its storage's."""
    cause = next((e for e in chain if _storage_error(e, dagster_home)), None)
    if cause is None:
        return None
    return RecoveryError(
        f"{dagster_home}: the workspace's Dagster instance cannot write its storage there ({cause}); "
        "make room there (or raise the file-size limit) and run the command again"
    )


def _storage_error(error: BaseException, dagster_home: Path) -> bool:
    if isinstance(error, sqlite3.OperationalError):  # the instance's only SQLite: the project's own are not
        return True
    if isinstance(error, OSError) and error.errno in _NO_ROOM:
        return Path(str(error.filename or "")).is_relative_to(dagster_home)
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and its causes and contexts, each once (a chain may loop back on itself)."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        yield seen
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
