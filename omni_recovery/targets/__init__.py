"""Target drivers: where a restore writes. `driver.TargetRoot` is one node's root over fsspec (a local
folder by default), `ssh.SshRoot` one on another machine over SFTP; `open_root` picks by the URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omni_recovery.targets.driver import TargetError, TargetRoot

if TYPE_CHECKING:
    from omni_recovery.targets.ssh import SshAccess


def open_root(
    url: str, access: SshAccess | None = None, *, fsync: bool = True, create: bool = True
) -> TargetRoot:
    """The root at `url`: an `ssh://` or `sftp://` URL needs its access (host key, identity)."""
    from omni_recovery.targets.ssh import SshRoot
    from omni_recovery.urls import is_ssh_url

    if not is_ssh_url(url):
        return TargetRoot(url, fsync=fsync, create=create)
    if access is None:
        raise TargetError("an SSH root needs its host_key in the inventory", root=url)
    return SshRoot(url, access, fsync=fsync, create=create)
