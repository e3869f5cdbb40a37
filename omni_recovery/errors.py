"""The project's exceptions: each says what is wrong and, where known, which ISO and path."""

from __future__ import annotations


class RecoveryError(Exception):
    """Base of every error omni-recovery raises on purpose; the CLI prints these without a traceback."""


class BackupSetError(RecoveryError):
    """A backup set, an ISO of it, or a file inside an ISO is malformed, damaged or untrusted."""

    def __init__(self, message: str, *, iso: str | None = None, path: str | None = None) -> None:
        self.iso = iso
        self.path = path
        self.reason = message
        where = ": ".join(part for part in (iso, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class IntegrityError(BackupSetError):
    """Bytes do not match their recorded checksum, size or authentication tag."""


class UnreadableError(IntegrityError):
    """The stored bytes cannot be read (an I/O error of the medium or of its filesystem): they cannot
    be verified either, and a retry may read them."""


class SignatureError(BackupSetError):
    """A signature does not verify, or the signer is not trusted."""


class PassphraseError(BackupSetError):
    """The recovery passphrase does not unwrap the set's data key."""


class UnsafePathError(BackupSetError):
    """A path in a backup would escape its root or is not a clean relative POSIX path."""


class DeadlineExceeded(RecoveryError):
    """Work ran past the time it was given (a plan step's timeout_s)."""


class Interrupted(RecoveryError):
    """Work was stopped on purpose (the operator pressed Ctrl-C)."""


class EnvironmentStateError(RecoveryError):
    """An environment state folder is missing something or holds something malformed."""


class DatabaseError(RecoveryError):
    """The recovery database cannot be reached, started or migrated."""


def some_of(names: list[str], shown: int = 3) -> str:
    """The first `shown` names, and how many more there are: a message names a few, not thousands."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
