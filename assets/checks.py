"""Asset checks: is each ingested ISO, and each catalogued backup set, whole, authentic and safe?

Two blocking Dagster asset checks (a failure means the set is unsafe to restore from, so downstream
assets of the run do not start), each a thin wrapper of one `omni_recovery.validate` call, shown in
the UI as a Markdown table of problems (severity, check, ISO, path, expected, found, message):
- `iso_validation` on `iso_manifest`, with its partitions (`ISO_PARTITIONS`, one per ISO file):
  `check_iso_url` on the partition's ISO, found through the `iso_registry` resource: structure,
  both signatures against the operator's trusted keys, manifest against the image's listing, sizes,
  hashes, recovery index, chunks. The trusted signers are those of the `trusted_keys` resource
  (register-isos --trusted-key), then `OMNI_RECOVERY_TRUSTED_KEY` (comma-separated key ids or public
  key files); without one every signature check fails (fail closed), except for register-isos, whose
  check warns that the signer was not judged (`TrustedKeys`). A one-partition run returns an
  `AssetCheckResult`; a run over a key range reports one `AssetCheckEvaluation` per ISO partition.
- `set_validation` on the catalog's `isos` table: `check_set_urls` over every ISO of each set
  (the registry's URL, else the catalog's): completeness against `iso_set`, kind counts, sequence
  gaps, backup_info identical everywhere, every reference resolved across the set, chunks in order.
`ASSET_CHECKS` lists both, for the code location's definitions and for `materialize`.

What can go wrong: a fault of the set never raises here: it becomes a problem and the check fails.
A partition key missing from the registry, an unreadable trusted key file or a storage error is a
problem as well, so the check reports instead of crashing. The table is cut at `TABLE_ROWS` rows (the
counts stay exact). Dagster marks partitioned checks as a preview feature and warns about it.
"""

import dataclasses
import posixpath
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
    PreviewWarning,
    asset_check,
)

# Not exported by `dagster`; it is what AssetCheckResult itself fills in to link a materialisation.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from assets import catalog
from assets.ingest import ISO_PARTITIONS
from omni_recovery.backupset.signing import TRUSTED_KEY_ENV, TrustedSigners, trusted_specs
from omni_recovery.errors import RecoveryError
from omni_recovery.validate import check_iso_url, check_set_urls, passed_and_metadata
from omni_recovery.validate import problems as p
from omni_recovery.validate.iso_checks import NO_TRUSTED_KEY
from omni_recovery.validate.problems import Problem

__all__ = [
    "ASSET_CHECKS",
    "ISO_CHECK_ASSET",
    "TABLE_ROWS",
    "TRUSTED_KEY_ENV",
    "TrustedKeys",
    "iso_validation",
    "problem_metadata",
    "set_validation",
    "summary",
    "trusted_signers",
]

ISO_CHECK_ASSET = AssetKey("iso_manifest")
TABLE_ROWS = 200
_THREADS = 4

CheckEvent = AssetCheckResult | AssetCheckEvaluation | Output[None]

# Partitioned checks (one per ISO) are a preview feature of dagster 1.13; it says so on every import.
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=PreviewWarning)


@dataclass(frozen=True)
class TrustedKeys:
    """The `trusted_keys` resource: signers given by the command line (`given`, before those of
    OMNI_RECOVERY_TRUSTED_KEY, read when a check runs). With `unchecked_signer_allowed` and no trusted
    key at all, an ISO's signer is not judged: each ISO's check says so in a warning (register-isos
    without --trusted-key; validate-isos judges trust). Otherwise no key fails every ISO (fail closed)."""

    given: tuple[str, ...] = ()
    unchecked_signer_allowed: bool = False


def trusted_signers(given: tuple[str, ...] = ()) -> tuple[TrustedSigners, list[Problem]]:
    """The signers `given`, then those named by OMNI_RECOVERY_TRUSTED_KEY, read now; a problem when a
    spec is unusable.

    None given is no error here: every ISO then fails its signature check, which says so."""
    try:
        return TrustedSigners.from_specs(trusted_specs(given)), []
    except RecoveryError as exc:
        return TrustedSigners(frozenset()), [
            p.error(p.SIGNATURES, f"{TRUSTED_KEY_ENV}: {exc}", expected="a trusted key", found=None)
        ]


