"""Target drivers: where a restore writes. `driver.TargetRoot` is one node's root over fsspec (a local
folder by default), `ssh.SshRoot` one on another machine over SFTP; `open_root` picks by the URL."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

from omni_recovery.targets.driver import TargetError, TargetRoot
from omni_recovery.urls import is_ssh_url

if TYPE_CHECKING:
    from omni_recovery.targets.ssh import SshAccess, SshRoot


def open_root(
    url: str, access: SshAccess | None = None, *, fsync: bool = True, create: bool = True
) -> TargetRoot:
    """The root at `url`: an `ssh://` or `sftp://` URL needs its access (host key, identity)."""
    if not is_ssh_url(url):
        return TargetRoot(url, fsync=fsync, create=create)
    from omni_recovery.targets.ssh import SshRoot  # asyncssh, only for a root on another machine

    if access is None:
        raise TargetError("an SSH root needs its host_key in the inventory", root=url)
    return SshRoot(url, access, fsync=fsync, create=create)


def ssh_root(target: TargetRoot) -> SshRoot | None:
    """`target` if it is an SSH root. No SSH root exists before the SSH driver is imported, so a
    restore to local roots never imports it (asyncssh)."""
    ssh = sys.modules.get("omni_recovery.targets.ssh")
    return cast("SshRoot", target) if ssh is not None and isinstance(target, ssh.SshRoot) else None
