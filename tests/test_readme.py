"""The README as a newcomer reads it: its command blocks run as written, in order, in an empty folder.

Every ```bash block is run by bash (errexit, pipefail) in one temporary working folder, in the order
the README gives them, with the project's commands on PATH (as after activating ./.venv) and a
fresh database of the test server as OMNI_RECOVERY_DATABASE_URL. The `examples/` folder of the
repository is there, as in a clone. The commands that set up ./.venv themselves (`python3 tasks.py
demo`, `python3 tasks.py test`: the test command itself) and the long-running Dagster webserver are
left out. Each ```console block's `$ command` lines run where they stand and must print exactly
the output shown (a last line `...` stands for the rest). The `backup create --help` example runs too.
A ```sh block holds commands for several machines (the two-machine example): not run here (the
restore workers are run by tests/test_restore_workers.py), but each `omni-recovery` command in it
must be a command of the program with options it has.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from omni_recovery.cli.main import main
from omni_recovery.db.schema import init_database

REPOSITORY = Path(__file__).resolve().parent.parent
README = REPOSITORY / "README.md"
NOT_RUN = ("python3 tasks.py demo", "python3 tasks.py test", "dagster dev")
_BLOCK = re.compile(r"^```(bash|console|sh)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str  # "bash", "console" or "sh" (several machines: checked, not run)
    text: str


def readme_blocks(text: str) -> list[Block]:
    """The README's bash and console blocks, in order."""
    return [Block(kind, body) for kind, body in _BLOCK.findall(text)]


def runnable(script: str) -> str:
    """A bash block without the commands this test does not run."""
    return "\n".join(line for line in script.splitlines() if not any(c in line for c in NOT_RUN))


def console_commands(text: str) -> list[tuple[str, str]]:
    """(command, expected output) for each `$ ` line of a console block; continuation lines of a
    command are those indented to line up with it."""
    found: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            found.append(([line[2:]], []))
        elif found and not found[-1][1] and line.startswith("  ") and line.strip():
            found[-1][0].append(line.strip())
        elif found:
            found[-1][1].append(line)
    return [(" ".join(command), "\n".join(output)) for command, output in found]


def matches(expected: str, printed: str) -> bool:
    """The printed text is the shown one; a shown last line `...` stands for any further lines."""
    shown = expected.splitlines()
    lines = printed.rstrip("\n").splitlines()
    if shown and shown[-1] == "...":
        return lines[: len(shown) - 1] == shown[:-1]
    return lines == shown


def activated_env(**extra: str) -> dict[str, str]:
    """This environment with the project's commands first on PATH, as after `source .venv/bin/activate`."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, **extra}


def run_bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], env=env, capture_output=True, text=True, check=False
    )


def test_readme_blocks_run_in_order_as_written(fresh_database_url: str, tmp_path: Path) -> None:
    init_database(fresh_database_url)
    (tmp_path / "examples").symlink_to(REPOSITORY / "examples")
    env = activated_env(OMNI_RECOVERY_DATABASE_URL=fresh_database_url)
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert [b for b in blocks if b.kind == "bash"], "the README has no bash block"
    for block in blocks:
        if block.kind == "sh":
            continue  # commands for several machines: test_multi_machine_commands_exist_as_written
        if block.kind == "bash":
            result = run_bash(runnable(block.text), env)
            assert result.returncode == 0, (
                f"README block failed:\n{block.text}\n{result.stdout}{result.stderr}"
            )
            continue
        for command, expected in console_commands(block.text):
            result = run_bash(command, env)
            assert result.returncode == 0, f"README command failed: {command}\n{result.stderr}"
            assert matches(expected, result.stdout), (
                f"{command}\nshown:\n{expected}\nprinted:\n{result.stdout}"
            )


def test_console_commands_split_commands_from_their_output() -> None:
    block = "$ a 'x\n   y'   # note\ncol\n---\n$ b\n1\n...\n"
    assert console_commands(block) == [("a 'x y'   # note", "col\n---"), ("b", "1\n...")]
    assert matches("1\n...", "1\n2\n3\n")
    assert not matches("1\n2", "1\n3\n")
    assert runnable("python3 tasks.py demo   # x\necho hi") == "echo hi"


def help_example(*command: str) -> str:
    """The `Example:` lines of a command's --help, as one bash script."""
    help_text = subprocess.run(
        [sys.executable, "-m", "omni_recovery.cli", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    example = help_text.split("Example:\n", 1)[1].split("\n\n", 1)[0]
    return textwrap.dedent(example)


def test_backup_create_help_example_runs(tmp_path: Path) -> None:
    env = activated_env()
    setup = "omni-recovery demo-env --output ./env --volume-scale tiny\n"
    setup += "omni-recovery keygen --output ./keys/backup-signing.key"
    assert run_bash(setup, env).returncode == 0
    result = run_bash(help_example("backup", "create"), env)
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "backups" / "set1").glob("*.iso"))


def program_commands(script: str) -> list[list[str]]:
    """The words of each `omni-recovery` command of a shell script (continued lines joined, comments
    and environment assignments dropped)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and "=" in words[0]:
            words = words[1:]
        if words[:1] == ["omni-recovery"]:
            commands.append(words[1:])
    return commands


def test_multi_machine_commands_exist_as_written() -> None:
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.kind == "sh"]
    commands = [words for block in blocks for words in program_commands(block.text)]
    assert {words[0] for words in commands} >= {"init-database", "worker", "execute-plan"}
    for words in commands:
        command = main.get_command(click.Context(main), words[0])
        assert isinstance(command, click.Command), f"omni-recovery has no command {words[0]}"
        known = {o for p in command.params if isinstance(p, click.Option) for o in p.opts}
        given = {w.split("=", 1)[0] for w in words[1:] if w.startswith("--")}
        assert given <= known, f"omni-recovery {words[0]}: no option {sorted(given - known)}"


@pytest.mark.parametrize("script", ["A=1 omni-recovery worker --queue q \\\n  --name n  # x", "ls"])
def test_program_commands_are_read_as_the_shell_would(script: str) -> None:
    expected = [["worker", "--queue", "q", "--name", "n"]] if "omni" in script else []
    assert program_commands(script) == expected
