"""execute-plan end to end on real demo sets, through Dagster, onto local target roots.

Each case: a real signed, encrypted set; deep validation stored in a real PostgreSQL; a plan for a
new inventory; the restore assets materialised; the result compared with the source environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from click.testing import CliRunner

from assets.restore import restored_applications, restored_volumes
from omni_recovery.backup.post_recovery import gather
from omni_recovery.backup.writer import WriterOptions
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.backupset.signing import TrustedSigners
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.envstate.demo import DemoOptions
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.envstate.model import env_path, walk_environment
from omni_recovery.errors import DatabaseError, RecoveryError
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.progress import planned_totals
from omni_recovery.execute.run_history import RunRecord, recent_runs
from omni_recovery.execute.run_lock import run_holder
from omni_recovery.execute.selection import applications_with_dependencies
from omni_recovery.plan.generate import generate, plan_id, record_plan_source, write_plan_files
from omni_recovery.settings import load_settings
from omni_recovery.targets.driver import PARTIAL_SUFFIX, TargetRoot
from omni_recovery.validate import ValidationReport, store, validate
from pipelines.recovery_runner import ExecuteSummary, execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_nodes, write_inventory
from tests.checker.tamper import flip_byte, scattered_copy
from tests.demo_fixtures import signed_set, write_demo
from transforms.plan import PHASE_INDEX, Plan, Step, is_gate, partial_restore, plan_from_yaml, step_needs
from transforms.target_layout import NOT_RESTORED

# Files a restore regenerates by design (new CA, new node certificates and keys).
REGENERATED = ("keys/",)


@dataclass(frozen=True)
class Setup:
    demo: DemoSet
    folder: Path
    plan_path: Path
    plan: Plan


def make_setup(demo: DemoSet, folder: Path, nodes: list[tuple[str, int, int, int]] | None = None) -> Setup:
    if nodes is None:
        nodes = same_shaped_nodes(environment_from_folder(demo.env))
    folder.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(folder, nodes, f"file://{folder}/infra")
    plan, _ = generate(str(demo.output), inventory, "basic")
    plan_path = folder / "recovery-plan.yaml"
    write_plan_files(plan, plan_path)
    record_plan_source(plan_path, str(demo.output), inventory)
    return Setup(demo, folder, plan_path, plan)


@pytest.fixture(scope="module")
def validated(demo_set: DemoSet, database_url: str) -> DemoSet:
    report = validate(str(demo_set.output), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed
    with connect(database_url) as conn:
        store(conn, report)
    return demo_set


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    return tmp_path / "ws"


def execute(setup: Setup, workspace: Path, **options: object) -> ExecuteSummary:
    return execute_recovery(load_settings(workspace), ExecuteOptions(setup.plan_path, **options), PASSPHRASE)  # type: ignore[arg-type]


def recovered(
    demo: DemoSet, folder: Path, workspace: Path, database_url: str, **options: object
) -> tuple[Setup, ValidationReport]:
    """`demo`'s set deeply validated into the (new) database at `database_url`, planned onto a
    same-shaped inventory under `folder` and recovered; the report must say SUCCEEDED."""
    report = validate(str(demo.output), demo.trusted, PASSPHRASE, deep=True)
    init_database(database_url)
    with connect(database_url) as conn:
        store(conn, report)
    setup = make_setup(demo, folder)
    summary = execute(setup, workspace, **options)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    return setup, report


def restored_tree(plan: Plan, into: Path) -> dict[str, str]:
    """env path → sha256 (or 'dir' / 'symlink:target') of everything restored, gathered from every root."""
    for url in [n.root for n in plan.nodes] + [p.root for p in plan.pools]:
        target = TargetRoot(url, create=False)
        if os.path.isdir(target.root):
            gather(target, into)
    return digests(into)


def digests(root: Path) -> dict[str, str]:
    out = {}
    for f in walk_environment(root):
        if f.type == "file":
            out[f.relpath] = hashlib.sha256(f.abspath.read_bytes()).hexdigest()
        else:
            out[f.relpath] = f.type if f.type == "dir" else f"symlink:{f.target}"
    return out


def openssl(*args: str | Path) -> str:
    """The real openssl binary's output; a non-zero exit fails the test with its message."""
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(map(str, args))}: {done.stdout}{done.stderr}"
    return done.stdout


def assert_a_working_pki(setup: Setup, source_env: Path) -> None:
    """On every Director node: ca.key is the key of ca.crt, the node's certificate verifies against
    ca.crt and names the node and the addresses its Directors have after adaptation, and the
    backup's CA certificate is kept as keys/old-ca.crt."""
    import yaml

    directors = [n for n in setup.plan.nodes if n.director]
    assert directors
    for node in directors:
        root = Path(TargetRoot(node.root, create=False).root)
        keys = root / "keys"
        assert openssl("x509", "-in", keys / "ca.crt", "-noout", "-pubkey") == openssl(
            "pkey", "-in", keys / "ca.key", "-pubout"
        ), f"{node.name}: ca.key is not the key of ca.crt"
        assert (
            openssl("verify", "-CAfile", keys / "ca.crt", keys / f"{node.name}.crt").strip().endswith(": OK")
        )
        names = openssl("x509", "-in", keys / f"{node.name}.crt", "-noout", "-ext", "subjectAltName")
        addresses = [
            address
            for config in root.glob("directors/*/config.yaml")
            for address in yaml.safe_load(config.read_text())["addresses"].values()
        ]
        assert addresses and all(f"IP Address:{a}" in names for a in addresses), (node.name, names)
        assert f"DNS:{node.name}" in names, (node.name, names)
        assert (keys / "old-ca.crt").read_bytes() == (source_env / "keys/ca.crt").read_bytes()


def test_full_restore_equals_the_source_except_the_listed_adaptations(
    validated: DemoSet, tmp_path: Path, workspace: Path
):
    setup = make_setup(validated, tmp_path)
    summary = execute(setup, workspace, signing_key=validated.key_path, reverify=True)
    source = digests(validated.env)
    restored = restored_tree(setup.plan, tmp_path / "gathered")

    # Adaptations rewrite documents (YAML, and the Directors' state.json); data is restored byte for byte.
    adapted = {
        p for p in restored if "/files/" not in p and (p.endswith(".yaml") or p.endswith("state.json"))
    }
    volumes = {p for p in source if p.startswith("volumes/") and "/files" in p}
    assert volumes and all(restored.get(p) == source[p] for p in volumes), (
        "volume data restored byte for byte"
    )
    secrets = [p for p in source if p.endswith("secrets.json") or p.endswith("users.jsonl")]
    assert secrets and all(restored[p] == source[p] for p in secrets), "sealed files restored decrypted"
    tables = [p for p in source if p.endswith(".jsonl")]
    assert tables and all(restored[p] == source[p] for p in tables), "orchestrator tables restored unchanged"
    missing = set(source) - set(restored)
    assert all(p.startswith("nodes/") for p in missing), missing  # old nodes replaced by the new ones
    assert {p for p in source if p.startswith("nodes/")} == missing
    differing = {p for p in set(source) & set(restored) if source[p] != restored[p]}
    assert differing <= adapted | {p for p in differing if p.startswith(REGENERATED)}, differing - adapted
    assert "keys/ca.key" in restored and restored["keys/ca.key"] != source["keys/ca.key"], (
        "old CA key never reused"
    )
    assert NOT_RESTORED == ("keys/ca.key",)
    assert_a_working_pki(setup, validated.env)
    rings = {restored[p] for p in restored if p.endswith("/ring.yaml")}
    clusters = {restored[p] for p in restored if p.endswith("/cluster.yaml")}
    assert len(rings) == 1 and len(clusters) == 1, "every member holds the same membership"

    assert summary.report and Path(summary.report).exists()
    assert "SUCCEEDED" in Path(summary.report).read_text()
    links = materialised_metadata(workspace, "recovery_report")
    assert links["report"].value == summary.report
    assert links["report_url"].value == Path(summary.report).as_uri()
    after_boot = json.loads(Path(summary.report).with_suffix(".json").read_text())["after_boot"]
    running = [s for s in setup.plan.steps if s.id.split("/")[0] in ("director", "service", "application")]
    assert running and {f"{s.id}: {s.wait}" for s in running} <= set(after_boot)
    assert not [c for c in after_boot if c.startswith(("volume/", "ring/", "storage/pool/"))]
    assert summary.post_recovery_backup
    post = validate(summary.post_recovery_backup, validated.trusted, PASSPHRASE, deep=True)
    assert post.passed, post.to_text()


