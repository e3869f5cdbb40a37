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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from psycopg.types.json import Jsonb

from omni_recovery.adapt.inventory import load_inventory
from omni_recovery.backupset import layout
from omni_recovery.backupset.manifest import ManifestEntry, join_chunks
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
    core = [r for r in readers if r.manifest.kind == layout.SYSTEM_CORE]
    if len(core) != 1:
        raise BackupSetError(f"the set has {len(core)} system-core ISOs; exactly one is needed to plan")
    index = core[0].index()
    documents: dict[str, bytes] = {}
    held_by: dict[str, tuple[str, str]] = {}  # environment path → (ISO, path in it)
    chunked: dict[str, list[tuple[IsoReader, ManifestEntry]]] = defaultdict(list)
    entries: list[tuple[str, str, int]] = []
    links: dict[str, str] = {}  # a document's later name -> its first name
    for reader in readers:
        for entry in reader.manifest.files:
            if not entry.path.startswith("data/") or entry.path == layout.DATA_KEY_PATH:
                continue
            logical = entry.chunk.chunk_of if entry.chunk else entry.path
            relpath = env_path(logical)
            if entry.chunk is None or entry.chunk.chunk_index == 0:
                entries.append((relpath, entry.type, entry.mode))
                held_by[relpath] = (reader.name, logical)
            if entry.hardlink is not None:
                links[relpath] = env_path(entry.hardlink)
                continue
            if entry.type != "file" or entry.encryption is not None or not is_document(relpath):
                continue
            if entry.chunk is None:
                documents[relpath] = reader.verified_bytes(entry.path, DOCUMENT_LIMIT)
            else:
                chunked[relpath].append((reader, entry))
    for relpath, parts in chunked.items():
        documents[relpath] = reassembled_document(parts)
    documents.update({link: documents[first] for link, first in links.items() if first in documents})
    held = SetDocuments(documents, held_by)
    texts = {path: data.decode("utf-8", errors="replace") for path, data in documents.items()}
    set_id = core[0].manifest.backup_set_id
    name = str(core[0].backup_info.source_environment.get("name") or set_id)
    try:
        environment = environment_from_files(
            texts, tuple(index.components), tuple(index.dependencies), name, tuple(index.hardware)
        )
    except EnvironmentStateError as exc:
        iso, path, what = held.located(str(exc))
        raise BackupSetError(what, iso=iso, path=path) from exc
    return SetEnvironment(set_id, environment, held, sorted(entries))


def reassembled_document(parts: list[tuple[IsoReader, ManifestEntry]]) -> bytes:
    """A document another writer split into parts (a small chunk size), read whole and checked against
    its logical_sha256."""
    parts = sorted(parts, key=lambda part: part[1].chunk.chunk_index if part[1].chunk else -1)
    reader, first = parts[0]
    chunk = first.chunk
    assert chunk is not None
    if chunk.logical_size > DOCUMENT_LIMIT:
        raise BackupSetError(
            f"document of {chunk.logical_size} bytes is larger than the {DOCUMENT_LIMIT} allowed",
            iso=reader.name,
            path=chunk.chunk_of,
        )
    if [e.chunk.chunk_index if e.chunk else None for _, e in parts] != list(range(chunk.chunk_count)):
        raise BackupSetError(
            f"the parts of {chunk.chunk_of} are incomplete", iso=reader.name, path=first.path
        )
    contents = [part_reader.verified_bytes(entry.path, DOCUMENT_LIMIT) for part_reader, entry in parts]
    try:
        return join_chunks(contents, chunk.logical_size, chunk.logical_sha256)
    except ValueError as exc:
        raise IntegrityError(str(exc), iso=reader.name, path=chunk.chunk_of) from exc


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
    with open_set(location) as readers:
        source = read_set_environment(readers)
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
