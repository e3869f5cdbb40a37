"""Executing a recovery plan: each step of the plan restores its part of the environment.

How it works: `Recovery` loads everything a step needs once per process: the plan (re-validated
against the set's components, the inventory and the old environment), the set's ISOs (opened
once), the data key (the passphrase is checked first), the target layout (transforms/
target_layout.py: what lands on which node or storage root, adapted), the new certificates, and
the run's tracker in the recovery database. `run_steps` then runs the plan's steps in plan order:
a step restores the layout files of its component through the verifying file restorer (or
writes the rewritten documents), forms the ring or the cluster, verifies, reports, or takes the
post-recovery backup. Each step is recorded when it starts and ends; each verified file once.

Resuming: a run killed at any point is continued by the next execute-plan of the same plan.
Steps that succeeded are skipped (verification and report are done again: they judge the whole
run); the step in flight runs again, skipping every file it had recorded as verified
(restore_files checks they are still there with their size) and keeping every file it had put
in place but not yet recorded (restore_files finds its size and digest right). The new CA and
node certificates are kept in the run's workspace folder so a resumed run issues none anew.

Failures: each step is tried 1 + its `retries` times (a retried restore skips the files it already
verified; a restore that runs past the step's `timeout_s` fails like any other), then its
`on_failure` applies: stop ends the run, skip-dependents skips the steps that need it (and, for a
failure in the infrastructure phases, everything after it), continue goes on; failed and skipped
steps are run again by the next execute-plan, and the run is closed only when every step has
succeeded. Up to --parallel-factor steps run at once, each once its dependencies have ended;
among the steps of a phase that are ready, those with the most stored bytes to copy start first
(otherwise plan order), so a large volume does not start last and keep the run waiting on it alone.

What can go wrong: a set that has not passed deep validation, or whose ISOs are not the ones
validated (their manifests' fingerprint differs from the validation's), is refused before anything is
written; a wrong passphrase fails before anything is written; a damaged file fails its step with
the ISO and path, leaving no partial file under a final name; a storage root that does not take a
new file, or whose filesystem has less room than this recovery still writes to it, fails its pool
step before any volume data is written; a volume folder that already holds files the volume does
not fails that volume's step (nothing is mixed into it); a run that stops or is interrupted is
recorded as failed and left open.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omni_recovery.adapt.inventory import Inventory, load_inventory
from omni_recovery.adapt.root_safety import plan_root_problems
from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import (
    DataKey,
    IsoReader,
    list_backup_set,
    manifests_fingerprint,
    unlock_data_key,
)
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.db.connection import connect
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import DatabaseError, Interrupted, RecoveryError, some_of
from omni_recovery.execute.scheduler import run_in_order
from omni_recovery.execute.tracking import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    Connection,
    RecoveryTracker,
    take_run_lock,
)
from omni_recovery.plan.generate import PLAN_RECORD_SUFFIX, SetEnvironment, read_set_environment, store_plan
from omni_recovery.plan.generate import plan_id as plan_id_of
from omni_recovery.restorer.certificates import (
    CertificateBundle,
    NodeIdentity,
    issue_certificates,
    old_ca_problem,
    pki_problems,
)
from omni_recovery.restorer.files import RestoredFile, RestoreItem, restore_files
from omni_recovery.restorer.membership import form_cluster, form_ring, render_cluster_file, render_ring_file
from omni_recovery.settings import Settings
from omni_recovery.targets import open_root
from omni_recovery.targets.driver import PARTIAL_SUFFIX, TargetRoot
from omni_recovery.targets.ssh import SshAccess
from transforms.plan import (
    PHASE_INDEX,
    PHASES,
    Plan,
    PlanError,
    Step,
    partial_restore,
    plan_from_yaml,
    step_needs,
)
from transforms.target_layout import TargetFile, TargetLayout, node_root, pool_root, target_layout

Progress = Callable[[str, int], None]
FINAL_PHASE = PHASES[-1]  # the post-recovery backup
VOLUMES = PHASE_INDEX["volumes"]  # the phases before it are the infrastructure everything builds on
# Steps that judge the whole run: a resumed run does them again even when they succeeded before.
SUMMARY_PHASES = ("verification", "report")
STEP_PROGRESS_SECONDS = 2.0
# Verified files are recorded in batches of this many files or bytes (one commit each). A file
# renamed into place but not yet recorded when the process dies is found whole, by its digest, and
# kept by the next run (restore_files); the byte bound keeps that re-reading short.
RECORD_FILES = 200
RECORD_BYTES = 32 << 20
# Written and removed under each storage root before volumes go there: it must take new files.
WRITE_PROBE = "omni-write-check"


class StepProgress:
    """A step's restore progress: passed on to the caller's callback, and the bytes restored so far
    recorded on the running step every STEP_PROGRESS_SECONDS, so that `status` shows a long volume
    step advancing (restore_files reports a big file every 64 MiB)."""

    def __init__(self, tracker: RecoveryTracker, step_id: str, forward: Progress) -> None:
        self.tracker, self.step_id, self.forward = tracker, step_id, forward
        self._lock = threading.Lock()
        self._bytes = 0
        self._recorded_at = time.monotonic()

    def __call__(self, phase: str, amount: int) -> None:
        self.forward(phase, amount)
        if phase != "restore":
            return
        with self._lock:
            self._bytes += amount
            if time.monotonic() - self._recorded_at < STEP_PROGRESS_SECONDS:
                return
            self._recorded_at = time.monotonic()
            total = self._bytes
        self.tracker.step_progress(self.step_id, total)


class RecoveryRefused(RecoveryError):
    """The recovery cannot start: the set is not validated, the plan does not match it, or a key is wrong."""


@dataclass(frozen=True)
class ExecuteOptions:
    plan_path: Path
    location: str | None = None
    inventory_path: Path | None = None
    applications: tuple[str, ...] = ()
    parallel_factor: int = 2
    io_priority: str = "normal"
    mode: str = "normal"
    signing_key: Path | None = None
    require_validation: bool = True
    reverify: bool = False
    allow_system_root: bool = False
    numeric_owner: bool = False
    ssh_identity: Path | None = None  # the key for every SSH root, over the inventory's identity_file
    bandwidth_limit: int | None = None  # bytes per second written to each SSH host
    restored_before: tuple[str, ...] = ()  # steps a partial restore need not add (transforms.plan.partial)

    @property
    def parallel(self) -> int:
        return 1 if self.mode == "resource-efficient" else max(1, self.parallel_factor)

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": str(self.plan_path),
            "applications": list(self.applications),
            "parallel_factor": self.parallel_factor,
            "io_priority": self.io_priority,
            "mode": self.mode,
            "numeric_owner": self.numeric_owner,
        }


@dataclass
class StepOutcome:
    status: str
    bytes_written: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


class Recovery:
    """One execution of one plan, in one process; see the module documentation."""

    def __init__(
        self,
        settings: Settings,
        options: ExecuteOptions,
        passphrase: bytes,
        database_url: str,
        progress: Progress | None = None,
    ) -> None:
        self.settings, self.options, self.database_url = settings, options, database_url
        self._passphrase = passphrase
        self._created: dict[str, TargetRoot] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()  # set on Ctrl-C: running steps stop at their next read
        self.progress = progress or (lambda phase, amount: None)

    # -- what every step needs, loaded once --------------------------------------------------------

    @cached_property
    def plan_text(self) -> str:
        try:
            return self.options.plan_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecoveryRefused(f"{self.options.plan_path}: cannot read the plan: {exc}") from exc

    @cached_property
    def source_record(self) -> dict[str, str]:
        path = self.options.plan_path.with_name(self.options.plan_path.name + PLAN_RECORD_SUFFIX)
        recorded = json.loads(path.read_text()) if path.exists() else {}
        location = self.options.location or recorded.get("location")
        inventory = (
            str(self.options.inventory_path) if self.options.inventory_path else recorded.get("inventory")
        )
        if not location or not inventory:
            raise RecoveryRefused(
                "give --path (the backup set) and --inventory; this plan has no record of them"
            )
        return {"location": location, "inventory": inventory}

    @cached_property
    def readers(self) -> list[IsoReader]:
        return [IsoReader(m.url) for m in list_backup_set(self.source_record["location"])]

    @cached_property
    def source(self) -> SetEnvironment:
        return read_set_environment(self.readers)

    @cached_property
    def inventory(self) -> Inventory:
        return load_inventory(
            Path(self.source_record["inventory"]), allow_system_root=self.options.allow_system_root
        )

    @cached_property
    def plan(self) -> Plan:
        known = [c.component_id for c in self.source.environment.components]
        plan = plan_from_yaml(
            self.plan_text,
            known,
            self.inventory,
            source=str(self.options.plan_path),
            environment=self.source.environment,
        )
        problems = plan_root_problems(plan, self.inventory)
        if problems:
            raise PlanError(problems, str(self.options.plan_path))
        if plan.backup_set_id != self.source.backup_set_id:
            raise RecoveryRefused(
                f"the plan is for backup set {plan.backup_set_id}, the ISOs at "
                f"{self.source_record['location']} are {self.source.backup_set_id}"
            )
        return plan

    @cached_property
    def needs(self) -> dict[str, frozenset[str]]:
        return step_needs(self.plan, self.source.environment)

    @cached_property
    def plan_id(self) -> str:
        return store_plan(self.database_url, self.plan, self.plan_text, created_by="execute-plan")

    @cached_property
    def data_key(self) -> DataKey:
        core = next(r for r in self.readers if r.manifest.kind == "system-core")
        return unlock_data_key(core, self._passphrase)

    @cached_property
    def layout(self) -> TargetLayout:
        return target_layout(
            self.source.environment,
            self.source.documents,
            self.plan,
            self.inventory,
            env_files=self.source.entries,
        )

    @cached_property
    def root_urls(self) -> dict[str, str]:
        """Every root written to, as the inventory names it (the plan's were checked to be these)."""
        inventory = self.inventory
        urls = {node_root(n.name): inventory.node(n.name).root for n in self.plan.nodes}
        pools = {p.name: p.root for p in inventory.storage}
        urls.update({pool_root(p.name): pools[p.name] for p in self.plan.pools})
        return urls

    @cached_property
    def root_access(self) -> dict[str, SshAccess]:
        """How to reach each root on another machine: the inventory's host key and identity file (or
        --ssh-identity), and --bandwidth-limit."""
        keyed = [(node_root(n.name), n.ssh) for n in self.inventory.nodes]
        keyed += [(pool_root(p.name), p.ssh) for p in self.inventory.storage]
        identity = str(self.options.ssh_identity) if self.options.ssh_identity else None
        return {
            name: SshAccess(keys.host_key, identity or keys.identity_file, self.options.bandwidth_limit)
            for name, keys in keyed
            if keys is not None
        }

    @cached_property
    def roots(self) -> dict[str, TargetRoot]:
        """Every target root, for reading; `target()` creates a root when a step first writes to it."""
        return {
            name: open_root(url, self.root_access.get(name), create=False)
            for name, url in self.root_urls.items()
        }

    def target(self, root: str) -> TargetRoot:
        with self._lock:
            if root not in self._created:
                self._created[root] = open_root(self.root_urls[root], self.root_access.get(root))
            return self._created[root]

    @cached_property
    def entries_by_env_path(self) -> dict[str, list[tuple[IsoReader, ManifestEntry]]]:
        found: dict[str, list[tuple[IsoReader, ManifestEntry]]] = defaultdict(list)
        for reader in self.readers:
            for entry in reader.manifest.files:
                if entry.path.startswith("data/") and entry.path != "data/keys/data-key.json":
                    found[env_path(entry.chunk.chunk_of if entry.chunk else entry.path)].append(
                        (reader, entry)
                    )
        return found

    @cached_property
    def files_by_step(self) -> dict[str, list[TargetFile]]:
        by_step: dict[str, list[TargetFile]] = defaultdict(list)
        director_of_root = {
            node_root(s.node): s.id for s in self.plan.steps if s.id.startswith("director/") and s.node
        }
        for target_file in self.layout.files:
            step = _step_of_component(target_file.component) or director_of_root.get(target_file.root)
            if step is None:
                raise RecoveryError(f"no plan step restores {target_file.root}:{target_file.relpath}")
            by_step[step].append(target_file)
        return by_step

    @cached_property
    def run_lock(self) -> Connection:
        """This process's hold on the plan's run until `close`; RunBusy when another process holds it.
        Taken as soon as the plan is known, so that a second process is refused at once, having
        read little and written nothing."""
        conn = connect(self.database_url)
        try:
            take_run_lock(conn, plan_id_of(self.plan))
        except BaseException:
            conn.close()
            raise
        return conn

    @cached_property
    def tracker(self) -> RecoveryTracker:
        """The run, opened (or resumed) on the connection that holds its lock."""
        return RecoveryTracker.start_or_resume(self.run_lock, self.plan_id, self.options.as_json())

    @property
    def run_folder(self) -> Path:
        return self.settings.workspace / "runs" / self.tracker.run_id

    @cached_property
    def certificates(self) -> CertificateBundle:
        """Issued once per run and kept in its folder (0600), so a resumed run reuses them."""
        stored = self.run_folder / "certificates.json"
        if stored.exists():
            return _bundle_from_json(json.loads(stored.read_text()))
        identities = [
            NodeIdentity(n.name, (n.name,), tuple(_node_ips(self.plan, n.name))) for n in self.plan.nodes
        ]
        old_ca = self.source.documents.get("keys/ca.crt")
        if old_ca_problem(old_ca):  # the plan says so; a new CA is issued either way
            old_ca = None
        bundle = issue_certificates(self.plan.environment, identities, old_ca_pem=old_ca)
        stored.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(_bundle_to_json(bundle), out)
        return bundle

    def close(self) -> None:
        if "readers" in self.__dict__:
            for reader in self.readers:
                reader.close()
        if "run_lock" in self.__dict__:
            self.run_lock.close()

    # -- running ------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Every refusal, each before anything is written and before the run is opened (or resumed)."""
        _ = self.plan  # the plan's roots and paths against the inventory's, before any other check
        _ = self.run_lock  # a second process on this run stops here
        if self.options.require_validation:
            self._require_validation()
        _ = self.source  # the readers' documents, read before another thread uses a reader
        # scrypt releases the GIL: the key is derived while the layout is worked out.
        with ThreadPoolExecutor(1, thread_name_prefix="omni-unlock") as pool:
            unlocking = pool.submit(lambda: self.data_key)
            try:
                _ = self.files_by_step
            finally:
                unlocking.result()  # a wrong passphrase is the refusal reported, as it comes first
        _ = self.selected_steps()  # unknown --applications
        if self.options.signing_key is not None:
            load_signing_key(self.options.signing_key)  # not at the end of the run, after the restore
        _ = self.tracker

    def selected_steps(self) -> list[Step]:
        """All steps, or for --applications the chosen applications, their hard dependencies and volumes."""
        if not self.options.applications:
            return list(self.plan.steps)
        _application_closure(self.plan, self.options.applications)  # unknown applications refused
        wanted = partial_restore(
            self.plan, self.options.applications, self.needs, set(self.options.restored_before)
        ).steps
        steps = [s for s in self.plan.steps if s.id in wanted or s.id == "report/recovery"]
        return steps

    def run_phases(
        self, phases: Iterable[str], applications: Iterable[str] | None = None
    ) -> dict[str, StepOutcome]:
        """Run the selected steps of these phases in plan order; `applications` narrows the volume and
        application steps to those applications (a partition of the restore assets)."""
        wanted_phases = set(phases)
        # Hard dependencies come with the chosen applications, from the CLI and from UI backfills alike.
        apps = (
            set(applications_with_dependencies(self.plan, applications)) if applications is not None else None
        )
        steps = [s for s in self.selected_steps() if s.phase in wanted_phases and _in_applications(s, apps)]
        try:
            return self.run_steps(steps)
        except BaseException as exc:
            if isinstance(exc, RecoveryError):
                reason = str(exc)
            elif isinstance(exc, Exception):
                reason = f"stopped by an unexpected error: {exc!r}"
            else:  # Ctrl-C: KeyboardInterrupt, or Dagster's interrupt error inside a run
                reason = "interrupted by the operator"
            with contextlib.suppress(DatabaseError):  # a database that went away cannot record it
                self.tracker.interrupt(reason)
            raise

    def finish(self) -> None:
        """Close the run as succeeded (only once every selected step has)."""
        missing = self._not_succeeded()
        if missing:
            not_done = some_of(missing, 5)
            message = f"the run is not complete: {len(missing)} step(s) have not succeeded: {not_done}"
            self.tracker.interrupt(message)
            raise RecoveryError(message + "; execute-plan again runs them again")
        self.tracker.finish(SUCCEEDED)

    def _not_succeeded(self) -> list[str]:
        """The selected steps, but for the post-recovery backup, that have not succeeded in this run."""
        done = self.tracker.succeeded_steps()
        return [s.id for s in self.selected_steps() if s.id not in done and not s.id.startswith("backup/")]

    def run_steps(self, steps: Iterable[Step]) -> dict[str, StepOutcome]:
        """Run `steps` as the plan says: up to `parallel` at once, each once the steps it depends on
        (among these) have ended, in plan order but for the ready steps of a phase, largest copy
        first; each tried 1 + `retries` times, then its `on_failure`.

        stop: no further step starts, those running end, and the run stops (RecoveryError; the run
        stays open for a resume). skip-dependents: the steps that need it, directly or not
        (`step_needs`: not those that only wait for its phase to end), are recorded as skipped and
        the others go on. continue: everything goes on. Failed and skipped steps are run again by
        the next execute-plan of the plan; until then `finish` refuses to close the run.
        """
        steps = sorted(steps, key=lambda s: (PHASE_INDEX[s.phase], -self._copied_bytes(s)))
        self._load_shared(steps)
        done = self.tracker.succeeded_steps()
        blocking = self._blocking_failures(exclude={s.id for s in steps})

        def ended(step: Step, outcome: StepOutcome) -> None:
            if outcome.status == FAILED and step.on_failure == "skip-dependents":
                blocking[step.id] = step.id

        self._cancel.clear()
        return run_in_order(
            steps,
            self.options.parallel,
            self._attempt,
            lambda s: self._settled(s, done, blocking),
            ended,
            cancel=self._cancel.set,
        )

    def _settled(self, step: Step, done: set[str], blocking: dict[str, str]) -> StepOutcome | None:
        """The outcome of a step that is not to run (done before, or a step it needs failed), else None."""
        if step.id in done and step.phase not in SUMMARY_PHASES:
            return StepOutcome(SKIPPED, detail={"reason": "already succeeded in this run"})
        # What a step needs blocks it; a failure in the infrastructure phases (Directors to storage)
        # blocks everything after it, which all builds on that infrastructure.
        cause = next(
            (
                blocking[d]
                for d in step.depends_on
                if d in blocking and (d in self.needs[step.id] or self._infrastructure(blocking[d]))
            ),
            None,
        )
        if cause is None:
            return None
        detail = {"reason": f"{cause} failed and its on_failure is skip-dependents", "blocked_by": cause}
        self.tracker.step_skipped(step.id, step.phase, step.component, detail)
        blocking[step.id] = cause
        if step.on_failure == "stop":
            raise _stop(step, f"cannot run: it needs {cause}, which failed, and its own on_failure is stop")
        return StepOutcome(SKIPPED, detail=detail)

    def _infrastructure(self, step_id: str) -> bool:
        phase = self.phase_of.get(step_id)
        return phase is not None and PHASE_INDEX[phase] < VOLUMES

    @cached_property
    def phase_of(self) -> dict[str, str]:
        return {s.id: s.phase for s in self.plan.steps}

    def _copied_bytes(self, step: Step) -> int:
        """The bytes a step copies from the set."""
        return sum(self._file_bytes(f) for f in self.files_by_step.get(step.id, []) if f.source)

    def _file_bytes(self, target_file: TargetFile) -> int:
        """The size of a layout file once restored: its new content, or the whole (decrypted) file."""
        if target_file.type != "file":
            return 0
        if target_file.content is not None:
            return len(target_file.content)
        found = self.entries_by_env_path.get(target_file.source or "")
        if not found:
            return 0
        entry = found[0][1]
        if entry.encryption is not None:
            return entry.encryption.plaintext_size
        return entry.chunk.logical_size if entry.chunk else entry.size

    def _load_shared(self, steps: list[Step]) -> None:
        """Load what steps share before they run in threads (cached_property guards nothing since 3.12)."""
        _ = self.layout, self.files_by_step, self.entries_by_env_path, self.roots, self.needs, self.phase_of
        _ = self.target_of_source
        for reader in self.readers:
            _ = reader.listing
        if any(s.id.startswith("director/") for s in steps):
            _ = self.certificates

    def _attempt(self, step: Step) -> StepOutcome:
        """The step tried up to 1 + step.retries times (files verified by a failed try are not redone)."""
        tries = 1 + max(0, step.retries)
        for attempt in range(1, tries + 1):
            if self._cancel.is_set():
                raise Interrupted(f"step {step.id} interrupted")
            self.tracker.step_started(step.id, step.phase, step.component)
            try:
                outcome = self._run_step(step)
            except RecoveryError as exc:
                error = exc
                detail = {"error": str(exc), "attempt": attempt, "on_failure": step.on_failure}
                self.tracker.step_finished(step.id, FAILED, 0, {**detail, "fallback": step.fallback})
                continue
            self.tracker.step_finished(step.id, outcome.status, outcome.bytes_written, outcome.detail)
            return outcome
        if step.on_failure == "stop":
            raise _stop(step, f"failed {tries} time(s): {error} — its on_failure is stop") from error
        return StepOutcome(FAILED, 0, {"error": str(error), "attempts": tries, "on_failure": step.on_failure})

    def _blocking_failures(self, exclude: set[str]) -> dict[str, str]:
        """step → the failed skip-dependents step behind it, for this run's steps not in `exclude`."""
        blocking: dict[str, str] = {}
        for step_id, (status, detail) in self.tracker.unsuccessful_steps().items():
            if step_id in exclude:
                continue  # about to run again
            if status == FAILED and detail.get("on_failure") == "skip-dependents":
                blocking[step_id] = step_id
            elif status == SKIPPED and "blocked_by" in detail:
                blocking[step_id] = str(detail["blocked_by"])
        return blocking

    def _run_step(self, step: Step) -> StepOutcome:
        kind = step.id.split("/", 1)[0]
        handler = {
            "ring": self._form_ring,
            "cluster": self._form_cluster,
            "storage": self._prepare_storage,
            "verify": self._verify,
            "report": self._report,
            "backup": self._post_recovery_backup,
        }.get(kind, self._restore_component)
        return handler(step)

    # -- steps --------------------------------------------------------------------------------------

    def _restore_component(self, step: Step) -> StepOutcome:
        deadline = time.monotonic() + step.timeout_s
        files = self.files_by_step.get(step.id, [])
        if step.component in self.layout.volume_roots:
            self._refuse_foreign_entries(step.component, files)
        if step.id.startswith("director/"):
            files = files + self._certificate_files(step)
        written = 0
        by_root: dict[str, list[TargetFile]] = defaultdict(list)
        for target_file in files:
            by_root[target_file.root].append(target_file)
        progress = StepProgress(self.tracker, step.id, self.progress)
        not_applied: list[str] = []
        for root, group in by_root.items():
            written += self._restore_group(root, group, deadline, progress, not_applied)
        detail: dict[str, Any] = {"files": len(files), "roots": sorted(by_root)}
        if not_applied:  # what the target could not take (owners, xattrs), per file: the report lists it
            detail["not_applied"] = not_applied
        return StepOutcome(SUCCEEDED, written, detail)

    def _refuse_foreign_entries(self, volume: str, files: list[TargetFile]) -> None:
        """A volume goes into an empty folder, or one holding only what its restore writes (a resumed
        or repeated run): anything else there (an older system's data, another recovery's) would
        end up mixed with the restored data, which no check of the restored files would notice."""
        root, folder = self.layout.volume_roots[volume]
        ours = {f.relpath for f in files if f.root == root}
        target = self.target(root)
        foreign = sorted(  # folders hold nothing of their own; a killed run's partial files are ours
            path
            for path, entry in target.listing(under=folder).items()
            if entry.type != "dir" and path not in ours and not path.endswith(PARTIAL_SUFFIX)
        )
        if foreign:
            raise RecoveryError(
                f"{target.url}: {folder} already holds what {volume} does not ({some_of(foreign)}): "
                "restoring into it would mix that with the volume's data. Move it away, or give the "
                "volume another path in the plan, then run execute-plan again"
            )

    def _restore_group(
        self,
        root: str,
        group: list[TargetFile],
        deadline: float,
        progress: StepProgress,
        not_applied: list[str],
    ) -> int:
        target = self.target(root)
        written = 0
        items: list[RestoreItem] = []
        for target_file in group:
            if target_file.content is not None:
                target.write_bytes_atomic(
                    target_file.relpath, target_file.content, mode=target_file.mode & 0o7777
                )
                written += len(target_file.content)
            else:
                items.extend(self._restore_items(target_file))
        if items:
            verified = self.tracker.verified_files(root)
            recorded: list[tuple[str, str | None, int]] = []

            def on_done(done: RestoredFile) -> None:
                recorded.append((done.path, done.sha256, done.size))
                if len(recorded) >= RECORD_FILES or sum(r[2] for r in recorded) >= RECORD_BYTES:
                    self.tracker.files_verified(root, recorded)
                    recorded.clear()

            try:
                summary = restore_files(
                    items,
                    target,
                    self.data_key,
                    already_done=verified.__contains__,
                    on_done=on_done,
                    parallel=self.options.parallel,
                    progress=progress,
                    deadline=deadline,
                    cancelled=self._cancel,
                    numeric_owner=self.options.numeric_owner,
                )
            finally:
                self.tracker.files_verified(root, recorded)
            written += summary.bytes_written
            not_applied += (f"{root}: {line}" for line in summary.not_applied)
        return written

    def _restore_items(self, target_file: TargetFile) -> list[RestoreItem]:
        assert target_file.source is not None
        found = self.entries_by_env_path.get(target_file.source)
        if not found:
            raise RecoveryError(f"{target_file.source}: the layout names a file the backup set does not hold")
        items = []
        for reader, entry in found:
            if entry.hardlink is not None:
                items.extend(self._link_items(target_file, reader, entry))
                continue
            extents = reader.listing[entry.path].extents if entry.type == "file" else None
            items.append(
                RestoreItem.from_manifest(
                    reader.url, reader.name, entry, path=target_file.relpath, extents=extents
                )
            )
        return items

    def _link_items(
        self, target_file: TargetFile, reader: IsoReader, entry: ManifestEntry
    ) -> list[RestoreItem]:
        """A later name of an inode: its first name's stored bytes, a link to it where that lands in
        the same restore (restore_files decides), else a file of its own."""
        first = self.target_of_source.get(env_path(entry.hardlink or ""))
        if first is None:
            raise RecoveryError(
                f"{target_file.source}: hard link to {entry.hardlink}, which the layout does not restore"
            )
        link = RestoreItem.from_manifest(
            reader.url, reader.name, entry, path=target_file.relpath, extents=None
        )
        return [link.link_item(item) for item in self._restore_items(first)]

    @cached_property
    def target_of_source(self) -> dict[str, TargetFile]:
        """Each environment path restored from the set → where it goes."""
        return {f.source: f for f in self.layout.files if f.source is not None}

    def _certificate_files(self, step: Step) -> list[TargetFile]:
        """The new CA and this node's certificate and key (the backup's CA certificate is restored
        as keys/old-ca.crt: no backed-up file is placed where these go)."""
        assert step.node is not None
        bundle, root = self.certificates, node_root(step.node)
        own = bundle.nodes[step.node]
        return [
            TargetFile(root, "keys/ca.crt", None, bundle.ca_cert_pem, 0o100644, "system:core"),
            TargetFile(root, "keys/ca.key", None, bundle.ca_key_pem, 0o100600, "system:core"),
            TargetFile(root, f"keys/{step.node}.crt", None, own.cert_pem, 0o100644, "system:core"),
            TargetFile(root, f"keys/{step.node}.key", None, own.key_pem, 0o100600, "system:core"),
        ]

    def _nodes_of(self, kind: str) -> dict[str, str]:
        """Director or Orchestrator id → the new node its step restores it on."""
        return {
            s.component.split(":", 1)[1]: s.node
            for s in self.plan.steps
            if s.id.startswith(f"{kind}/") and s.component and s.node
        }

    def _form_ring(self, step: Step) -> StepOutcome:
        directors = self._nodes_of("director")
        done = self.tracker.succeeded_steps()
        ring_id = step.id.split("/", 1)[1]
        ring = form_ring(
            sorted(directors), [d for d in directors if f"director/{d}" in done], 0, ring_id=ring_id
        )
        content = render_ring_file(ring, self._addresses("director:"))
        for director, node in directors.items():
            self.target(node_root(node)).write_bytes_atomic(
                f"directors/{director}/ring.yaml", content, mode=0o644
            )
        return StepOutcome(
            SUCCEEDED,
            len(content) * len(directors),
            {"members": list(ring.members), "epoch": ring.epoch, "quorum": ring.quorum},
        )

    def _form_cluster(self, step: Step) -> StepOutcome:
        nodes = self._nodes_of("orchestrator")
        done = self.tracker.succeeded_steps()
        cluster = form_cluster(
            sorted(nodes),
            [o for o in nodes if f"orchestrator/{o}" in done],
            cluster_id=step.id.split("/", 1)[1],
        )
        content = render_cluster_file(cluster, self._addresses("orchestrator:"))
        for orchestrator, node in nodes.items():
            self.target(node_root(node)).write_bytes_atomic(
                f"orchestrators/{orchestrator}/cluster.yaml", content, mode=0o644
            )
        return StepOutcome(
            SUCCEEDED, len(content) * len(nodes), {"members": list(cluster.members), "leader": cluster.leader}
        )

    def _addresses(self, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for address in self.plan.addresses:
            owner = _address_owner(address.owner)
            if owner.startswith(prefix) and address.subnet == "management":
                out.setdefault(owner.split(":", 1)[1], address.new)
        return out

    def _prepare_storage(self, step: Step) -> StepOutcome:
        """The step's wait condition: the pool's root is writable and has room for what this recovery
        still writes to its filesystem."""
        pool = step.id.rsplit("/", 1)[1]
        target = self.target(pool_root(pool))
        target.begin(WRITE_PROBE).abort()  # a read-only root fails here, naming itself, not mid-volume
        folders = [p for p in self.plan.paths if p.pool == pool and p.subject.startswith("director:")]
        for path in folders:
            root_url = next(p.root for p in self.plan.pools if p.name == pool)
            target.makedirs(path.new_path.removeprefix(root_url).strip("/"))
        detail = {"root": target.url, "folders": len(folders), **self._check_free_space(pool_root(pool))}
        return StepOutcome(SUCCEEDED, 0, detail)

    def _check_free_space(self, root: str) -> dict[str, Any]:
        """Refuse when the selected steps still have more to write to the filesystem under `root`, from
        every root on it (files already verified in this run not counted), than it has free."""
        space = self.target(root).free_space()
        if space is None:
            return {"free_space": "not known: this kind of root does not tell"}
        on_it = {name: other.free_space() for name, other in self.roots.items()}
        sharing = sorted(name for name, other in on_it.items() if other and other.device == space.device)
        selected = {s.id for s in self.selected_steps()}
        verified = {name: self.tracker.verified_files(name) for name in sharing}
        needed = sum(
            self._file_bytes(f)
            for step_id, files in self.files_by_step.items()
            if step_id in selected
            for f in files
            if f.root in verified and f.relpath not in verified[f.root]
        )
        if needed > space.free:
            raise RecoveryError(
                f"the filesystem of {self.root_urls[root]} has {_size(space.free)} free, and this recovery "
                f"still writes {_size(needed)} to it (roots on it: {', '.join(sharing)}): make room there, "
                "or give the volumes another pool in the plan's paths"
            )
        return {"bytes_to_write": needed, "free_bytes": space.free, "roots_on_filesystem": sharing}

    def _verify(self, step: Step) -> StepOutcome:
        from omni_recovery.execute.verification import verify_data, verify_layout

        if step.id.endswith("components"):
            problems = verify_layout(self.layout, self.roots, self._selected_files())
            problems += self._certificate_problems()
        else:
            problems = verify_data(
                self.roots,
                self.entries_by_env_path,
                self._selected_files(),
                self.tracker.verified_files,
                self.progress,
                rehash=self.options.reverify,
            )
        if problems:
            raise RecoveryError(f"{step.id}: {len(problems)} problem(s): " + "; ".join(problems[:5]))
        return StepOutcome(SUCCEEDED, 0, {"checked": len(self._selected_files())})

    def _certificate_problems(self) -> list[str]:
        """On each node whose Director this run restored: a CA key and certificate that belong
        together, and the node's certificate signed by that CA."""
        problems = []
        for step in self.selected_steps():
            if step.id.startswith("director/") and step.node:
                target = self.roots[node_root(step.node)]
                paths = ("keys/ca.crt", "keys/ca.key", f"keys/{step.node}.crt")
                missing = [path for path in paths if not target.exists(path)]
                if missing:
                    found = [f"{', '.join(missing)} missing"]
                else:
                    found = pki_problems(*(target.read_bytes(path) for path in paths))
                problems += [f"{target.url}: {problem}" for problem in found]
        return problems

    def _selected_files(self) -> list[TargetFile]:
        selected = {s.id for s in self.selected_steps()}
        return [f for step, files in self.files_by_step.items() if step in selected for f in files]

    def _report(self, step: Step) -> StepOutcome:
        from omni_recovery.report.build import write_run_report

        return StepOutcome(SUCCEEDED, 0, {"report": str(write_run_report(self))})

    def _post_recovery_backup(self, step: Step) -> StepOutcome:
        from omni_recovery.backup.post_recovery import post_recovery_backup

        if self.options.signing_key is None:
            return StepOutcome(SKIPPED, 0, {"reason": "no --signing-key given for the post-recovery backup"})
        missing = self._not_succeeded()
        if missing:
            reason = f"not a backup of a partial recovery: {', '.join(missing[:5])} did not succeed"
            return StepOutcome(SKIPPED, 0, {"reason": reason})
        output = post_recovery_backup(self, self.options.signing_key, self._passphrase)
        return StepOutcome(SUCCEEDED, 0, {"backup": output})

    # -- the database -------------------------------------------------------------------------------

    def _require_validation(self) -> None:
        """The latest deep validation of these very ISOs (by their manifests' fingerprint) passed."""
        with connect(self.database_url) as conn:
            runs = conn.execute(
                "SELECT passed, finished_at, manifests_sha256 FROM omni.validation_runs "
                "WHERE backup_set_id = %s AND deep ORDER BY started_at DESC",
                (self.source.backup_set_id,),
            ).fetchall()
        set_id = self.source.backup_set_id
        if not runs:
            raise RecoveryRefused(
                f"backup set {set_id} has no deep validation on record: run "
                "`omni-recovery validate-isos --deep` first; nothing is restored from an "
                "unvalidated set"
            )
        fingerprint = manifests_fingerprint(self.readers)
        these = [(passed, finished) for passed, finished, recorded in runs if recorded == fingerprint]
        if these and not these[0][0]:
            raise RecoveryRefused(
                f"backup set {set_id} failed its last deep validation ({these[0][1]}); nothing is "
                "restored from a set that fails a blocking check"
            )
        if these:
            return
        if all(recorded is None for _, _, recorded in runs):
            raise RecoveryRefused(
                f"the last deep validation of backup set {set_id} ({runs[0][1]}) did not record which "
                "manifests it checked (an older omni-recovery, or unreadable ISOs). Run "
                "`omni-recovery validate-isos --deep` again"
            )
        raise RecoveryRefused(
            f"the ISOs at {self.source_record['location']} are not the ones any deep validation of backup "
            f"set {set_id} checked (the last on {runs[0][1]}): their manifests differ. Run "
            "`omni-recovery validate-isos --deep` on them first"
        )


def _size(amount: int) -> str:
    return f"{amount / 2**30:.2f} GiB ({amount:,} bytes)"


def _stop(step: Step, why: str) -> RecoveryError:
    """The error that stops the run at `step`, with what the plan says to do about it."""
    return RecoveryError(
        f"step {step.id} {why}, so the run stops here. Fallback: {step.fallback}. "
        "Run execute-plan again to resume"
    )


def _in_applications(step: Step, applications: set[str] | None) -> bool:
    """True unless `applications` is given and the step is another application's (or its volume's)."""
    if applications is None or not step.id.startswith(("application/", "volume/")):
        return True
    return step.id.split("/")[1] in applications


def _step_of_component(component: str | None) -> str | None:
    if not component or ":" not in component:
        return None
    kind, name = component.split(":", 1)
    return {
        "director": f"director/{name}",
        "orchestrator": f"orchestrator/{name}",
        "service": f"service/{name}",
        "volume": f"volume/{name}",
        "application": f"application/{name}",
    }.get(kind)


def _application_closure(plan: Plan, applications: Iterable[str]) -> set[str]:
    """The chosen applications' steps, their hard application dependencies' steps, and their volumes."""
    steps = {s.id: s for s in plan.steps}
    unknown = [a for a in applications if f"application/{a}" not in steps]
    if unknown:
        raise RecoveryRefused(
            f"unknown application(s) {', '.join(unknown)}; the plan has "
            + ", ".join(sorted(s.split("/", 1)[1] for s in steps if s.startswith("application/")))
        )
    wanted: set[str] = set()
    todo = [f"application/{a}" for a in applications]
    while todo:
        step_id = todo.pop()
        if step_id in wanted:
            continue
        wanted.add(step_id)
        todo.extend(d for d in steps[step_id].depends_on if d.startswith(("application/", "volume/")))
    return wanted


def applications_with_dependencies(plan: Plan, applications: Iterable[str]) -> list[str]:
    return sorted(
        s.split("/", 1)[1] for s in _application_closure(plan, applications) if s.startswith("application/")
    )


def _node_ips(plan: Plan, node: str) -> list[str]:
    directors = {p.director for p in plan.placements if p.node == node} | {
        n.director for n in plan.nodes if n.name == node and n.director
    }
    owners = {f"director:{d}" for d in directors if d}
    return sorted({a.new for a in plan.addresses if _address_owner(a.owner) in owners})


def _address_owner(owner: str) -> str:
    """The component a plan's address belongs to: `director:dir-1 (management)` → `director:dir-1`."""
    return owner.partition(" (")[0]


def _bundle_to_json(bundle: CertificateBundle) -> dict[str, Any]:
    return {
        "ca_cert_pem": bundle.ca_cert_pem.decode(),
        "ca_key_pem": bundle.ca_key_pem.decode(),
        "ca_fingerprint_sha256": bundle.ca_fingerprint_sha256,
        "old_ca_fingerprint_sha256": bundle.old_ca_fingerprint_sha256,
        "nodes": {
            name: {
                "cert_pem": c.cert_pem.decode(),
                "key_pem": c.key_pem.decode(),
                "fingerprint_sha256": c.fingerprint_sha256,
            }
            for name, c in bundle.nodes.items()
        },
    }


def _bundle_from_json(data: dict[str, Any]) -> CertificateBundle:
    from omni_recovery.restorer.certificates import IssuedCertificate

    return CertificateBundle(
        ca_cert_pem=data["ca_cert_pem"].encode(),
        ca_key_pem=data["ca_key_pem"].encode(),
        ca_fingerprint_sha256=data["ca_fingerprint_sha256"],
        old_ca_fingerprint_sha256=data["old_ca_fingerprint_sha256"],
        nodes={
            name: IssuedCertificate(
                name, c["cert_pem"].encode(), c["key_pem"].encode(), c["fingerprint_sha256"]
            )
            for name, c in data["nodes"].items()
        },
    )
