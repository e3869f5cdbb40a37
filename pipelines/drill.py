"""A recovery drill: the whole recovery of one backup set rehearsed onto scratch targets, unattended.

How it works: `run_drill` goes through the stages a real recovery goes through, timing each:
register the set (a no-op when it is registered), validate it deeply (stored like any validation),
plan it onto a scratch inventory (local folders under the workspace's drills/<id>/, shaped like the
set's own nodes; or `inventory`, a real test site whose roots must be empty), execute the plan
with every restored byte re-hashed, then compare the restored tree with the catalog (every volume
file byte for byte, every other restorable file present) and check the report. The scratch
targets are removed at the end unless `keep`. The drill is recorded in omni.drills (verdict, the
stage that failed, seconds per stage, bytes restored, the projected time of a real recovery).

The projection is the time of the stages a real recovery also needs (register, validate, plan,
execute) on this site; the verdict line also gives the restore throughput it was measured at.

What can go wrong: any stage's failure ends the drill there with that stage's one-line error
(a damaged byte: the ISO and path deep validation named); the scratch targets are still removed.
A test-site inventory whose roots hold anything is refused before anything is written, so a
drill never deletes what it did not write.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import fsspec
from psycopg.types.json import Jsonb

from omni_recovery.backupset.hashing import sha256_file
from omni_recovery.backupset.signing import TrustedSigners
from omni_recovery.db.connection import connect
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import EnvironmentStateError, RecoveryError
from omni_recovery.settings import Settings
from transforms.target_layout import is_restored

Echo = Callable[[str], None]
REAL_RECOVERY_STAGES = ("register", "validate", "plan", "execute")


@dataclass(frozen=True)
class DrillOptions:
    location: str
    trusted: TrustedSigners
    passphrase: bytes
    inventory: Path | None = None
    keep: bool = False
    parallel_factor: int = 2


@dataclass
class DrillResult:
    """What one drill found; `passed` when every stage succeeded."""

    drill_id: str
    location: str
    started_at: datetime
    backup_set_id: str | None = None
    durations: dict[str, float] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None
    bytes_restored: int = 0
    report: str | None = None
    kept_scratch: str | None = None
    finished_at: datetime | None = None

    @property
    def passed(self) -> bool:
        return self.failed_stage is None

    @property
    def projected_seconds(self) -> float | None:
        """A real recovery of this set on this site: the stages it shares with the drill."""
        if not self.passed:
            return None
        return sum(self.durations[s] for s in REAL_RECOVERY_STAGES)

    def verdict(self) -> str:
        """One line: the verdict, the set, the time of each stage, the projection."""
        stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.durations.items())
        head = f"drill {self.drill_id} of set {self.backup_set_id or self.location}"
        if not self.passed:
            return f"{head}: FAILED at {self.failed_stage}: {self.error} ({stages})"
        throughput = self.bytes_restored / max(self.durations["execute"], 1e-3) / 2**20
        return (
            f"{head}: PASSED ({stages}); a real recovery of this set on this site: about "
            f"{self.projected_seconds:.0f}s at {throughput:.1f} MiB/s restored"
        )


class DrillStageFailed(RecoveryError):
    """A stage of the drill failed; the drill ends there."""


def run_drill(settings: Settings, options: DrillOptions, echo: Echo = lambda line: None) -> DrillResult:
    """Rehearse the recovery of the set at `options.location`; record and return the result."""
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url

    url = database_url(settings)
    init_database(url)
    result = DrillResult(f"drill-{uuid.uuid4().hex[:12]}", options.location, datetime.now(UTC))
    scratch = settings.workspace / "drills" / result.drill_id
    drill = _Drill(settings, options, url, result, scratch, echo)
    try:
        drill.run()
    except DrillStageFailed:
        pass  # recorded in result by the stage
    finally:
        drill.clean_up()
        result.finished_at = datetime.now(UTC)
        record_drill(url, result)
    return result


class _Drill:
    """The stages of one drill, in order, sharing what each one made."""

    def __init__(
        self,
        settings: Settings,
        options: DrillOptions,
        url: str,
        result: DrillResult,
        scratch: Path,
        echo: Echo,
    ) -> None:
        self.settings, self.options, self.url = settings, options, url
        self.result, self.scratch, self.echo = result, scratch, echo
        self.roots: list[str] = []
        self.run_folder: Path | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except (RecoveryError, OSError) as exc:
            self.result.failed_stage, self.result.error = name, (str(exc).splitlines() or [repr(exc)])[0]
            raise DrillStageFailed(str(exc)) from exc
        except BaseException as exc:  # interrupted (Ctrl-C) or a bug: recorded as failed, then raised on
            self.result.failed_stage, self.result.error = name, f"stopped by {type(exc).__name__}: {exc}"
            raise
        finally:
            self.result.durations[name] = round(time.monotonic() - started, 3)
        self.echo(f"  {name}: done in {self.result.durations[name]:.1f}s")

    def run(self) -> None:
        with self.stage("register"):
            self.register()
        with self.stage("validate"):
            self.validate()
        with self.stage("plan"):
            plan_path = self.plan()
        with self.stage("execute"):
            self.execute(plan_path)
        with self.stage("compare"):
            self.compare()
        with self.stage("report"):
            self.check_report()

    def register(self) -> None:
        from pipelines.runner import QUIET_CONSOLE, register_isos

        summary = register_isos(self.options.location, self.settings, log_level=QUIET_CONSOLE)
        if len(summary.backup_set_ids) != 1:
            raise RecoveryError(f"{self.options.location} holds {len(summary.backup_set_ids)} sets, not one")
        self.result.backup_set_id = summary.backup_set_ids[0]

    def validate(self) -> None:
        from omni_recovery.validate import store, validate

        report = validate(
            self.options.location,
            self.options.trusted,
            self.options.passphrase,
            deep=True,
            parallel_factor=self.options.parallel_factor,
        )
        with connect(self.url) as conn:
            store(conn, report)
        if not report.passed:
            first = report.blocking[0]
            where = ": ".join(x for x in (first.iso, first.path) if x)
            more = f" (and {len(report.blocking) - 1} more)" if len(report.blocking) > 1 else ""
            raise RecoveryError(f"deep validation failed: {where}: {first.message}{more}")

    def plan(self) -> Path:
        from omni_recovery.plan.generate import generate, record_plan_source, store_plan, write_plan_files

        self.scratch.mkdir(parents=True)
        inventory = self.options.inventory or self.scratch_inventory()
        plan, _ = generate(self.options.location, inventory, "basic")
        roots = [n.root for n in plan.nodes] + [p.root for p in plan.pools]
        if self.options.inventory is not None:
            refuse_occupied_roots(roots, inventory)
        self.roots = roots  # from here on, clean_up removes them
        plan_path = self.scratch / "recovery-plan.yaml"
        write_plan_files(plan, plan_path)
        record_plan_source(plan_path, self.options.location, inventory)
        store_plan(self.url, plan, created_by="drill")
        return plan_path

    def scratch_inventory(self) -> Path:
        """Local folders shaped like the set's own nodes (named drill-<node>)."""
        from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
        from omni_recovery.plan.generate import open_set, read_set_environment

        with open_set(self.options.location) as readers:
            nodes = read_set_environment(readers).environment.nodes
        shapes = [(f"drill-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in nodes]
        inventory = make_inventory(shapes, root=(self.scratch / "site").resolve().as_uri())
        path = self.scratch / "inventory.yaml"
        path.write_text(inventory_to_yaml(inventory), encoding="utf-8")
        return path

    def execute(self, plan_path: Path) -> None:
        from omni_recovery.execute.options import ExecuteOptions
        from pipelines.recovery_runner import execute_recovery
        from pipelines.sensors import DRILL_TAG

        options = ExecuteOptions(plan_path, parallel_factor=self.options.parallel_factor, reverify=True)
        tags = {DRILL_TAG: self.result.drill_id}
        summary = execute_recovery(self.settings, options, self.options.passphrase, tags=tags)
        self.run_folder = self.settings.workspace / "runs" / summary.run_id
        self.result.report = summary.report

    def compare(self) -> None:
        assert self.result.backup_set_id is not None
        gathered = self.scratch / "restored"
        _gather_roots(self.roots, gathered)
        expected = catalog_contents(self.url, self.result.backup_set_id)
        problems, restored = compare_with_catalog(expected, gathered)
        self.result.bytes_restored = restored
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise RecoveryError(f"the restored tree differs from the catalog: {problems[0]}{more}")

    def check_report(self) -> None:
        report = self.result.report
        if report is None or not Path(report).is_file():
            raise RecoveryError("the recovery wrote no report")
        status = str(json.loads(Path(report).with_suffix(".json").read_text(encoding="utf-8")).get("status"))
        if status.upper() != "SUCCEEDED":
            raise RecoveryError(f"the report {report} says {status}, not SUCCEEDED")

    def clean_up(self) -> None:
        if self.options.keep:
            if self.scratch.exists():
                self.result.kept_scratch = str(self.scratch)
            return
        if self.options.inventory is not None:
            for root in self.roots:
                _remove_tree(root)
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self.run_folder is not None:
            shutil.rmtree(self.run_folder, ignore_errors=True)


def refuse_occupied_roots(roots: list[str], inventory: Path) -> None:
    """A drill removes what it restored: it refuses a test site whose roots already hold anything."""
    for root in roots:
        fs, path = fsspec.core.url_to_fs(root)
        if fs.exists(path) and fs.ls(path):
            raise RecoveryError(
                f"{inventory}: root {root} is not empty; a drill restores only into empty roots, "
                "because it removes everything under them afterwards"
            )


def _remove_tree(root: str) -> None:
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _gather_roots(roots: list[str], into: Path) -> None:
    from omni_recovery.backup.post_recovery import gather
    from omni_recovery.targets.driver import TargetRoot

    for url in roots:
        fs, path = fsspec.core.url_to_fs(url)
        if fs.exists(path):
            gather(TargetRoot(url, create=False), into)


def catalog_contents(url: str, backup_set_id: str) -> dict[str, tuple[str | None, int]]:
    """Environment path → (content sha256, content size) of every file the catalog lists for the set:
    the plaintext's for sealed files, the whole file's for chunked ones."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT coalesce(chunk_of, path), "
            "coalesce(encryption->>'plaintext_sha256', logical_sha256, sha256), "
            "coalesce((encryption->>'plaintext_size')::bigint, logical_size, size) "
            "FROM omni.files WHERE backup_set_id = %s AND type = 'file' AND coalesce(chunk_index, 0) = 0",
            (backup_set_id,),
        ).fetchall()
    contents: dict[str, tuple[str | None, int]] = {}
    for iso_path, digest, size in rows:
        try:
            contents[env_path(iso_path)] = (digest, int(size))
        except EnvironmentStateError:
            continue  # the set's own metadata (manifest, index, data key), not an environment file
    return contents


def compare_with_catalog(
    expected: dict[str, tuple[str | None, int]], restored: Path
) -> tuple[list[str], int]:
    """Problems of the restored tree against the catalog, and the bytes of volume data compared.

    Volume files must be there byte for byte; other files must be there (documents are adapted
    and keys issued anew by design; the recovery's own verification checks their bytes). The old
    nodes' files are replaced by the new nodes', and NOT_RESTORED paths are never written."""
    from omni_recovery.plan.generate import is_document

    problems: list[str] = []
    compared = 0
    for relpath, (digest, size) in sorted(expected.items()):
        if relpath.startswith("nodes/") or not is_restored(relpath):
            continue
        path = restored / relpath
        if not path.is_file():
            problems.append(f"{relpath}: in the catalog, not restored")
        elif not is_document(relpath):
            found, found_size = sha256_file(path)
            compared += found_size
            if (found, found_size) != (digest, size):
                problems.append(
                    f"{relpath}: sha256 {found} ({found_size} bytes), the catalog has {digest} ({size})"
                )
    return problems, compared


def record_drill(url: str, result: DrillResult) -> None:
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO omni.drills (drill_id, backup_set_id, location, started_at, finished_at, passed, "
            "failed_stage, error, durations, bytes_restored, projected_seconds, report, kept_scratch) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                result.drill_id,
                result.backup_set_id,
                result.location,
                result.started_at,
                result.finished_at,
                result.passed,
                result.failed_stage,
                result.error,
                Jsonb(result.durations),
                result.bytes_restored,
                result.projected_seconds,
                result.report,
                result.kept_scratch,
            ),
        )
        conn.commit()
