"""Who is running this process: the operator an audit row names.

`Operator.current()` is the OS user and uid, and the host, of this process; the database role is
the server's `current_user`, filled in by the audit table itself (so a client cannot name another).
SSH targets add the fingerprint of the key each host accepted: `note_ssh_key(address, fingerprint)`
is called by the SSH target driver once a host has accepted a key, and `ssh_keys_used()` returns
every such key of this process so far, by host address (`user@host:port`), for the audit rows; a
long-lived process (the UI, the daemon) runs several recoveries, so a run's rows name only the hosts
that run reached (`ssh_keys_used(addresses)`).

What can go wrong: a uid with no name in the user database (a container's numeric user) is named
`uid:N`; nothing here fails.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass

_ssh_keys: dict[str, str] = {}
_ssh_keys_lock = threading.Lock()


@dataclass(frozen=True)
class Operator:
    """The OS account and machine of this process."""

    os_user: str
    uid: int
    host: str

    @classmethod
    def current(cls) -> Operator:
        uid = os.getuid()
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid:{uid}"
        return cls(user, uid, socket.gethostname())


def note_ssh_key(address: str, fingerprint: str) -> None:
    """Record that the host at `address` accepted the key with this fingerprint."""
    with _ssh_keys_lock:
        _ssh_keys[address] = fingerprint


def ssh_keys_used(addresses: Iterable[str] | None = None) -> dict[str, str]:
    """The SSH keys hosts accepted in this process so far (those of `addresses` only, when given):
    fingerprint by host address."""
    with _ssh_keys_lock:
        if addresses is None:
            return dict(_ssh_keys)
        return {address: _ssh_keys[address] for address in addresses if address in _ssh_keys}
