"""The SSH hosts backup sets were registered from, and the host key each was pinned to.

`register-isos --path ssh://…` records the host it read the set from (`record_ssh_host`): the public
key given with --ssh-host-key and the path of the --ssh-identity file (never key material), in
`<workspace>/ssh_hosts.json`. `pin_registered_hosts(workspace)` pins each of them for this process
(targets.ssh_fs), so that validate-isos, plan-generate, execute-plan and the runs the UI launches read
an ssh:// set from the host that proves the same key, without asking for it again; a host pinned in
this process already (by the command line) keeps that pin. A host that offers another key is refused
when connecting, in one line naming the host and both fingerprints.

What can go wrong: a damaged file (BackupSetError naming it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_recovery.errors import BackupSetError
from omni_recovery.whole_file import write_text_whole

if TYPE_CHECKING:
    from omni_recovery.targets.ssh_session import SshAccess

SSH_HOSTS_FILE = "ssh_hosts.json"


def registered_ssh_hosts(workspace: Path) -> dict[str, SshAccess]:
    """Each recorded host's access, by its URL `ssh://user@host:port`."""
    path = workspace / SSH_HOSTS_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        from omni_recovery.targets.ssh_session import SshAccess  # asyncssh: only once a host is recorded

        return {
            url: SshAccess(str(found["host_key"]), found.get("identity_file"))
            for url, found in data.get("hosts", {}).items()
        }
    except FileNotFoundError:
        return {}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BackupSetError(f"the SSH host record {path} is damaged: {exc!r}") from exc


def record_ssh_host(workspace: Path, location: str, access: SshAccess) -> None:
    """Keep `access` for the host of the ssh:// `location` (replacing what was kept for it)."""
    hosts = registered_ssh_hosts(workspace)
    hosts[_host_url(location)] = access
    document = {
        "hosts": {
            url: {"host_key": found.host_key, "identity_file": found.identity_file}
            for url, found in sorted(hosts.items())
        }
    }
    write_text_whole(workspace / SSH_HOSTS_FILE, json.dumps(document, indent=1))


def pin_registered_hosts(workspace: Path) -> None:
    """Pin, for this process, every recorded host not pinned already."""
    hosts = registered_ssh_hosts(workspace)
    if not hosts:
        return
    from omni_recovery.targets.ssh_fs import allow_ssh_location, is_pinned

    for url, access in hosts.items():
        if not is_pinned(url):
            allow_ssh_location(url, access)


def _host_url(location: str) -> str:
    from omni_recovery.targets.ssh_session import SshUrl

    return f"ssh://{SshUrl.parse(location).address}"
