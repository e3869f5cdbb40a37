"""Content never crashes a command: a signed manifest whose paths hold hostile strings (lone
surrogates, control characters, right-to-left marks, NUL, 64 KiB names) is refused or accepted
cleanly by every command that reads it, and what it prints or stores is escaped, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.safe_text import safe_text
from omni_recovery.settings import DATABASE_URL_ENV, WORKSPACE_ENV
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_inventory
from tests.checker.tamper import copy_set, iso_file, rebuild
from tests.conftest import PostgresForTests
from tests.test_recovery import write_set


def with_path(demo: DemoSet, folder: Path, path: str) -> Path:
    """A copy of `demo`'s set whose network ISO lists one of its files under `path` (validly signed)."""
    copied = copy_set(demo.output, folder)

    def rename(manifest: dict[str, Any]) -> None:
        entry = next(e for e in manifest["files"] if e["path"].startswith("data/") and e.get("type") is None)
        entry["path"] = path

    rebuild(iso_file(copied, "network-configuration"), load_signing_key(demo.key_path), edit_manifest=rename)
    return copied


def command_line(args: list[str], database_url: str, workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        DATABASE_URL_ENV: database_url,
        WORKSPACE_ENV: str(workspace),
        "PYTHONIOENCODING": "utf-8",
    }
    return subprocess.run(
        [sys.executable, "-m", "omni_recovery.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_lone_surrogate_in_a_path_is_shown_escaped_and_the_validation_is_stored(
    demo_set: DemoSet, tmp_path: Path, fresh_database_url: str
) -> None:
    folder = with_path(demo_set, tmp_path / "set", "data/network/evil\udcff\u202e.yaml")
    trusted = f"{demo_set.key_path}.pub"
    done = command_line(
        [
            "validate-isos",
            "--path",
            str(folder),
            "--trusted-key",
            trusted,
            "--report",
            str(tmp_path / "r.json"),
        ],
        fresh_database_url,
        tmp_path / "ws",
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said, said
    assert "evil\\udcff\\u202e.yaml" in said, said
    with connect(fresh_database_url) as conn:
        stored = conn.execute("SELECT path FROM omni.validation_problems WHERE path LIKE '%evil%'").fetchall()
    assert stored == [("data/network/evil\\udcff\\u202e.yaml",)]


HOSTILE_PIECES = [
    "\udcff",  # a lone surrogate, as a JSON "\udcff" escape reads
    "\ud800",
    "\x00",
    "\x1b[31m",  # a terminal escape sequence
    "\r",
    "\n",
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u2028",  # line separator
    "\ufeff",
    "é",
    "名",
    "n" * 65536,  # a 64 KiB name
]
hostile_names = st.lists(
    st.sampled_from(HOSTILE_PIECES) | st.text(min_size=1, max_size=4), min_size=1, max_size=4
).map("".join)


def invoke(args: list[str], database_url: str) -> str:
    """One command in process: it succeeds or refuses (exit 0 or 1), never raises, and prints only
    printable lines."""
    result = CliRunner().invoke(main, args, env={DATABASE_URL_ENV: database_url})
    assert result.exit_code in (0, 1), (args[0], result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args[0],
        "".join(traceback.format_exception(result.exception)),
    )
    assert all(line.isprintable() for line in result.output.splitlines()), (args[0], result.output[:2000])
    return result.output


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=hostile_names)
@example(name="evil\udcff")
@example(name="\u202egnp.exe")
@example(name="n" * 65536)
def test_hostile_names_in_a_signed_manifest_never_crash_a_command(
    demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresForTests, name: str
) -> None:
    folder = tmp_path_factory.mktemp("hostile")
    iso_folder = with_path(demo_set, folder / "set", f"data/network/{name}.yaml")
    workspace = str(folder / "ws")
    passphrase = folder / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    trusted = ["--trusted-key", f"{demo_set.key_path}.pub"]
    inventory = same_shaped_inventory(demo_set.env, folder)
    url = postgres_server.create_database("omni_hostile")
    try:
        invoke(["register-isos", "--path", str(iso_folder), "--workspace", workspace, "--quiet"], url)
        shallow = ["validate-isos", "--path", str(iso_folder), *trusted, "--workspace", workspace]
        invoke([*shallow, "--report", str(folder / "shallow.json")], url)
        invoke([*shallow, "--deep", "--passphrase-file", str(passphrase)], url)
        out = str(folder / "plan.yaml")
        plan = ["plan-generate", "--path", str(iso_folder), "--inventory", str(inventory), "--output", out]
        invoke([*plan, "--workspace", workspace], url)
        invoke(["sql", "SELECT path, iso_name FROM files", "--workspace", workspace], url)
        with connect(url) as conn:
            runs = conn.execute("SELECT deep FROM omni.validation_runs ORDER BY deep").fetchall()
        assert runs == [(False,), (True,)], "both validation runs are stored"
        report = json.loads((folder / "shallow.json").read_text(encoding="utf-8"))
        assert all(str(v).isprintable() for pr in report["problems"] for v in pr.values())
    finally:
        postgres_server.drop_database(url)


def test_legal_but_hostile_file_names_are_backed_up_and_shown_escaped_by_every_command(
    demo_set: DemoSet, tmp_path: Path, fresh_database_url: str
) -> None:
    """Names a filesystem allows (a right-to-left override, a terminal escape, a newline, a line
    separator) make a set every command accepts, and none reaches the terminal as it is."""
    env = tmp_path / "env"
    shutil.copytree(demo_set.env, env, symlinks=True)
    volume = next(p for p in sorted(env.glob("volumes/*/*/files")) if p.is_dir())
    names = ["rtl\u202egnp.exe", "esc\x1b[31mred", "new\nline", "ls\u2028x", "é名"]
    for name in names:
        (volume / name).write_bytes(b"x")
    hostile = write_set(env, tmp_path / "b", "hostile-1")
    workspace, where = str(tmp_path / "ws"), str(hostile.output)
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    trusted = ["--trusted-key", f"{hostile.key_path}.pub", "--workspace", workspace]
    url = fresh_database_url
    register = ["register-isos", "--path", where, "--workspace", workspace, "--quiet"]
    assert invoke(register, url).startswith("backup set(s): hostile-1")
    assert invoke(["validate-isos", "--path", where, *trusted], url).startswith("PASSED")
    deep = ["--deep", "--passphrase-file", str(passphrase)]
    assert invoke(["validate-isos", "--path", where, *trusted, *deep], url).startswith("PASSED")
    inventory = same_shaped_inventory(env, tmp_path)
    plan = ["plan-generate", "--path", where, "--inventory", str(inventory), "--workspace", workspace]
    invoke([*plan, "--output", str(tmp_path / "p.yaml")], url)
    query = "SELECT path FROM files WHERE path LIKE '%/files/%'"
    listed = invoke(["sql", query, "--workspace", workspace], url)
    assert all(f"/files/{safe_text(name)}" in listed for name in names), listed
    execute = ["execute-plan", "--plan", str(tmp_path / "p.yaml"), "--passphrase-file", str(passphrase)]
    assert "finished" in invoke([*execute, "--workspace", workspace], url)
    invoke(["status", "--workspace", workspace], url)
    restored = {p.name for p in (tmp_path / "storage").rglob("*") if p.name in names}
    assert restored == set(names), restored
