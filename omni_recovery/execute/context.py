"""The run's context: everything a recovery's steps need, loaded once per process.

`RunContext` reads, on first use and once: the plan (re-validated against the set's components,
the inventory and the old environment), the set's ISOs (opened once), the data key (from the
passphrase), the target layout (transforms/target_layout.py: what lands on which node or storage
root, adapted), the roots and how to reach them, the run's lock and tracker in the recovery
database, and the run's certificates. The gate (`gate.prepare`) loads them in the order that puts
every refusal before anything is written; the step handlers (`steps/`) and the runner read them.

The context writes nothing by itself but through `target()`; it is closed by whoever built it
(pipelines/recovery_run.py), which also gives it `write_report`, the report step's writer.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from omni_recovery.adapt.inventory import Inventory, load_inventory
from omni_recovery.adapt.root_safety import plan_root_problems
from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import DataKey, IsoReader, list_backup_set, unlock_data_key
from omni_recovery.db.connection import connect
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.options import ExecuteOptions, Progress, RecoveryRefused
from omni_recovery.execute.run_certificates import run_certificates
from omni_recovery.execute.run_lock import take_run_lock
from omni_recovery.execute.selection import applications_of, in_partial, partial_selection, step_of_component
from omni_recovery.execute.tracking import Connection, RecoveryTracker, restored_steps
from omni_recovery.operator_identity import ssh_keys_used
from omni_recovery.plan.generate import (
    PLAN_RECORD_SUFFIX,
    SetEnvironment,
    read_set_environment,
    recorded_plan_source,
    store_plan,
)
from omni_recovery.plan.generate import plan_id as plan_id_of
from omni_recovery.restorer.certificates import CertificateBundle
from omni_recovery.settings import Settings
from omni_recovery.targets import open_root
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.urls import is_ssh_url
from transforms.plan import PartialRestore, Plan, PlanError, Step, plan_from_yaml, step_needs
from transforms.target_layout import TargetFile, TargetLayout, node_root, pool_root, target_layout

if TYPE_CHECKING:
    from omni_recovery.targets.ssh import SshAccess

SourceEntries = dict[str, list[tuple[IsoReader, ManifestEntry]]]


class RunContext:
    """One execution of one plan, in one process; see the module documentation."""

    def __init__(
        self,
        settings: Settings,
        options: ExecuteOptions,
        passphrase: bytes,
        database_url: str,
        write_report: Callable[[RunContext], Path],
        progress: Progress | None = None,
    ) -> None:
        self.settings, self.options, self.database_url = settings, options, database_url
        self.passphrase = passphrase
        self.write_report = write_report
        self.progress: Progress = progress or (lambda phase, amount: None)
        self.cancel = threading.Event()  # set on Ctrl-C: running steps stop at their next read
        self.worker: str | None = None  # recorded with each attempt; None: this process (host:pid)
        self._created: dict[str, TargetRoot] = {}
        self._lock = threading.Lock()

    # -- the plan and the set -------------------------------------------------------------------------

    @cached_property
    def plan_text(self) -> str:
        try:
            return self.options.plan_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecoveryRefused(f"{self.options.plan_path}: cannot read the plan: {exc}") from exc

    @cached_property
    def source_record(self) -> dict[str, str]:
        """Where the set and the inventory are: as given, else as recorded beside the plan."""
        recorded = recorded_plan_source(self.options.plan_path)
        location = self.options.location or recorded.get("location")
        inventory = (
            str(self.options.inventory_path) if self.options.inventory_path else recorded.get("inventory")
        )
        if not location or not inventory:
            raise RecoveryRefused(
                f"{self.options.plan_path}: this plan has no record of its backup set and inventory "
                f"({self.options.plan_path.name}{PLAN_RECORD_SUFFIX} beside it): give them "
                "(execute-plan --path and --inventory; in the Dagster UI, the recovery resource's "
                "location and inventory_path)"
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
    def phase_of(self) -> dict[str, str]:
        return {s.id: s.phase for s in self.plan.steps}

    @cached_property
    def restored_before(self) -> frozenset[str]:
        """The plan's steps a closed, succeeded run restored and verified: a partial restore need
        not add them again (read once, before this run's own steps are recorded)."""
        with connect(self.database_url) as conn:
            return frozenset(restored_steps(conn, plan_id_of(self.plan)))

    @cached_property
    def partial(self) -> PartialRestore | None:
        """The partial restore of --applications, or of the application partitions a UI run was
        launched for (execute/selection.py); None for a whole restore."""
        chosen = self.options.applications or self.options.launched_applications
        if not chosen:
            return None
        return partial_selection(self.plan, chosen, self.needs, self.restored_before)

    @cached_property
    def added_applications(self) -> list[str]:
        """The applications the partial restore adds for the chosen ones' hard dependencies."""
        if self.partial is None:
            return []
        chosen = set(self.options.applications or self.options.launched_applications)
        return [a for a in applications_of(self.partial) if a not in chosen]

    def selected_steps(self) -> list[Step]:
        """All steps; for --applications, the steps of their partial restore and the report; for a UI
        launch of some application partitions, the application and volume steps of theirs and every other
        step (each asset that runs them is partitioned or not, as the launch chose)."""
        partial = self.partial
        if partial is None:
            return list(self.plan.steps)
        if self.options.applications:
            wanted = partial.steps | {"report/recovery"}
            phases = {s.phase for s in self.plan.steps if s.id in wanted}
            return [s for s in self.plan.steps if s.id in wanted or (s.is_gate and s.phase in phases)]
        return [s for s in self.plan.steps if in_partial(s, partial)]

    @cached_property
    def data_key(self) -> DataKey:
        core = next(r for r in self.readers if r.manifest.kind == "system-core")
        return unlock_data_key(core, self.passphrase)

    @cached_property
    def entries_by_env_path(self) -> SourceEntries:
        found: SourceEntries = defaultdict(list)
        for reader in self.readers:
            for entry in reader.manifest.files:
                if entry.path.startswith("data/") and entry.path != "data/keys/data-key.json":
                    found[env_path(entry.chunk.chunk_of if entry.chunk else entry.path)].append(
                        (reader, entry)
                    )
        return found

    # -- where it goes --------------------------------------------------------------------------------

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
    def files_by_step(self) -> dict[str, list[TargetFile]]:
        by_step: dict[str, list[TargetFile]] = defaultdict(list)
        director_of_root = {
            node_root(s.node): s.id for s in self.plan.steps if s.id.startswith("director/") and s.node
        }
        for target_file in self.layout.files:
            step = step_of_component(target_file.component) or director_of_root.get(target_file.root)
            if step is None:
                raise RecoveryError(f"no plan step restores {target_file.root}:{target_file.relpath}")
            by_step[step].append(target_file)
        return by_step

    @cached_property
    def target_of_source(self) -> dict[str, TargetFile]:
        """Each environment path restored from the set → where it goes."""
        return {f.source: f for f in self.layout.files if f.source is not None}

    def selected_files(self) -> list[TargetFile]:
        selected = {s.id for s in self.selected_steps()}
        return [f for step, files in self.files_by_step.items() if step in selected for f in files]

    def file_bytes(self, target_file: TargetFile) -> int:
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
        --ssh-identity), --bandwidth-limit and --ssh-data-channel."""
        keyed = [(node_root(n.name), n.ssh) for n in self.inventory.nodes]
        keyed += [(pool_root(p.name), p.ssh) for p in self.inventory.storage]
        if all(keys is None for _, keys in keyed):
            return {}
        from omni_recovery.targets.ssh import SshAccess  # asyncssh: only for roots on other machines

        identity = str(self.options.ssh_identity) if self.options.ssh_identity else None
        return {
            name: SshAccess(
                keys.host_key,
                identity or keys.identity_file,
                self.options.bandwidth_limit,
                self.options.ssh_data_channel,
            )
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

    # -- the run in the recovery database -------------------------------------------------------------

    @cached_property
    def plan_id(self) -> str:
        return store_plan(self.database_url, self.plan, self.plan_text, created_by="execute-plan")

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
        """The run, opened (or resumed) on the connection that holds its lock; each running step
        records on a connection of its own."""
        options = self.options.as_json()
        if self.options.applications:  # what the progress display counts (execute/progress.py)
            options["steps"] = [s.id for s in self.selected_steps()]
        tracker = RecoveryTracker.start_or_resume(self.run_lock, self.plan_id, options, self.ssh_keys)
        tracker.use_step_pool(self.database_url, self.options.parallel)
        return tracker

    def ssh_keys(self) -> dict[str, str]:
        """The SSH keys accepted by the hosts this run reached (the roots it opened, the set's host when
        read over SSH), by host address: a long-lived process's earlier runs' hosts are not this run's."""
        with self._lock:
            urls = [root.url for root in self._created.values()]
        urls += [root.url for root in self.__dict__.get("roots", {}).values()]
        if "readers" in self.__dict__:
            urls.append(self.source_record["location"])
        urls = [url for url in urls if is_ssh_url(url)]
        if not urls:
            return {}
        from omni_recovery.targets.ssh import SshUrl

        return ssh_keys_used({SshUrl.parse(url).address for url in urls})

    @property
    def run_folder(self) -> Path:
        return self.settings.workspace / "runs" / self.tracker.run_id

    @cached_property
    def certificates(self) -> CertificateBundle:
        """Issued once per run and kept in its folder (0600), so a resumed run reuses them."""
        return run_certificates(self.run_folder, self.plan, self.source.documents.get("keys/ca.crt"))

    @contextmanager
    def claimed(self, step: Step) -> Iterator[bool]:
        """Whether to run `step` now; here always, as the run's lock keeps other processes out (a
        restore worker, execute/joined.py, claims each step)."""
        yield True

    def close(self) -> None:
        if "tracker" in self.__dict__:
            self.tracker.close()
        if "readers" in self.__dict__:
            for reader in self.readers:
                reader.close()
        if "run_lock" in self.__dict__:
            self.run_lock.close()
