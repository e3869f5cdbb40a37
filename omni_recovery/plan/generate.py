"""plan-generate: the old environment read from a backup set, adapted to an inventory, planned, stored.

How it works: every ISO of the set is opened once; the environment's small documents (every
listed, unsealed file outside the volume file trees) are read through the verifying reader and
mapped back to environment paths; components and dependencies come from the system-core index.
That model goes to the pure planner (transforms/plan/); the plan is written as YAML beside
an SVG of its graph (each by temporary name, then rename) and recorded in the recovery database
with every adaptation, in one transaction.

What can go wrong: a damaged set fails here as it would in validation (IntegrityError naming ISO
and path); an inventory too small raises AdaptationError saying what does not fit and by how much.
Signatures are not checked here: nothing is restored by planning, and execute-plan refuses a set
that has not passed validation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from psycopg.types.json import Jsonb

from omni_recovery.adapt.inventory import load_inventory
from omni_recovery.backupset import layout
from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.manifest import ManifestEntry, join_chunks
from omni_recovery.backupset.manifest_stream import iter_manifest_entries
from omni_recovery.backupset.reader import IsoReader, list_backup_set
from omni_recovery.db.audit import audit
from omni_recovery.db.connection import connect
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import BackupSetError, EnvironmentStateError, IntegrityError
from omni_recovery.plan.overlay import overlay_adaptations
from omni_recovery.restorer.certificates import old_ca_problem
from omni_recovery.urls import absolute_location
from omni_recovery.whole_file import write_text_whole
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import Environment, environment_from_files
from transforms.documents.held import SetDocuments
from transforms.layout.mappings import ambiguous_path_warnings
from transforms.plan import Plan, plan_to_yaml
from transforms.plan_render import plan_to_svg

DOCUMENT_LIMIT = 64 * 1024 * 1024
PLAN_RECORD_SUFFIX = ".source.json"


@dataclass(frozen=True)
class SetEnvironment:
    backup_set_id: str
    environment: Environment
    documents: SetDocuments  # environment path → bytes, knowing the ISO and path of each
    entries: list[tuple[str, str, int]]  # (environment path, type, mode) of every entry in the set


@contextmanager
def open_set(location: str) -> Iterator[list[IsoReader]]:
    """Every ISO of the set at `location`, opened once and closed on exit."""
    readers = [IsoReader(member.url) for member in list_backup_set(location)]
    try:
        yield readers
    finally:
        for reader in readers:
            reader.close()


def is_document(relpath: str) -> bool:
    """Small configuration documents, as opposed to volume file trees."""
    parts = relpath.split("/")
    return not (parts[0] == "volumes" and len(parts) > 3 and parts[3] == "files")


def read_set_environment(readers: list[IsoReader]) -> SetEnvironment:
    """The set's environment from its open ISOs, with every entry of the set (what execute-plan lays out)."""
    core = [r for r in readers if r.manifest.kind == layout.SYSTEM_CORE]
    if len(core) != 1:
        raise BackupSetError(f"the set has {len(core)} system-core ISOs; exactly one is needed to plan")
    gathered = GatheredSet(core_facts(core[0]), keep_entries=True)
    for reader in readers:
        gathered.add(reader, reader.manifest.files)
    return gathered.environment()


def stream_set_environment(location: str) -> SetEnvironment:
    """The set's environment for planning, its ISOs read one after another: of each only the listing
    outside the volume file trees is kept and its manifest's entries are parsed one at a time, so what
    is held grows with the documents, not the files. `entries` stays empty (planning needs none)."""
    members = list_backup_set(location)
    core = [m for m in members if m.name.kind == layout.SYSTEM_CORE]
    if len(core) != 1:
        raise BackupSetError(f"the set has {len(core)} system-core ISOs; exactly one is needed to plan")
    with IsoReader(core[0].url) as reader:
        if reader.manifest.kind != layout.SYSTEM_CORE:
            raise BackupSetError("the system-core ISO's manifest names another kind", iso=reader.name)
        gathered = GatheredSet(core_facts(reader), keep_entries=False)
    for member in members:
        with IsoReader(member.url) as reader:
            reader.narrow_listing(lambda path: not path.startswith("data/") or is_document(path[5:]))
            listed = iter_manifest_entries(reader.raw_chunks(layout.MANIFEST_PATH), iso=reader.name)
            gathered.add(reader, listed)
    return gathered.environment()


@dataclass(frozen=True)
class CoreFacts:
    """What the system-core ISO says of the whole set."""

    backup_set_id: str
    name: str
    index: RecoveryIndex
    iso: str


