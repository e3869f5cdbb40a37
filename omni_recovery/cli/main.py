"""The `omni-recovery` command group: every command, from its stage's module, registered here.

Errors the library raises on purpose (RecoveryError) are printed as one clear line and exit
with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import click
import fsspec

from omni_recovery import __version__
from omni_recovery.cli.backup import backup, keygen
from omni_recovery.cli.database import init_database, stop_database
from omni_recovery.cli.demo import demo, demo_env
from omni_recovery.cli.execute import deploy_directors, execute_plan
from omni_recovery.cli.plan import plan_generate
from omni_recovery.cli.practice import drill
from omni_recovery.cli.register import register_isos, sql
from omni_recovery.cli.scan import inventory_scan
from omni_recovery.cli.status import status
from omni_recovery.cli.validate import validate_isos
from omni_recovery.cli.workers import worker
from omni_recovery.urls import SSH_SCHEMES


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """omni-recovery: bring OmniCloud back from a set of ISO 9660 backup files.

    \b
    The flow:  demo-env / backup create  →  init-database  →  register-isos
               →  validate-isos --deep  →  plan-generate  →  execute-plan

    \b
    Example:
      omni-recovery demo          # a demo environment backed up and recovered end to end
    """


@main.command()
def version() -> None:
    """Print the version.

    \b
    Example:
      omni-recovery version
    """
    click.echo(f"omni-recovery {__version__}")


# A set at ssh:// or sftp:// is read only from a host whose key is pinned (register-isos --ssh-host-key);
# fsspec's own SSH filesystems would trust any host key. Named, not imported: asyncssh loads on use.
for protocol in SSH_SCHEMES:
    fsspec.register_implementation(
        protocol, "omni_recovery.targets.ssh_fs.PinnedSftpFileSystem", clobber=True
    )

for command in (
    demo_env,
    keygen,
    backup,
    init_database,
    stop_database,
    demo,
    validate_isos,
    register_isos,
    sql,
    inventory_scan,
    plan_generate,
    execute_plan,
    deploy_directors,
    worker,
    status,
    drill,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
