"""The command line, driven in process: every command documented, errors clear, the backup commands work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from omni_recovery import __version__
from omni_recovery.cli import main
from omni_recovery.cli.options import parse_size
from omni_recovery.envstate.model import walk_environment
from omni_recovery.settings import load_settings
from pipelines.runner import dagster_instance


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize(
    ("name", "command"), all_commands(main), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_command_explains_itself_with_an_example(name: str, command: click.Command):
    assert_explained(main, "omni-recovery", name, command)


def assert_explained(group: click.Group, program: str, name: str, command: click.Command) -> None:
    """`program name --help` shows an example of `program`, and every option has help text."""
    result = CliRunner().invoke(group, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and program in result.output.split("Example", 1)[1], name
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name} --{param.name} has no help text"


def test_top_level_help_and_version():
    runner = CliRunner()
    assert "backup" in runner.invoke(main, ["--help"]).output
    result = runner.invoke(main, ["version"])
    assert result.exit_code == 0 and result.output.strip() == f"omni-recovery {__version__}"


def test_sizes_parse_in_binary_units():
    assert parse_size("4G") == 4 * 1024**3
    assert parse_size("700MiB") == 700 * 1024**2
    assert parse_size("1048576") == 1048576
    with pytest.raises(click.BadParameter):
        parse_size("lots")


def test_keygen_demo_env_and_backup_create(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    runner = CliRunner()
    result = runner.invoke(main, ["keygen", "--output", str(tmp_path / "k" / "signing.key")])
    assert result.exit_code == 0, result.output
    assert "key id: " in result.output and (tmp_path / "k" / "signing.key.pub").exists()
    assert (tmp_path / "k" / "signing.key").stat().st_mode & 0o777 == 0o600
    again = runner.invoke(main, ["keygen", "--output", str(tmp_path / "k" / "signing.key")])
    assert again.exit_code == 1 and "refusing to overwrite" in again.output

    env = tmp_path / "env"
    result = runner.invoke(
        main, ["demo-env", "--output", str(env), "--volume-scale", "tiny", "--applications", "4"]
    )
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in walk_environment(env)) > 50

    base = [
        "backup",
        "create",
        "--source",
        str(env),
        "--output",
        str(tmp_path / "set"),
        "--signing-key",
        str(tmp_path / "k" / "signing.key"),
        "--max-iso-size",
        "2M",
        "--chunk-size",
        "512K",
        "--workspace",
        str(tmp_path / "ws"),
    ]
    monkeypatch.delenv("OMNI_RECOVERY_PASSPHRASE", raising=False)
    refused = runner.invoke(main, base)
    assert refused.exit_code == 1 and "no recovery passphrase" in refused.output
    assert not (tmp_path / "set").exists() or not any((tmp_path / "set").iterdir())

    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", "from the environment")
    result = runner.invoke(main, base)
    assert result.exit_code == 0, result.output
    isos = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert isos and all(name.endswith(".iso") for name in isos)
    assert "ISOs" in result.output
    set_id = result.output.split()[2].rstrip(":")
    assert_a_backup_set_run(tmp_path / "ws", set_id, tmp_path / "set", isos)

    clash = runner.invoke(main, base)
    assert clash.exit_code == 1 and "refusing to overwrite a backup" in clash.output
    runs = [r.status.value for r in dagster_instance(load_settings(tmp_path / "ws")).get_runs()]
    assert sorted(runs) == ["FAILURE", "SUCCESS"], "the refused one is a failed run of the job, as in the UI"


def assert_a_backup_set_run(workspace: Path, set_id: str, output: Path, isos: list[str]) -> None:
    """The workspace's Dagster instance (the UI's) holds a run of `create_backup` that materialised
    `backup_set` with what was written."""
    from dagster import AssetKey

    instance = dagster_instance(load_settings(workspace))
    assert {(r.job_name, r.status.value) for r in instance.get_runs()} >= {("create_backup", "SUCCESS")}
    event = instance.get_latest_materialization_event(AssetKey("backup_set"))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["backup_set_id"].value == set_id and metadata["output"].value == str(output)
    assert sorted(metadata["isos"].value) == isos  # type: ignore[arg-type]


def test_passphrase_file_is_used_and_no_plain_argument_exists(tmp_path: Path):
    backup = main.get_command(click.Context(main), "backup")
    backup_create = backup.commands["create"]  # type: ignore[union-attr]
    assert not any(p.name == "passphrase" for p in backup_create.params)
    assert any(p.name == "passphrase_file" for p in backup_create.params)


def test_init_database_is_idempotent(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    runner = CliRunner()
    first = runner.invoke(main, ["init-database", "--workspace", str(tmp_path / "ws")])
    assert first.exit_code == 0, first.output
    assert re.search(r"applied [1-9][0-9]* migration", first.output)
    second = runner.invoke(main, ["init-database", "--workspace", str(tmp_path / "ws")])
    assert second.exit_code == 0 and "applied 0 migration(s): none" in second.output


def test_stop_database_stops_the_workspace_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from omni_recovery.db.server import database_url, embedded_status
    from omni_recovery.settings import load_settings

    monkeypatch.delenv("OMNI_RECOVERY_DATABASE_URL", raising=False)
    settings = load_settings(tmp_path / "ws")
    database_url(settings)
    assert embedded_status(settings) is not None
    runner = CliRunner()
    result = runner.invoke(main, ["stop-database", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0 and "stopped" in result.output
    assert embedded_status(settings) is None
    again = runner.invoke(main, ["stop-database", "--workspace", str(tmp_path / "ws")])
    assert "no embedded recovery database was running" in again.output


def test_every_omni_command_explains_itself_with_an_example():
    from omni_recovery.cli.practice import omni

    for name, command in all_commands(omni):
        assert_explained(omni, "omni ", name, command)


def test_execute_plan_imports_nothing_a_local_restore_does_not_use() -> None:
    """The command's own modules and the restore's, in a new process: no other command's module, no
    SSH driver (asyncssh) without an SSH root, no ISO writer without a post-recovery backup."""
    code = (
        "import sys, click\n"
        "from omni_recovery.cli import main\n"
        "main.get_command(click.Context(main), 'execute-plan')\n"
        "import pipelines.recovery_runner, omni_recovery.cli.watch\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "omni_recovery.cli.execute" in loaded and "pipelines.recovery_runner" in loaded
    unwanted = {"asyncssh", "omni_recovery.targets.ssh", "pycdlib", "omni_recovery.backup.writer"}
    unwanted |= {
        f"omni_recovery.cli.{name}" for name in ("backup", "validate", "register", "practice", "plan")
    }
    assert not loaded & unwanted, sorted(loaded & unwanted)