def core_facts(reader: IsoReader) -> CoreFacts:
    set_id = reader.manifest.backup_set_id
    name = str(reader.backup_info.source_environment.get("name") or set_id)
    return CoreFacts(set_id, name, reader.index(), reader.name)


@dataclass
class GatheredSet:
    """The documents (and with `keep_entries` every entry) of a set's ISOs, added one ISO at a time."""

    core: CoreFacts
    keep_entries: bool
    documents: dict[str, bytes] = field(default_factory=dict)
    held_by: dict[str, tuple[str, str]] = field(default_factory=dict)  # environment path → (ISO, path)
    parts: dict[str, list[Part]] = field(default_factory=lambda: defaultdict(list))
    entries: list[tuple[str, str, int]] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # a document's later name -> its first name

    def add(self, reader: IsoReader, listed: Iterable[ManifestEntry]) -> None:
        for entry in listed:
            if not entry.path.startswith("data/") or entry.path == layout.DATA_KEY_PATH:
                continue
            logical = entry.chunk.chunk_of if entry.chunk else entry.path
            relpath = env_path(logical)
            document = is_document(relpath)
            if not (self.keep_entries or document):
                continue
            if entry.chunk is None or entry.chunk.chunk_index == 0:
                self.entries += [(relpath, entry.type, entry.mode)] if self.keep_entries else []
                self.held_by[relpath] = (reader.name, logical)
            if entry.hardlink is not None:
                self.links[relpath] = env_path(entry.hardlink)
            elif entry.type == "file" and entry.encryption is None and document:
                self.add_document(reader, entry, relpath)

    def add_document(self, reader: IsoReader, entry: ManifestEntry, relpath: str) -> None:
        if entry.chunk is None:
            self.documents[relpath] = reader.entry_bytes(entry, DOCUMENT_LIMIT)
            return
        if entry.chunk.logical_size > DOCUMENT_LIMIT:
            raise BackupSetError(
                f"document of {entry.chunk.logical_size} bytes is larger than the {DOCUMENT_LIMIT} allowed",
                iso=reader.name,
                path=entry.chunk.chunk_of,
            )
        self.parts[relpath].append(Part(reader.name, entry, reader.entry_bytes(entry, DOCUMENT_LIMIT)))

    def environment(self) -> SetEnvironment:
        documents = self.documents
        for relpath, parts in self.parts.items():
            documents[relpath] = reassembled_document(parts)
        documents.update({link: documents[first] for link, first in self.links.items() if first in documents})
        held = SetDocuments(documents, self.held_by)
        texts = {path: data.decode("utf-8", errors="replace") for path, data in documents.items()}
        index, core = self.core.index, self.core
        try:
            environment = environment_from_files(
                texts, tuple(index.components), tuple(index.dependencies), core.name, tuple(index.hardware)
            )
        except EnvironmentStateError as exc:
            iso, path, what = held.located(str(exc))
            raise BackupSetError(what, iso=iso, path=path) from exc
        return SetEnvironment(core.backup_set_id, environment, held, sorted(self.entries))


@dataclass(frozen=True)
class Part:
    """A part of a document another writer split (a small chunk size), read and checked."""

    iso: str
    entry: ManifestEntry
    data: bytes


def reassembled_document(parts: list[Part]) -> bytes:
    """A document split into parts, joined and checked against its logical_sha256."""
    parts = sorted(parts, key=lambda part: part.entry.chunk.chunk_index if part.entry.chunk else -1)
    first = parts[0].entry
    chunk = first.chunk
    assert chunk is not None
    indexes = [p.entry.chunk.chunk_index if p.entry.chunk else None for p in parts]
    if indexes != list(range(chunk.chunk_count)):
        raise BackupSetError(
            f"the parts of {chunk.chunk_of} are incomplete", iso=parts[0].iso, path=first.path
        )
    try:
        return join_chunks([p.data for p in parts], chunk.logical_size, chunk.logical_sha256)
    except ValueError as exc:
        raise IntegrityError(str(exc), iso=parts[0].iso, path=chunk.chunk_of) from exc


def generate(
    location: str,
    inventory_path: Path,
    mode: str,
    *,
    allow_system_root: bool = False,
    workspace: Path | None = None,
) -> tuple[Plan, SetEnvironment]:
    """The plan of the set at `location` onto the inventory; with `workspace`, carrying its plan overlay."""
    from transforms.plan.generate import generate_plan  # polars: not for execute-plan, which imports us

    inventory = load_inventory(inventory_path, allow_system_root=allow_system_root)
    source = stream_set_environment(location)
    warnings = plan_warnings(source.documents, workspace)
    plan = generate_plan(source.environment, inventory, mode, source.backup_set_id, warnings=warnings)
    return with_document_warnings(plan, source.documents), source