def problem_metadata(problems: list[Problem], extra: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """passed, and the metadata of one result: counts, the problem table (cut at TABLE_ROWS rows)."""
    passed, counts = passed_and_metadata(problems)
    _, shown = passed_and_metadata(problems[:TABLE_ROWS])
    table = str(shown["problems_markdown"])
    if len(problems) > TABLE_ROWS:
        table += f"\n\n… and {len(problems) - TABLE_ROWS} more problem(s) not shown"
    # The first blocking problem and the first warning, each in one line (reversed: the first is kept).
    firsts = {
        f"first_{kind}": f"{pr.iso}: {pr.path}: {pr.message}"
        for kind, pr in reversed([("blocking" if pr.blocking else "warning", pr) for pr in problems])
    }
    return passed, {
        **extra,
        **firsts,
        "errors": counts["errors"],
        "warnings": counts["warnings"],
        "blocking": counts["blocking"],
        "problems": MetadataValue.md(table),
    }


def summary(subject: str, problems: list[Problem]) -> str:
    blocking = [pr for pr in problems if pr.blocking]
    if not problems:
        return f"{subject}: no problems"
    checks = ", ".join(sorted({pr.check for pr in blocking or problems}))
    if not blocking:
        return f"{subject}: {len(problems)} warning(s) ({checks})"
    return f"{subject}: {len(blocking)} blocking problem(s) ({checks})"


def _check_one(key: str, registry: Any, trusted: TrustedSigners, preset: list[Problem]) -> list[Problem]:
    """The shallow problems of the ISO of partition `key` (never raises for a fault of the set)."""
    found = [dataclasses.replace(pr, iso=key) for pr in preset]
    try:
        url = str(registry.lookup(key)["url"])
    except RecoveryError as exc:
        return [*found, p.error(p.IMAGE_STRUCTURE, str(exc), iso=key)]
    try:
        found.extend(check_iso_url(url, trusted))
    except OSError as exc:  # the file vanished or the storage failed mid-way
        found.append(p.error(p.IMAGE_STRUCTURE, f"cannot read the image {url}: {exc}", iso=key))
    return found


def _signer_not_judged(problem: Problem) -> Problem:
    """The problem "no trusted key given" as a warning that says the signer was not judged."""
    if problem.check != p.SIGNATURES or problem.expected != NO_TRUSTED_KEY:
        return problem
    return p.warning(
        p.SIGNATURES,
        f"signer {problem.found} not checked against a trusted key: none given (--trusted-key or "
        f"{TRUSTED_KEY_ENV}); the signatures verify, and validate-isos judges the signer",
        iso=problem.iso,
        path=problem.path,
        expected=problem.expected,
        found=problem.found,
    )


def _materialization(context: AssetCheckExecutionContext, key: str) -> Any:
    """Where the checked partition was last materialised (links the evaluation to it in the UI)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=ISO_CHECK_ASSET, asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=record.event_log_entry.run_id, storage_id=record.storage_id, timestamp=record.timestamp
    )


# Dagster types a check function as returning one AssetCheckResult; a generator is accepted too
# (and is what a key-range run needs: one evaluation per partition).
@asset_check(  # type: ignore[arg-type]
    asset=ISO_CHECK_ASSET,
    name="iso_validation",
    blocking=True,
    partitions_def=ISO_PARTITIONS,
    required_resource_keys={"iso_registry", "trusted_keys"},
    description="Per ISO: image readable, signatures verified against the trusted keys "
    f"(${TRUSTED_KEY_ENV}), manifest equal to the image's listing, sizes, metadata hashes, index, chunks.",
)
def iso_validation(context: AssetCheckExecutionContext) -> Iterator[CheckEvent]:
    """Shallow validation of each ISO of the run's partitions (`check_iso_url`)."""
    registry = context.resources.iso_registry
    trust: TrustedKeys = context.resources.trusted_keys
    trusted, preset = trusted_signers(trust.given)
    keys = list(context.partition_keys)
    trusted_ids = ", ".join(sorted(trusted.key_ids)) or "none"
    unjudged = trust.unchecked_signer_allowed and not trusted.key_ids and not preset

    def run(key: str) -> list[Problem]:
        found = _check_one(key, registry, trusted, preset)
        return [_signer_not_judged(pr) for pr in found] if unjudged else found

    with ThreadPoolExecutor(
        max_workers=max(1, min(_THREADS, len(keys))), thread_name_prefix="omni-iso-check"
    ) as pool:
        results = list(pool.map(run, keys))
    if context.has_partition_key:
        (problems,) = results
        passed, metadata = problem_metadata(problems, {"iso": keys[0], "trusted_keys": trusted_ids})
        yield AssetCheckResult(passed=passed, metadata=metadata, description=summary(keys[0], problems))
        return
    # A run over a key range is one step: one evaluation per ISO, each with its partition.
    spec = context.check_specs[0]
    for key, problems in zip(keys, results, strict=True):
        passed, metadata = problem_metadata(problems, {"iso": key, "trusted_keys": trusted_ids})
        if not passed:
            context.log.error(summary(key, problems))
        yield AssetCheckEvaluation(
            asset_key=ISO_CHECK_ASSET,
            check_name=spec.name,
            passed=passed,
            metadata=metadata,
            target_materialization_data=_materialization(context, key),
            description=summary(key, problems),
            blocking=spec.blocking,
            partition=key,
        )
    yield Output(None, output_name=context.op_def.output_defs[0].name)


def _set_urls(catalog_isos: pa.Table, registered: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """backup_set_id → ISO file name → URL, for every set in the catalog: its registered ISOs, and
    any ISO the catalog lists that the registry lacks (at the catalog's URL)."""
    sets: dict[str, dict[str, str]] = {}
    rows = catalog_isos.select(["backup_set_id", "iso_name", "url"]).to_pylist()
    for row in rows:
        sets.setdefault(str(row["backup_set_id"]), {})
    for name, entry in registered.items():
        set_id = str(entry.get("backup_set_id"))
        if set_id in sets:
            sets[set_id][name] = str(entry["url"])
    for row in rows:
        urls = sets[str(row["backup_set_id"])]
        if row["iso_name"] not in urls and row["url"]:
            urls[str(row["iso_name"])] = str(row["url"])
    return {set_id: dict(sorted(urls.items())) for set_id, urls in sorted(sets.items())}


def _folders(urls: Iterable[str]) -> str:
    return ", ".join(sorted({posixpath.dirname(url) for url in urls}))


@asset_check(
    asset=catalog.isos,
    name="set_validation",
    blocking=True,
    required_resource_keys={"iso_registry"},
    description="Per backup set in the catalog: complete against iso_set, kind counts, no sequence gaps, "
    "backup_info identical, every component, dependency and file reference resolved, chunks complete.",
)
def set_validation(context: AssetCheckExecutionContext, isos: pa.Table) -> AssetCheckResult:
    """Set-level validation (`check_set_urls`) of every backup set the catalog holds."""
    registered = context.resources.iso_registry.entries()
    problems: list[Problem] = []
    per_set: dict[str, dict[str, Any]] = {}
    for set_id, urls in _set_urls(isos, registered).items():
        if not urls:
            found = [p.error(p.SET_COMPLETENESS, f"backup set {set_id} has no ISO with a known location")]
        else:
            try:
                found = check_set_urls(urls)
            except OSError as exc:
                found = [p.error(p.SET_LOCATION, f"cannot read the ISOs of set {set_id}: {exc}")]
        per_set[set_id] = {
            "isos": len(urls),
            "folder": _folders(urls.values()),
            "blocking": sum(1 for pr in found if pr.blocking),
        }
        problems.extend(found)
    passed, metadata = problem_metadata(
        problems,
        {
            "backup_sets": MetadataValue.json(per_set),
            "isos_checked": sum(int(s["isos"]) for s in per_set.values()),
        },
    )
    subject = "backup set(s) " + (", ".join(per_set) or "none in the catalog")
    return AssetCheckResult(passed=passed, metadata=metadata, description=summary(subject, problems))


ASSET_CHECKS = [iso_validation, set_validation]
