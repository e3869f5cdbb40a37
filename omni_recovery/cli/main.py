"""The `omni-recovery` command group: every command, from its stage's module, registered here.

Errors the library raises on purpose (RecoveryError) are printed as one clear line and exit
with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib

import click
import fsspec

from omni_recovery import __version__
from omni_recovery.urls import SSH_SCHEMES

# Each command's module, imported when the command runs (or --help lists it): a command pays for
# its own imports alone (execute-plan none of backup's, validation's, the drill's...).
COMMANDS = {
    "demo-env": "demo:demo_env",
    "keygen": "backup:keygen",
    "backup": "backup:backup",
    "init-database": "database:init_database",
    "stop-database": "database:stop_database",
    "demo": "demo:demo",
    "validate-isos": "validate:validate_isos",
    "register-isos": "register:register_isos",
    "sql": "register:sql",
    "inventory-scan": "scan:inventory_scan",
    "plan-generate": "plan:plan_generate",
    "execute-plan": "execute:execute_plan",
    "deploy-directors": "execute:deploy_directors",
    "worker": "workers:worker",
    "status": "status:status",
    "drill": "practice:drill",
}


class LazyGroup(click.Group):
    """A group whose commands in COMMANDS are imported by name on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, name = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(f"omni_recovery.cli.{module}"), name)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
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

if __name__ == "__main__":
    main()