def with_document_warnings(plan: Plan, documents: Mapping[str, bytes]) -> Plan:
    """`plan` with a warning, after its adaptations, for each place of the set's documents where an
    old storage path several entries of the plan use is left unchanged."""
    return replace(plan, adaptations=plan.adaptations + ambiguous_path_warnings(plan, documents))


def plan_warnings(documents: Mapping[str, bytes], workspace: Path | None) -> tuple[Adaptation, ...]:
    """What the plan must say beyond its adaptations, for plan-generate and the plan asset alike: an old
    CA certificate that cannot be read, then the workspace's plan overlay."""
    problem = old_ca_problem(documents.get("keys/ca.crt"))
    warnings: tuple[Adaptation, ...] = (old_ca_warning(problem),) if problem else ()
    return warnings + (overlay_adaptations(workspace) if workspace is not None else ())


def old_ca_warning(problem: str) -> Adaptation:
    """The plan's and the report's line for an old CA certificate that cannot be read."""
    return Adaptation(
        "certificate",
        "old CA (keys/ca.crt)",
        "unreadable",
        "a new CA, issued at restore time",
        f"warning: {problem}; node certificates are issued by the new CA only",
    )


def write_plan_files(plan: Plan, output: Path) -> Path:
    """The plan's YAML at `output` and its graph at `output` with `.svg`; each appears only when whole."""
    svg = output.with_suffix(".svg")
    for path, text in ((output, plan_to_yaml(plan)), (svg, plan_to_svg(plan))):
        write_text_whole(path, text)
    return svg


def plan_id(plan: Plan) -> str:
    """The plan's id: its set and the hash it was generated with (an edited plan keeps its id)."""
    return f"{plan.backup_set_id}-{(plan.recorded_sha256 or plan.sha256)[:12]}"


def store_plan(
    database_url: str, plan: Plan, plan_text: str | None = None, created_by: str = "plan-generate"
) -> str:
    """Record the plan (as written, or as `plan_text` when edited) and its adaptations, once per plan id."""
    pid = plan_id(plan)
    with connect(database_url) as conn:
        conn.execute(
            "INSERT INTO omni.backup_sets (backup_set_id, created_at, omnicloud_version, iso_count) "
            "VALUES (%s, now(), '', 1) ON CONFLICT DO NOTHING",
            (plan.backup_set_id,),
        )
        inserted = conn.execute(
            "INSERT INTO omni.recovery_plans "
            "(plan_id, backup_set_id, adaptation_mode, plan_yaml, plan_sha256) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (plan_id) DO NOTHING RETURNING plan_id",
            (
                pid,
                plan.backup_set_id,
                plan.adaptation_mode,
                plan_text or plan_to_yaml(plan),
                plan.recorded_sha256 or plan.sha256,
            ),
        ).fetchone()
        if inserted:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO omni.adaptations (plan_id, kind, subject, old_value, new_value, reason) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (pid, a.kind, a.subject, Jsonb(a.old), Jsonb(a.new), a.reason)
                        for a in plan.adaptations
                    ],
                )
        audit(
            conn,
            "plan.generate",
            pid,
            {
                "by": created_by,
                "steps": len(plan.steps),
                "adaptations": len(plan.adaptations),
                "new": bool(inserted),
            },
        )
        conn.commit()
    return pid


def record_plan_source(
    plan_path: Path, location: str, inventory_path: Path, workspace: Path | None = None
) -> Path:
    """Beside a generated plan, where its set, inventory and (when known) workspace are, so execute-plan
    and a restore launched from the Dagster UI need only the plan."""
    record = plan_path.with_name(plan_path.name + PLAN_RECORD_SUFFIX)
    source = {"location": absolute_location(location), "inventory": str(inventory_path.resolve())}
    if workspace is not None:
        source["workspace"] = str(workspace.resolve())
    record.write_text(json.dumps(source, indent=2))
    return record


def recorded_plan_source(plan_path: Path) -> dict[str, str]:
    """What `record_plan_source` wrote beside the plan; empty when nothing was (a plan written by hand)."""
    record = plan_path.with_name(plan_path.name + PLAN_RECORD_SUFFIX)
    try:
        found = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
