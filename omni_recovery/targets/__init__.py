"""Target drivers: where a restore writes. `driver.TargetRoot` is one node's root over fsspec (a local
folder by default), `ssh.SshRoot` one on another machine over SFTP; `open_root` picks by the URL."""

from __future__ import annotations

from omni_recovery.targets.driver import TargetError, TargetRoot


def open_root(url: str, access: object = None, *, fsync: bool = True, create: bool = True) -> TargetRoot:
    """The root at `url`: an `ssh://` or `sftp://` URL needs its `ssh.SshAccess` (host key, identity)."""
    from omni_recovery.targets.ssh import SshAccess, SshRoot, is_ssh_url

    if not is_ssh_url(url):
        return TargetRoot(url, fsync=fsync, create=create)
    if not isinstance(access, SshAccess):
        raise TargetError("an SSH root needs its host_key in the inventory", root=url)
    return SshRoot(url, access, fsync=fsync, create=create)