def materialised_metadata(workspace: Path, asset: str) -> dict[str, Any]:
    """The metadata of `asset`'s latest materialisation in the workspace's Dagster instance (the UI's)."""
    from dagster import AssetKey

    from pipelines.runner import dagster_instance

    event = dagster_instance(load_settings(workspace)).get_latest_materialization_event(AssetKey(asset))
    assert event is not None and event.asset_materialization is not None, f"{asset} never materialised"
    return dict(event.asset_materialization.metadata)


def test_partial_restore_adds_the_hard_dependencies_the_plan_names_unless_restored_before(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    """Onto an empty target, the chosen applications come with every step the plan names as their hard
    dependencies (Orchestrators and Directors included), each said with why; a later partial restore of
    the same plan does not redo those a closed run restored and verified."""
    setup = make_setup(validated, tmp_path)
    needs = step_needs(setup.plan, environment_from_folder(validated.env))
    apps = sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))
    chosen = next(a for a in apps if any(d.startswith("orchestrator/") for d in needs[f"application/{a}"]))
    expected = partial_restore(setup.plan, [chosen], needs)
    infrastructure = {s for s in expected.added if not s.startswith(("application/", "volume/"))}
    assert infrastructure, "an Orchestrator at least"

    said: list[str] = []
    options = ExecuteOptions(setup.plan_path, applications=(chosen,))
    summary = execute_recovery(load_settings(workspace), options, PASSPHRASE, echo=said.append)
    run = latest_run(database_url)
    ran = {s.step_id for s in run.steps}
    assert {s for s in ran if not is_gate(s)} == expected.steps | {"report/recovery"}
    phases = {setup.plan.step(s).phase for s in expected.steps | {"report/recovery"}}
    gates = {s.id for s in setup.plan.steps if s.is_gate and s.phase in phases}
    assert {s for s in ran if is_gate(s)} == gates, "the gates of the phases it runs"
    assert all(s.status == "succeeded" for s in run.steps) and run.status == "succeeded"
    for step, needer in expected.added.items():
        line = f"added for hard dependencies: {step} (needed by {needer})"
        assert line in said, said
        assert summary.report and line in Path(summary.report).read_text()
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    touched_apps = {p.split("/")[1] for p in restored if p.startswith(("applications/", "volumes/"))}
    assert {chosen} <= touched_apps <= set(summary.applications)
    assert {p.split("/")[0] for p in restored} - {"applications", "volumes"}, "the infrastructure is written"

    said.clear()
    again = execute_recovery(load_settings(workspace), options, PASSPHRASE, echo=said.append)
    assert again.run_id != run.run_id
    rerun = {s.step_id for s in latest_run(database_url).steps}
    assert not rerun & infrastructure and f"application/{chosen}" in rerun, rerun
    prefix = "not added, restored and verified before: "
    listed = {line.removeprefix(prefix) for line in said if line.startswith(prefix)}
    orchestrators = {d for d in needs[f"application/{chosen}"] if d.startswith("orchestrator/")}
    assert orchestrators <= listed <= set(expected.added), said
    assert not [line for line in said if line.startswith("added for hard dependencies: orchestrator/")]


def write_set(env: Path, folder: Path, backup_set_id: str) -> DemoSet:
    """A signed set of `env` under folder/set with the given id (folder/k.key signs it)."""
    from omni_recovery.backup.writer import WriterOptions, create_backup_set
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "k.key").exists():
        generate_signing_key(folder / "k.key")
    create_backup_set(
        env,
        str(folder / "set"),
        signing_key=load_signing_key(folder / "k.key"),
        passphrase=PASSPHRASE,
        options=WriterOptions(backup_set_id=backup_set_id),
    )
    trusted = TrustedSigners.from_specs([str(folder / "k.key.pub")])
    return DemoSet(env, folder / "set", None, folder / "k.key", trusted)  # type: ignore[arg-type]


def test_unvalidated_set_is_refused_before_anything_is_written(
    demo_env: Path, tmp_path: Path, workspace: Path
):
    setup = make_setup(write_set(demo_env, tmp_path, "never-validated"), tmp_path)
    with pytest.raises(RecoveryError, match="no deep validation on record"):
        execute(setup, workspace)
    assert not (tmp_path / "infra").exists()


def test_set_other_than_the_validated_one_is_refused(
    demo_env: Path, tmp_path: Path, workspace: Path, database_url: str
):
    """A validation covers the exact manifests it checked, not whatever later carries the same set id."""
    first = write_set(demo_env, tmp_path / "first", "validated-once")
    report = validate(str(first.output), first.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.manifests_sha256
    with connect(database_url) as conn:
        store(conn, report)
    changed_env = tmp_path / "env"
    shutil.copytree(demo_env, changed_env, symlinks=True)
    volume_file = next(
        p for p in sorted((changed_env / "volumes").rglob("*")) if p.is_file() and not p.is_symlink()
    )
    volume_file.write_bytes(volume_file.read_bytes() + b"changed after the validation")
    (tmp_path / "second").mkdir()
    for name in ("k.key", "k.key.pub"):  # the same signer
        shutil.copy2(tmp_path / "first" / name, tmp_path / "second" / name)
    second = write_set(changed_env, tmp_path / "second", "validated-once")
    shutil.rmtree(first.output)
    second.output.rename(first.output)  # the validated location now holds other ISOs of the same id
    setup = make_setup(dataclasses.replace(second, output=first.output), tmp_path / "plan")
    with pytest.raises(RecoveryError, match=r"not the ones any deep validation .* checked"):
        execute(setup, workspace)
    assert not (tmp_path / "plan" / "infra").exists()
    with connect(database_url) as conn:  # as an older omni-recovery recorded its validations
        conn.execute(
            "UPDATE omni.validation_runs SET manifests_sha256 = NULL WHERE run_id = %s", (report.run_id,)
        )
    with pytest.raises(RecoveryError, match="did not record which manifests it checked"):
        execute(setup, workspace)

    # A passing deep validation of these ISOs is what counts, whatever was validated after it.
    these = validate(str(first.output), first.trusted, PASSPHRASE, deep=True)
    damaged = validate(str(first.output), first.trusted, PASSPHRASE, deep=True)
    damaged.manifests_sha256 = "0" * 64  # a later validation of another copy with the same set id
    with connect(database_url) as conn:
        store(conn, these)
        store(conn, damaged)
    assert execute(setup, workspace).run_id


def test_wrong_passphrase_is_refused_before_anything_is_written(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    with connect(database_url) as conn:
        runs_before = conn.execute("SELECT count(*) FROM omni.recovery_runs").fetchone()
    with pytest.raises(RecoveryError, match="passphrase"):
        execute_recovery(load_settings(workspace), ExecuteOptions(setup.plan_path), b"wrong")
    assert not (tmp_path / "infra").exists()
    with connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM omni.recovery_runs").fetchone() == runs_before


def test_edited_plan_with_a_cycle_is_refused_naming_the_line(
    validated: DemoSet, tmp_path: Path, workspace: Path
):
    setup = make_setup(validated, tmp_path)
    text = setup.plan_path.read_text()
    edited = text.replace("depends_on: []", "depends_on: [report/recovery]", 1)
    assert edited != text
    setup.plan_path.write_text(edited)
    with pytest.raises(RecoveryError, match=r"recovery-plan\.yaml:\d+: .*cycle"):
        execute(setup, workspace)


def test_cli_status_and_execute_plan(
    validated: DemoSet, tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
):
    setup = make_setup(validated, tmp_path)
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    runner = CliRunner()
    result = runner.invoke(
        main, ["deploy-directors", "--config", str(setup.plan_path), "--workspace", str(workspace)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["status", "--workspace", str(workspace)])
    # the run stays open for execute-plan, which no process runs meanwhile
    assert result.exit_code == 0 and "not running (no process holds it" in result.output, result.output
    result = runner.invoke(
        main,
        [
            "execute-plan",
            "--plan",
            str(setup.plan_path),
            "--workspace",
            str(workspace),
            "--io-priority",
            "low",
            "--mode",
            "resource-efficient",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    result = runner.invoke(main, ["status", "--workspace", str(workspace)])
    assert "succeeded" in result.output


def execute_plan_command(
    setup: Setup, workspace: Path, database_url: str
) -> tuple[list[str], dict[str, str]]:
    """The command line of `omni-recovery execute-plan` of `setup`'s plan, and its environment."""
    command = [sys.executable, "-m", "omni_recovery.cli", "execute-plan", "--plan", str(setup.plan_path)]
    env = dict(
        os.environ, OMNI_RECOVERY_PASSPHRASE=PASSPHRASE.decode(), OMNI_RECOVERY_DATABASE_URL=database_url
    )
    return [*command, "--workspace", str(workspace)], env


# execute-plan as the console script runs it, but it stops itself (SIGSTOP) a random 0-5 ms after
# it has put argv[1] more files in place under the folders listed in argv[3]: where it stops depends
# on its own progress, not on how soon a watcher looks (a watcher short of CPU could see a fast
# restore only once it had ended).
SELF_STOPPING_EXECUTE_PLAN = textwrap.dedent(
    """
    import itertools, json, os, random, signal, sys, threading
    from omni_recovery.cli.main import main
    from omni_recovery.targets.driver import PartialFile

    files, seed, folders = int(sys.argv[1]), int(sys.argv[2]), tuple(json.loads(sys.argv[3]))
    commit, placed = PartialFile.commit, itertools.count(1)

    def counted(self, **options):
        commit(self, **options)
        if self._full.startswith(folders) and next(placed) == files:
            delay = random.Random(seed).uniform(0, 0.005)
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGSTOP)).start()

    PartialFile.commit = counted
    if os.environ.get("OMNI_TEST_STOP_MID_FILE"):
        # Stop inside the first volume file written instead, and once continued, write on only when
        # the run has been cancelled (Ctrl-C): its step is certainly in flight when the stop lands.
        import gc
        write, stopped = PartialFile.write, threading.Event()

        def stalled(self, data):
            if not stopped.is_set() and self._full.startswith(folders):
                stopped.set()
                os.kill(os.getpid(), signal.SIGSTOP)
                for run in [o for o in gc.get_objects() if type(o).__name__ == "RunContext"]:
                    run.cancel.wait(300)  # set by the Ctrl-C, however slowly a loaded machine gets there
            return write(self, data)

        PartialFile.commit, PartialFile.write = commit, stalled
    main(sys.argv[4:], prog_name="omni-recovery")
    """
)


def stopped_after_volume_files(
    command: list[str],
    env: dict[str, str],
    pools: list[Path],
    files: int,
    seed: int = 0,
    stderr: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """execute-plan (`command`, from `execute_plan_command`) in a child process, once it has stopped
    itself, `files` more files put in place in the volume folders `pools`."""
    folders = json.dumps([f"{pool}/" for pool in pools])
    script = [sys.executable, "-c", SELF_STOPPING_EXECUTE_PLAN, str(files), str(seed), folders, *command[3:]]
    proc = subprocess.Popen(script, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    wait_stopped(proc, f"{files} volume files in place")
    return proc


def execute_plan_until_volume_files(
    setup: Setup, workspace: Path, database_url: str, parallel: int, mid_file: bool = False
) -> tuple[subprocess.Popen[bytes], list[Path]]:
    """`omni-recovery execute-plan` in a child process, stopped once its first volume file is in
    place (its volume phase is not over when the caller signals it); the plan's pools' volume folders."""
    command, env = execute_plan_command(setup, workspace, database_url)
    pools = [Path(TargetRoot(p.root, create=False).root) / "volumes" for p in setup.plan.pools]
    command += ["--parallel-factor", str(parallel)]
    if mid_file:
        env = {**env, "OMNI_TEST_STOP_MID_FILE": "1"}
    return stopped_after_volume_files(command, env, pools, 1, stderr=subprocess.PIPE), pools


def test_ctrl_c_during_volume_restore_stops_soon_and_the_rerun_finishes(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    proc, pools = execute_plan_until_volume_files(setup, workspace, database_url, parallel=2, mid_file=True)
    proc.send_signal(signal.SIGINT)  # delivered when it runs on
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=300)  # bounds a hang; a loaded machine may take a while
    assert proc.returncode != 0
    message = stderr.decode()
    assert "interrupted: the steps in flight stopped" in message and "Traceback" not in message, message
    run = latest_run(database_url)
    assert (run.status, run.finished_at) == ("failed", None)
    assert [s for s in run.steps if s.status == "failed" and "interrupted" in s.detail.get("error", "")]
    assert not [p for pool in pools for p in pool.rglob("*omni-partial*")]
    summary = execute(setup, workspace)
    assert summary.run_id == run.run_id and latest_run(database_url).status == "succeeded"


def test_sigkill_during_volume_restore_then_rerun_gives_the_same_result(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path / "s")
    execute(setup, tmp_path / "ws-clean")
    uninterrupted = restored_tree(setup.plan, tmp_path / "clean-gathered")
    shutil.rmtree(tmp_path / "s" / "infra")

    proc, pools = execute_plan_until_volume_files(setup, workspace, database_url, parallel=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = CliRunner().invoke(main, ["status", "--workspace", str(workspace)]).output
    assert "not running (no process holds it; execute-plan of its plan continues it)" in status, status
    assert "\n  stopped    volume/" in status and "\n  running" not in status, status
    before = {
        p: p.stat().st_mtime_ns
        for pool in pools
        if pool.exists()
        for p in pool.rglob("*")
        if p.is_file() and "omni-partial" not in p.name
    }

    assert before, "some volume files were verified and renamed into place before the kill"
    execute(setup, workspace)
    resumed = restored_tree(setup.plan, tmp_path / "resumed-gathered")
    for path, mtime in before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten after the resume"
    assert not [p for pool in pools for p in pool.rglob("*omni-partial*")]
    assert {p: d for p, d in resumed.items() if not p.startswith(REGENERATED)} == {
        p: d for p, d in uninterrupted.items() if not p.startswith(REGENERATED)
    }
    with connect(database_url) as conn:
        dupes = conn.execute(
            "SELECT count(*) - count(DISTINCT (run_id, target, path)) FROM omni.restored_files"
        ).fetchone()
    assert dupes == (0,)


def dagster_runs(workspace: Path) -> dict[str, tuple[str, str]]:
    """run id → (job name, status) of every run in the workspace's Dagster instance."""
    from pipelines.runner import dagster_instance

    return {
        r.run_id: (r.job_name, r.status.value) for r in dagster_instance(load_settings(workspace)).get_runs()
    }


@pytest.mark.parametrize("after_the_kill", ["status", "execute-plan", "a UI launch"])
def test_a_killed_restore_s_dagster_run_is_marked_failed_by_status_or_by_the_resume(
    validated: DemoSet,
    tmp_path: Path,
    workspace: Path,
    database_url: str,
    after_the_kill: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """The UI stops showing a SIGKILLed run as started once `status` sees no process holds it, or once
    execute-plan, or a restore launched from the UI, resumes the recovery; every run is one of the
    `restore` job."""
    setup = make_setup(validated, tmp_path)
    proc, _ = execute_plan_until_volume_files(setup, workspace, database_url, parallel=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = [run for run, (_, status) in dagster_runs(workspace).items() if status == "STARTED"]
    assert len(killed) == 1, dagster_runs(workspace)
    if after_the_kill == "status":
        CliRunner().invoke(main, ["status", "--workspace", str(workspace)])
    elif after_the_kill == "execute-plan":
        execute(setup, workspace)
    else:
        launch_restore_from_the_ui(setup, workspace, monkeypatch)
    runs = dagster_runs(workspace)
    assert runs[killed[0]] == ("restore", "FAILURE"), runs
    assert {job for job, _ in runs.values()} == {"restore"}
    assert not [run for run, (_, status) in runs.items() if status in ("STARTED", "STARTING")], runs


def launch_restore_from_the_ui(setup: Setup, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole `restore` job run in the workspace's Dagster instance as the UI launches it: the
    `recovery` resource configured with the plan, the passphrase from the environment."""
    from pipelines.definitions import build_definitions
    from pipelines.runner import dagster_instance
    from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG

    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    settings = load_settings(workspace)
    instance = dagster_instance(settings)
    apps = sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))
    known = set(instance.get_dynamic_partitions("applications"))
    instance.add_dynamic_partitions("applications", [a for a in apps if a not in known])
    config = {"workspace": str(workspace), "plan_path": str(setup.plan_path)}
    result = (
        build_definitions(settings)
        .resolve_job_def("restore")
        .execute_in_process(
            instance=instance,
            run_config={"resources": {"recovery": {"config": config}}},
            tags={RANGE_START_TAG: apps[0], RANGE_END_TAG: apps[-1]},
        )
    )
    assert result.success


def test_plan_reads_back(validated: DemoSet, tmp_path: Path):
    setup = make_setup(validated, tmp_path)
    assert plan_from_yaml(setup.plan_path.read_text()).sha256 == setup.plan.sha256


def test_restore_onto_fewer_larger_nodes_applies_every_adaptation(
    validated: DemoSet, tmp_path: Path, workspace: Path
):
    import ipaddress

    import yaml

    setup = make_setup(validated, tmp_path, nodes=[(f"big-{i}", 96, 786432, 8000) for i in range(3)])
    execute(setup, workspace)
    restored = tmp_path / "gathered"
    restored_tree(setup.plan, restored)
    subnets = {s.name: ipaddress.ip_network(s.new) for s in setup.plan.subnets}
    pools = [p.root for p in setup.plan.pools]
    for config in sorted(restored.glob("directors/*/config.yaml")):
        doc = yaml.safe_load(config.read_text())
        assert doc["node"].startswith("big-"), config
        address = ipaddress.ip_address(doc["addresses"]["management"])
        assert address in subnets["management"], (config, address)
        assert all(
            any(str(path).startswith(root) for root in pools) for path in doc["storage_paths"].values()
        )
    for volume in sorted(restored.glob("volumes/*/*/volume.yaml")):
        doc = yaml.safe_load(volume.read_text())
        assert any(doc["source_path"].startswith(root) for root in pools), volume
    assert sorted(p.name for p in restored.glob("nodes/*.yaml")) == ["big-0.yaml", "big-1.yaml", "big-2.yaml"]
    hosts = {p.director: p.node for p in setup.plan.placements}
    for state in restored.glob("directors/*/state.json"):
        director = state.parent.name
        vms = __import__("json").loads(state.read_text())["vms"]
        assert {vm["name"] for vm in vms} == {p.name for p in setup.plan.placements if p.director == director}
        assert hosts.get(director, "").startswith("big-")
    assert_a_working_pki(setup, validated.env)


def test_post_recovery_backup_registers_and_matches_the_first_set(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    from omni_recovery.plan.generate import open_set, read_set_environment

    setup = make_setup(validated, tmp_path)
    summary = execute(setup, workspace, signing_key=validated.key_path)
    assert summary.post_recovery_backup
    with open_set(str(validated.output)) as first, open_set(summary.post_recovery_backup) as second:
        before, after = read_set_environment(first), read_set_environment(second)
    ids = lambda env: {c.component_id for c in env.environment.components}  # noqa: E731
    assert ids(before) == ids(after)
    assert {v.name for v in before.environment.volumes} == {v.name for v in after.environment.volumes}
    from pipelines.runner import register_isos

    registered = register_isos(summary.post_recovery_backup, load_settings(workspace), log_level="WARNING")
    assert registered.components == len(ids(after))
    assert summary.report
    shown = json.loads(Path(summary.report).with_suffix(".json").read_text())
    issued = json.loads((workspace / "runs" / summary.run_id / "certificates.json").read_text())
    assert shown["ca_fingerprint"] == issued["ca_fingerprint_sha256"], "the report names the new CA"
    assert shown["post_recovery_backup"] == summary.post_recovery_backup
    assert shown["resume_command"] == "", "a run that succeeded has nothing to resume"


def ui_launch_of_one_application(workspace: Path, plan_path: Path, application: str) -> tuple[Any, Any]:
    """What the Dagster UI does for one application partition: the `restore` job's volume and
    application assets, with the `recovery` resource configured from the launchpad (the passphrase
    from the environment); the run's instance (ephemeral) and result."""
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions
    from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("applications", [application])
    job = build_definitions(load_settings(workspace)).resolve_job_def("restore")
    config = {"workspace": str(workspace), "plan_path": str(plan_path)}
    result = job.execute_in_process(
        instance=instance,
        run_config={"resources": {"recovery": {"config": config}}},
        asset_selection=[restored_volumes.key, restored_applications.key],
        tags={RANGE_START_TAG: application, RANGE_END_TAG: application},
    )
    return instance, result


def test_the_ui_path_backfills_an_application_with_its_hard_dependencies(
    validated: DemoSet, tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
):
    """What the Dagster UI does (`ui_launch_of_one_application`); the application's hard dependencies
    are restored with it, as on the command line."""
    setup = make_setup(validated, tmp_path)
    apps = sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))
    needs = step_needs(setup.plan, environment_from_folder(validated.env))
    with_deps = [a for a in apps if applications_with_dependencies(setup.plan, [a], needs) != [a]]
    assert with_deps, "the demo has applications with hard dependencies on others"
    chosen = with_deps[0]
    expected = set(applications_with_dependencies(setup.plan, [chosen], needs))
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    _, result = ui_launch_of_one_application(workspace, setup.plan_path, chosen)
    assert result.success
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    assert {p.split("/")[1] for p in restored if p.startswith("applications/")} == expected
    assert not [p for p in restored if not p.startswith(("applications/", "volumes/"))]


def test_a_whole_restore_from_the_ui_closes_its_recovery_run(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    """Every restore asset over every application in one UI run: the final phase closes the run."""
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions
    from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG

    setup = make_setup(validated, tmp_path)
    apps = sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("applications", apps)
    job = build_definitions(load_settings(workspace)).resolve_job_def("restore")
    config = {"workspace": str(workspace), "plan_path": str(setup.plan_path)}
    result = job.execute_in_process(
        instance=instance,
        run_config={"resources": {"recovery": {"config": config}}},
        tags={RANGE_START_TAG: apps[0], RANGE_END_TAG: apps[-1]},
    )
    assert result.success
    run = latest_run(database_url)
    assert run.status == "succeeded" and run.finished_at is not None
    assert all(s.status == "succeeded" for s in run.steps if not s.step_id.startswith("backup/"))


def damage_component_file(set_folder: Path, component: str) -> tuple[Path, str]:
    """Flip a byte of one stored (unchunked, unsealed) file of `component` in place: (ISO, path)."""
    for iso in sorted(set_folder.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            entry = next(
                (
                    e
                    for e in reader.manifest.files
                    if e.component == component and e.type == "file" and e.size > 10 and not e.chunk
                ),
                None,
            )
        if entry is not None and entry.encryption is None:
            flip_byte(iso, entry.path, 10)
            return iso, entry.path
    raise AssertionError(f"no stored file of {component}")


def needing(plan: Plan, env: Path, step_id: str) -> set[str]:
    """The steps that need `step_id`, directly or not."""
    needs = step_needs(plan, environment_from_folder(env))
    found: set[str] = set()
    while True:
        more = {s for s, wanted in needs.items() if wanted & (found | {step_id})} - found
        if not more:
            return found
        found |= more


def latest_run(database_url: str) -> RunRecord:
    with connect(database_url) as conn:
        return recent_runs(conn, limit=1)[0]


@pytest.fixture
def copied(validated: DemoSet, tmp_path: Path) -> DemoSet:
    """A copy of the validated set (same manifests, so the same validation covers it) to damage."""
    return dataclasses.replace(validated, output=shutil.copytree(validated.output, tmp_path / "set"))


def test_failed_step_skips_its_dependents_then_the_next_run_finishes(
    copied: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(copied, tmp_path)
    step = next(
        s for s in setup.plan.steps if s.id.startswith("volume/") and s.on_failure == "skip-dependents"
    )
    app = step.id.split("/")[1]
    dependents = needing(setup.plan, copied.env, step.id)
    assert f"application/{app}" in dependents, "an application needs its volumes"
    assert step.component
    iso, path = damage_component_file(copied.output, step.component)  # the medium degrades after validation

    with pytest.raises(RecoveryError, match=rf"not complete: .*{step.id}.*The report: ") as info:
        execute(setup, workspace)
    assert path not in str(info.value)  # the summary names steps; the step's own detail names the file
    run = latest_run(database_url)
    steps = {s.step_id: s for s in run.steps}
    assert (steps[step.id].status, steps[step.id].attempts) == ("failed", 1 + step.retries)
    assert iso.name in steps[step.id].detail["error"] and path in steps[step.id].detail["error"]
    for dependent in dependents:
        assert steps[dependent].status == "skipped" and steps[dependent].detail["blocked_by"] == step.id
    others = [s for s in setup.plan.steps if s.id.startswith("application/") and s.id not in dependents]
    assert others and all(steps[s.id].status == "succeeded" for s in others), "the rest went on"
    services = [s for s in setup.plan.steps if s.id.startswith("service/")]
    assert all(steps[s.id].status == "succeeded" for s in services), "waiting for the phase is not needing"
    assert steps["verify/data"].status == "failed" and steps["report/recovery"].status == "succeeded"
    assert steps["backup/post-recovery"].status == "skipped"
    assert (run.status, run.finished_at) == ("failed", None), "left open for the next run"
    shown = CliRunner().invoke(main, ["status", "--workspace", str(workspace)]).output
    assert f"failed     {step.id} (attempt {1 + step.retries}) {iso.name}" in shown
    assert f"{step.id} failed and its on_failure is skip-dependents" in shown
    failed_report = workspace / "reports" / run.run_id / "report.html"
    page = failed_report.read_text()
    assert page.index("FAILED") < page.index("Resume this run") < page.index("<h2>Checks")
    assert f"omni-recovery execute-plan --plan {setup.plan_path} --workspace {workspace}" in page

    damage_component_file(copied.output, step.component)  # flipped back: the medium replaced
    summary = execute(setup, workspace)
    assert summary.run_id == run.run_id
    again = {s.step_id: s for s in latest_run(database_url).steps}
    assert all(s.status == "succeeded" for i, s in again.items() if not i.startswith("backup/"))
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    earlier = json.loads(Path(summary.report).with_suffix(".json").read_text())["earlier_attempts"]
    [line] = [
        line for line in earlier if line.startswith(f"{step.id}: succeeded at attempt {2 + step.retries}")
    ]
    for attempt in range(1, 2 + step.retries):
        assert f"attempt {attempt} failed at " in line, line
    assert line.count(iso.name) == 1 + step.retries and path in line, "each earlier attempt's own error"
    assert "Earlier attempts" in Path(summary.report).read_text()


def damaged_stop_volume(demo: DemoSet, folder: Path) -> tuple[Setup, Step]:
    """A plan of `demo` whose set now has a damaged file in a volume whose on_failure is stop."""
    setup = make_setup(demo, folder)
    step = next(s for s in setup.plan.steps if s.id.startswith("volume/") and s.on_failure == "stop")
    assert step.component
    damage_component_file(demo.output, step.component)
    return setup, step


def test_the_command_line_says_a_failed_step_in_one_line_without_dagster_s_stack(
    copied: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup, step = damaged_stop_volume(copied, tmp_path)
    command, env = execute_plan_command(setup, workspace, database_url)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    said = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith(f"error: step {step.id} failed"), done.stderr
    report = Path(said[0].rsplit("The report: ", 1)[1])  # a stopped run has its report too
    page = report.read_text()
    assert "FAILED" in page and step.id in page and "execute-plan" in page


def test_failed_stop_step_ends_the_run_before_later_phases(
    copied: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup, step = damaged_stop_volume(copied, tmp_path)
    with pytest.raises(
        RecoveryError, match=rf"step {step.id} failed {1 + step.retries} time\(s\).*Fallback: "
    ):
        execute(setup, workspace)
    run = latest_run(database_url)
    assert (run.status, run.finished_at) == ("failed", None)
    assert not [s.step_id for s in run.steps if PHASE_INDEX[s.phase] > PHASE_INDEX[step.phase]]


def test_a_run_stopped_by_a_step_has_a_report_that_says_how_to_resume(
    copied: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    from omni_recovery.execute.runner import run_steps
    from omni_recovery.report.build import reported_if_stopped
    from pipelines.recovery_run import opened_recovery
    from pipelines.runner import dagster_instance

    setup, step = damaged_stop_volume(copied, tmp_path)
    options = ExecuteOptions(setup.plan_path)
    settings = load_settings(workspace)
    with opened_recovery(settings, options, PASSPHRASE, lambda: dagster_instance(settings)) as recovery:
        stopped = pytest.raises(RecoveryError, match=r"its on_failure is stop.*The report: ")
        with stopped as info, reported_if_stopped(recovery):
            run_steps(recovery, recovery.selected_steps())
    page = Path(str(info.value).rsplit("The report: ", 1)[1]).read_text()
    assert (
        page.index("FAILED") < page.index(step.id) < page.index("Resume this run") < page.index("<h2>Checks")
    )
    assert f"--plan {setup.plan_path}" in page


def edit_step(plan_path: Path, step_id: str, **fields: object) -> None:
    """Edit fields of one step in the plan file, as an operator would."""
    lines = plan_path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- id: {step_id}")
    for key, value in fields.items():
        at = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith(f"{key}:"))
        lines[at] = lines[at].split(f"{key}:")[0] + f"{key}: {value}\n"
    plan_path.write_text("".join(lines))


def test_a_skipped_step_whose_own_on_failure_is_stop_stops_the_run(
    copied: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(copied, tmp_path)
    volume = next(s for s in setup.plan.steps if s.id.startswith("volume/") and s.on_failure == "stop")
    app = f"application/{volume.id.split('/')[1]}"
    assert next(s for s in setup.plan.steps if s.id == app).on_failure == "stop"
    edit_step(setup.plan_path, volume.id, on_failure="skip-dependents")
    assert volume.component
    damage_component_file(copied.output, volume.component)
    with pytest.raises(RecoveryError, match=rf"step {app} cannot run: it needs {volume.id}, which failed"):
        execute(setup, workspace)
    steps = {s.step_id: s for s in latest_run(database_url).steps}
    assert steps[volume.id].status == "failed" and steps[app].status == "skipped"
    later = PHASE_INDEX[steps[app].phase]
    assert not [i for i, s in steps.items() if PHASE_INDEX[s.phase] > later], "nothing after it ran"


def test_a_step_past_its_timeout_fails_as_its_on_failure_says_then_the_next_run_finishes(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.restorer import items, sources

    setup = make_setup(validated, tmp_path)

    def folder(step_id: str) -> str:  # volume/app/vol -> volumes/app/vol
        return "volumes/" + step_id.split("/", 1)[1]

    volumes = [
        s for s in setup.plan.steps if s.id.startswith("volume/") and s.on_failure == "skip-dependents"
    ]
    step = max(volumes, key=lambda s: sum(1 for _ in (validated.env / folder(s.id)).rglob("*")))
    app = step.id.split("/")[1]
    edit_step(setup.plan_path, step.id, timeout_s=1, retries=1)
    blocks = sources.Sources.blocks

    def slowly(self: sources.Sources, item: items.RestoreItem, *rest: Any) -> Iterator[memoryview]:
        if item.path.startswith(folder(step.id) + "/"):
            time.sleep(0.3)  # a slow medium: the volume takes longer than its timeout_s
        yield from blocks(self, item, *rest)

    monkeypatch.setattr(sources.Sources, "blocks", slowly)
    with pytest.raises(RecoveryError, match=rf"not complete: .*{step.id}"):
        execute(setup, workspace)
    steps = {s.step_id: s for s in latest_run(database_url).steps}
    assert (steps[step.id].status, steps[step.id].attempts) == ("failed", 2)
    assert "the time given to this restore ran out" in steps[step.id].detail["error"]
    assert steps[f"application/{app}"].status == "skipped"
    assert all(s.status == "succeeded" for i, s in steps.items() if i.startswith("service/"))

    monkeypatch.setattr(sources.Sources, "blocks", blocks)  # the medium is fast again
    summary = execute(setup, workspace)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()


def test_a_storage_root_without_room_for_what_is_left_stops_the_run_before_any_volume(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    setup = make_setup(validated, tmp_path)
    infra, disk_usage = str(tmp_path / "infra"), shutil.disk_usage

    def nearly_full(path: str) -> Any:  # the roots' filesystem, with 1 MiB left
        usage = disk_usage(path)
        return usage._replace(free=1 << 20) if str(path).startswith(infra) else usage

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    with pytest.raises(RecoveryError) as refused:
        execute(setup, workspace)
    message = str(refused.value)
    assert re.search(
        r"step storage/pool/\S+ failed 3 time\(s\): the filesystem of file://\S+ has 0.00 GiB "
        r"\(1,048,576 bytes\) free, and this recovery still writes \d+\.\d\d GiB \(([\d,]+) bytes\)",
        message,
    ), message
    needed = int(re.findall(r"still writes [\d.]+ GiB \(([\d,]+) bytes\)", message)[0].replace(",", ""))
    run = latest_run(database_url)
    assert not [s for s in run.steps if PHASE_INDEX[s.phase] >= PHASE_INDEX["volumes"]]
    assert not [p for p in (tmp_path / "infra").rglob("*") if "/volumes/" in str(p) and p.is_file()]

    # What is left: everything the plan restores but the files the earlier steps verified.
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT sum(size) FROM omni.restored_files WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    assert row is not None
    verified = int(row[0])
    volume_bytes = sum(p.stat().st_size for p in (validated.env / "volumes").rglob("*") if p.is_file())
    assert verified > 0 and volume_bytes > 0 and needed > volume_bytes
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    summary = execute(setup, workspace)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    # Not counted: what the recovery makes rather than restores (certificates, ring and cluster files).
    written = sum(p.stat().st_size for p in (tmp_path / "infra").rglob("*") if p.is_file())
    assert needed + verified <= written <= needed + verified + (64 << 10)
    pools = [s for s in latest_run(database_url).steps if s.step_id.startswith("storage/pool/")]
    assert pools and all(s.detail["free_bytes"] > s.detail["bytes_to_write"] == needed for s in pools)


def test_a_database_that_drops_the_connection_fails_the_run_clearly_and_the_rerun_finishes(
    validated: DemoSet, tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    init_database(fresh_database_url)
    with connect(fresh_database_url) as conn:
        store(conn, validate(str(validated.output), validated.trusted, PASSPHRASE, deep=True))
    setup, settings = make_setup(validated, tmp_path), load_settings(tmp_path / "ws")
    dropped: list[Any] = []

    def drop_connections(phase: str, amount: int) -> None:  # the server restarts under the restore
        if phase == "restore" and not dropped:
            with psycopg.connect(fresh_database_url, autocommit=True) as admin:
                dropped.extend(
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchall()
                )

    with pytest.raises(DatabaseError, match=r"the recovery database stopped answering \(.+\)\. What was"):
        execute_recovery(settings, ExecuteOptions(setup.plan_path), PASSPHRASE, progress=drop_connections)
    assert dropped
    interrupted = latest_run(fresh_database_url)
    assert interrupted.status == "running" and interrupted.finished_at is None  # it could not say more

    summary = execute(setup, tmp_path / "ws")
    assert summary.run_id == interrupted.run_id and latest_run(fresh_database_url).status == "succeeded"
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()


def test_a_volume_folder_holding_other_data_is_not_restored_into(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    volumes = [s for s in setup.plan.steps if s.id.startswith("volume/")]
    step = next(s for s in volumes if s.on_failure == "skip-dependents")
    folder = TargetRoot(next(p.new_path for p in setup.plan.paths if p.subject == step.component))
    folder.write_bytes_atomic("files/base/1/left-over", b"an older system's data")
    with pytest.raises(RecoveryError, match="not complete"):
        execute(setup, workspace)
    steps = {s.step_id: s for s in latest_run(database_url).steps}
    error = steps[step.id].detail["error"]
    application = f"application/{step.id.split('/')[1]}"
    assert steps[step.id].status == "failed" and steps[application].status == "skipped"
    assert "already holds what" in error and "files/base/1/left-over" in error, error
    assert set(folder.listing()) == {"files", "files/base", "files/base/1", "files/base/1/left-over"}

    folder.discard("files/base/1/left-over")  # the operator moves it away; empty folders hold nothing
    summary = execute(setup, workspace)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()


def test_a_running_volume_step_records_its_bytes_as_it_goes(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.execute import tracking
    from omni_recovery.execute.steps import restore
    from omni_recovery.restorer import sources

    monkeypatch.setattr(restore, "STEP_PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(sources, "PROGRESS_BYTES", 4096)
    recorded: dict[str, list[int]] = {}
    step_progress = tracking.RecoveryTracker.step_progress

    def spy(self: tracking.RecoveryTracker, step_id: str, bytes_written: int) -> None:
        recorded.setdefault(step_id, []).append(bytes_written)
        step_progress(self, step_id, bytes_written)

    monkeypatch.setattr(tracking.RecoveryTracker, "step_progress", spy)
    setup = make_setup(validated, tmp_path)
    execute(setup, workspace)
    steps = {s.step_id: s for s in latest_run(database_url).steps}
    volumes = [i for i in recorded if i.startswith("volume/")]
    assert volumes, "volume steps recorded their progress while running"
    for step_id in volumes:
        totals = recorded[step_id]
        assert totals == sorted(totals) and totals[-1] <= steps[step_id].bytes_written, step_id


def test_the_largest_volume_starts_first_whatever_its_place_in_the_plan(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    in_plan = [s.id for s in setup.plan.steps if s.phase == "volumes" and not s.is_gate]
    execute(setup, workspace, parallel_factor=1)
    volumes = [s for s in latest_run(database_url).steps if s.step_id in in_plan]
    largest = max(volumes, key=lambda s: s.bytes_written)
    assert in_plan.index(largest.step_id) > 0, "the fixture's largest volume is not first in the plan"
    started = sorted(volumes, key=lambda s: (s.started_at, s.step_id))
    assert started[0].step_id == largest.step_id
    by_size = sorted(volumes, key=lambda s: -s.bytes_written)
    assert [s.bytes_written for s in started] == [s.bytes_written for s in by_size]


def test_a_set_whose_files_lie_in_sections_out_of_order_is_recovered_identically(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    scattered = scattered_copy(validated.output, tmp_path / "set")
    assert scattered
    demo = dataclasses.replace(validated, output=tmp_path / "set")
    setup, _ = recovered(demo, tmp_path / "target", workspace, database_url)
    source, restored = digests(validated.env), restored_tree(setup.plan, tmp_path / "gathered")
    data = [p for p in source if "/files/" in p or p.endswith((".jsonl", "secrets.json"))]
    assert data and all(restored.get(p) == source[p] for p in data)
    assert {env_path(p) for p in scattered} & set(data), "some scattered file is compared"


def wait_until(condition: Callable[[], object], what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        time.sleep(0.01)


def while_running(
    proc: subprocess.Popen[bytes], condition: Callable[[], object], what: str
) -> Callable[[], object]:
    """`condition`, failing once `proc` has ended (it will never hold then)."""

    def check() -> object:
        assert proc.poll() is None, f"the process ended before {what}"
        return condition()

    return check


def wait_stopped(proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait until `proc` stands still (SIGSTOP), failing if it ends first."""
    stopped = while_running(proc, lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED, what)
    wait_until(stopped, what)


def stop_when(proc: subprocess.Popen[bytes], condition: Callable[[], object], what: str) -> None:
    """Stop `proc` (SIGSTOP) as soon as a look finds `condition` holds, so it goes no further until
    SIGCONT or SIGKILL."""
    wait_until(while_running(proc, condition, what), what)
    proc.send_signal(signal.SIGSTOP)
    wait_stopped(proc, what)


def frozen_holder(
    database_url: str, plan: Plan, procs: list[subprocess.Popen[bytes]], pools: list[Path] | None = None
) -> subprocess.Popen[bytes]:
    """The one of `procs` that holds the plan's run, stopped (SIGSTOP) once it holds it and has
    opened the run (and, with `pools`, once a volume file is in place): its lock stays held while it
    stands still."""
    by_pid = {p.pid: p for p in procs}
    found: list[subprocess.Popen[bytes]] = []

    def holding() -> bool:
        assert all(p.poll() is None for p in by_pid.values() if p not in found), "a process ended first"
        with connect(database_url) as conn:
            holder = run_holder(conn, plan_id(plan))
            opened = conn.execute(
                "SELECT 1 FROM omni.recovery_runs WHERE plan_id = %s AND finished_at IS NULL",
                (plan_id(plan),),
            ).fetchone()
        if holder is None or holder.pid not in by_pid or not opened:
            return False
        if pools is not None and not any(
            f.is_file() and "omni-partial" not in f.name
            for pool in pools
            if pool.exists()
            for f in pool.rglob("*")
        ):
            return False
        found.append(by_pid[holder.pid])
        return True

    wait_until(holding, "a process holding the run")
    found[0].send_signal(signal.SIGSTOP)
    return found[0]


def untouched(database_url: str, *folders: Path) -> tuple[object, ...]:
    """What a refused process must leave as it was: every file under `folders` (inode, size, mtime)
    and the recovery database's runs, steps, verified files and audit trail."""
    files = sorted(
        (str(p), p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file()
    )
    with connect(database_url) as conn:
        rows = [
            conn.execute(query).fetchall()
            for query in (
                "SELECT run_id, status, finished_at FROM omni.recovery_runs ORDER BY run_id",
                "SELECT run_id, step_id, status, attempts FROM omni.recovery_steps ORDER BY 1, 2",
                "SELECT count(*) FROM omni.restored_files",
                "SELECT count(*) FROM omni.audit_log",
            )
        ]
    return tuple(files), tuple(map(tuple, rows))


def busy_message(run_id: str, holder: subprocess.Popen[bytes]) -> str:
    host = re.escape(socket.gethostname())
    return rf"run {run_id} is being executed by process {holder.pid} on host {host} since \d{{4}}-"


def ran_once(database_url: str, run_id: str) -> None:
    """The run succeeded, opened once and never interrupted or resumed, each step run once."""
    with connect(database_url) as conn:
        trail = [
            r[0]
            for r in conn.execute(
                "SELECT operation FROM omni.audit_log WHERE subject = %s ORDER BY id", (run_id,)
            ).fetchall()
        ]
        [run] = [r for r in recent_runs(conn, limit=50) if r.run_id == run_id]
    assert trail == ["recovery.start", "recovery.succeeded"], trail
    assert run.status == "succeeded" and {s.attempts for s in run.steps} == {1}, run.steps


def test_two_execute_plans_started_together_one_runs_and_the_other_is_refused_untouched(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    command, env = execute_plan_command(setup, workspace, database_url)
    logs = [tmp_path / f"stderr-{n}" for n in range(2)]
    procs = []
    for log in logs:
        with log.open("wb") as err:
            procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err))
    holder = frozen_holder(database_url, setup.plan, procs)
    try:
        [other] = [p for p in procs if p is not holder]
        before = untouched(database_url, tmp_path / "infra", workspace)
        other.wait(timeout=120)
        assert untouched(database_url, tmp_path / "infra", workspace) == before
    finally:
        holder.send_signal(signal.SIGCONT)
    holder.wait(timeout=300)
    assert holder.returncode == 0, logs[procs.index(holder)].read_text()
    run_id = latest_run(database_url).run_id
    message = logs[procs.index(other)].read_text()
    assert other.returncode == 1 and re.search(busy_message(run_id, holder), message), message
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1, message
    ran_once(database_url, run_id)


def test_while_execute_plan_runs_a_second_process_or_a_ui_launch_is_refused_and_status_says_running(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions

    setup = make_setup(validated, tmp_path)
    proc, pools = execute_plan_until_volume_files(setup, workspace, database_url, parallel=2)
    holder = frozen_holder(database_url, setup.plan, [proc], pools)
    try:
        run_id = latest_run(database_url).run_id
        before = untouched(database_url, tmp_path / "infra", workspace)
        command, env = execute_plan_command(setup, workspace, database_url)
        deploy = [*command[:3], "deploy-directors", "--config", *command[5:]]
        for second in (command, deploy):
            done = subprocess.run(second, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 1 and re.search(busy_message(run_id, holder), done.stderr), done.stderr
            assert "Traceback" not in done.stderr
        monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
        config = {"workspace": str(workspace), "plan_path": str(setup.plan_path)}
        launched = (
            build_definitions(load_settings(workspace))
            .resolve_job_def("restore")
            .execute_in_process(
                instance=DagsterInstance.ephemeral(),
                run_config={"resources": {"recovery": {"config": config}}},
                asset_selection=[restored_volumes.key],
                raise_on_error=False,
            )
        )
        assert not launched.success
        failures = " ".join(str(e.event_specific_data) for e in launched.all_events if e.is_failure)
        assert re.search(busy_message(run_id, holder), failures), failures
        assert untouched(database_url, tmp_path / "infra", workspace) == before

        status = subprocess.run(
            [*command[:3], "status", "--workspace", str(workspace)], env=env, capture_output=True, text=True
        ).stdout
        assert f"{run_id}  plan {plan_id(setup.plan)}  running (by process {holder.pid} on host" in status, (
            status
        )
        assert "not running" not in status and "stopped" not in status and "\n  running" in status, status
    finally:
        holder.send_signal(signal.SIGCONT)
    _, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err.decode()
    ran_once(database_url, run_id)


@pytest.fixture(scope="module")
def killable(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> DemoSet:
    """A validated set whose volume phase lasts long enough for many kills: thousands of small
    files (the small demo scale) and a few large ones."""
    scale = DemoOptions(volume_scale="small", applications=8, seed=11, big_file_bytes=48 * 2**20)
    env = write_demo(tmp_path_factory, "killable-env", scale)
    options = WriterOptions(backup_set_id="k1", max_iso_size=16 * 2**20, chunk_size=4 * 2**20)
    demo = signed_set(env, tmp_path_factory.mktemp("killable-set"), options)
    report = validate(str(demo.output), demo.trusted, PASSPHRASE, deep=True)
    assert report.passed, report.to_text()
    with connect(database_url) as conn:
        store(conn, report)
    return demo


def final_files(pools: list[Path]) -> dict[Path, tuple[int, int]]:
    """Every file under its final name in the pools' volume folders: (inode, mtime)."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for pool in pools
        if pool.exists()
        for p in pool.rglob("*")
        if p.is_file() and not p.name.endswith(PARTIAL_SUFFIX)
    }


def count_final_files(pools: list[Path]) -> int:
    """How many files are under their final name in the pools' volume folders (names only: cheap
    enough to poll while a restore runs, so a kill lands close to the count it waits for)."""
    return sum(
        1
        for pool in pools
        for _, _, names in os.walk(pool)
        for name in names
        if not name.endswith(PARTIAL_SUFFIX)
    )


def kill_during_volumes(
    command: list[str], env: dict[str, str], pools: list[Path], files: int, seed: int
) -> int:
    """Run `command` (execute-plan) until it stops itself a random instant after putting `files`
    more volume files in place, then SIGKILL it; how many volume files were in place then."""
    proc = stopped_after_volume_files(command, env, pools, files, seed)
    in_place = count_final_files(pools)
    proc.kill()
    proc.wait()
    return in_place


def test_execute_plan_killed_at_20_random_instants_of_its_volumes_rewrites_no_file_it_had_put_in_place(
    killable: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(killable, tmp_path)
    command, env = execute_plan_command(setup, workspace, database_url)
    command = [*command, "--parallel-factor", "1"]  # one file at a time: 20 kills fit in the volumes
    pools = [Path(TargetRoot(p.root, create=False).root) / "volumes" for p in setup.plan.pools]
    source_files = sum(1 for p in (killable.env / "volumes").rglob("*") if p.is_file())
    assert source_files > 20 * 8 * 4, "room for 20 kills of up to 8 files each and a few more"
    chance = random.Random(20)
    first_seen: dict[Path, tuple[int, int]] = {}
    in_place_at_kills: list[int] = []
    for kill in range(20):
        in_place_at_kills.append(kill_during_volumes(command, env, pools, chance.randint(1, 8), kill))
        for path, identity in final_files(pools).items():
            assert first_seen.setdefault(path, identity) == identity, f"kill {kill}: {path} was rewritten"
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert latest_run(database_url).status == "succeeded"
    after = final_files(pools)
    assert max(in_place_at_kills) < len(after), f"a kill came after the volume phase: {in_place_at_kills}"
    rewritten = [p for p, identity in first_seen.items() if after.get(p) != identity]
    assert first_seen and not rewritten, f"{len(rewritten)} file(s) rewritten, e.g. {rewritten[:3]}"
    source = {p: d for p, d in digests(killable.env).items() if p.startswith("volumes/") and "/files" in p}
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    assert {p: d for p, d in restored.items() if p in source or "/files" in p} == source, "volume data"
    assert not [p for pool in pools for p in pool.rglob(f"*{PARTIAL_SUFFIX}")]


PROGRESS_LINE = re.compile(
    r"^progress (?P<run>run-\S+): (?P<status>\w+), phase (?P<phase>\S+), running .*; "
    r"steps (?P<steps>\d+)/(?P<planned>\d+), files (?P<files>\d+)/(?P<total_files>\d+), "
    r"(?P<mib>[\d.]+) of (?P<total>[\d.]+) MiB, [\d.]+ MiB/s, ETA \S+$"
)


def progress_readings(output: str) -> list[re.Match[str]]:
    """The progress lines of a command's output; each must be whole and the planned totals never change."""
    lines = [line for line in output.splitlines() if line.startswith("progress ")]
    readings = [PROGRESS_LINE.match(line) for line in lines]
    assert all(readings), [line for line, m in zip(lines, readings, strict=True) if not m]
    found = [m for m in readings if m]
    assert len({(m["planned"], m["total_files"], m["total"]) for m in found}) == 1, lines
    return found


def assert_growing_to_the_end(readings: list[re.Match[str]]) -> None:
    done = [float(m["mib"]) for m in readings]
    assert len(readings) >= 2 and done == sorted(done) and done[-1] > done[0], done
    last = readings[-1]
    assert last["status"] == "succeeded" and float(last["total"]) > 0 and int(last["total_files"]) > 0
    assert_all_done(last)


def assert_all_done(last: re.Match[str]) -> None:
    """Files and bytes done are the planned totals: rewritten documents count as done as well."""
    assert (last["files"], last["mib"]) == (last["total_files"], last["total"]), last.group(0)


def registered(demo: DemoSet, workspace: Path) -> None:
    """The set in the workspace's catalog, as register-isos leaves it (the planned totals come from it)."""
    from pipelines.runner import register_isos

    register_isos(str(demo.output), load_settings(workspace), log_level="CRITICAL")


def test_execute_plan_off_a_terminal_prints_progress_lines_with_growing_bytes_of_the_planned_total(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    registered(validated, workspace)
    command, env = execute_plan_command(setup, workspace, database_url)
    done = subprocess.run(
        [*command, "--progress-every", "0.05"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    readings = progress_readings(done.stdout)
    assert_growing_to_the_end(readings)
    assert {m["run"] for m in readings} == {latest_run(database_url).run_id}
    assert int(readings[-1]["steps"]) == int(readings[-1]["planned"]) - 1, "all but the unsigned backup"


def test_deploy_directors_shows_the_progress_of_the_director_steps_only_up_to_their_total(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    registered(validated, workspace)
    command, env = execute_plan_command(setup, workspace, database_url)
    deploy = [*command[:3], "deploy-directors", "--config", *command[5:], "--progress-every", "0.05"]
    done = subprocess.run(deploy, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    last = progress_readings(done.stdout)[-1]
    directors = [s.id for s in setup.plan.steps if s.phase in ("directors", "ring") and not s.is_gate]
    with connect(database_url) as conn:
        whole = planned_totals(conn, latest_run(database_url).run_id)
    assert whole.files is not None and whole.bytes is not None
    files = sum(whole.work[step][0] for step in directors)
    size = sum(whole.work[step][1] for step in directors)
    assert 0 < files < whole.files and 0 < size < whole.bytes, "the Directors are part of the plan"
    assert (int(last["planned"]), int(last["total_files"]), last["total"]) == (
        len(directors),
        files,
        f"{size / 2**20:.1f}",
    )
    assert int(last["steps"]) == len(directors) and last["status"] == "running", "the run stays open"
    assert_all_done(last)


def test_status_watch_follows_a_run_another_process_executes_until_it_ends(
    validated: DemoSet, tmp_path: Path, workspace: Path, database_url: str
):
    setup = make_setup(validated, tmp_path)
    registered(validated, workspace)
    proc, pools = execute_plan_until_volume_files(setup, workspace, database_url, parallel=1)
    holder = frozen_holder(database_url, setup.plan, [proc], pools)
    command, env = execute_plan_command(setup, workspace, database_url)
    watched = tmp_path / "watch.out"
    with watched.open("w") as out:
        watch = subprocess.Popen(
            [*command[:3], "status", "--watch", "--progress-every", "0.05", "--workspace", str(workspace)],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
    try:
        wait_until(lambda: "running, phase volumes" in watched.read_text(), "status --watch to show the run")
        assert watch.poll() is None, "it follows the run while the run goes on"
    finally:
        holder.send_signal(signal.SIGCONT)
    holder.communicate(timeout=300)
    _, err = watch.communicate(timeout=300)
    assert holder.returncode == 0 and watch.returncode == 0, err.decode()
    readings = progress_readings(watched.read_text())
    assert readings[0]["status"] == "running"
    assert_growing_to_the_end(readings)
    assert f"{readings[-1]['run']}  plan {plan_id(setup.plan)}  succeeded" in watched.read_text()
