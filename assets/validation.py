"""Deep validation as an asset, so that a recovery can be prepared from the Dagster UI alone.

How it works: `deep_validation` validates the registered set that planning is configured for
(`resources.planning.backup_set_id`, else the most recently registered set) in the folder it was
registered from, deeply: every byte hashed, chunked files reassembled, sealed files authenticated
(`omni_recovery.validate.validate(deep=True)`, what `validate-isos --deep` runs). The report goes
into the recovery database, where execute-plan and the restore assets require a passed deep
validation of the very manifests they restore from, and into the materialisation's metadata:
counts, the problem table, the validation run id. Trusted signers come from
OMNI_RECOVERY_TRUSTED_KEY and the passphrase from OMNI_RECOVERY_PASSPHRASE in the environment of
the code location, as for the ISO checks and the restore; never from run config.

It is an asset of its own (group `validation`, job `validate_set`) rather than a check on the
catalog, because it reads every byte of the set: it runs when asked, not on every registration.

What can go wrong: a set with a blocking problem has its report stored all the same (so `status`,
plan and restore can say why) and the materialisation fails with the summary and the problem
table. No passphrase, or no registered set, fails before anything is read.
"""

from dagster import AssetExecutionContext, Failure, MaterializeResult, asset

from assets import catalog
from assets.checks import problem_metadata, summary
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.validate import store

__all__ = ["VALIDATION_ASSETS", "deep_validation"]


@asset(
    group_name="validation",
    deps=[catalog.isos],
    required_resource_keys={"planning"},
    description="Deep validation of the registered set (resources.planning.backup_set_id, else the most "
    "recent): every byte hashed, chunks reassembled, sealed files authenticated; stored for execute-plan.",
)
def deep_validation(context: AssetExecutionContext) -> MaterializeResult:
    planning = context.resources.planning
    validate_deeply = planning.deep_validator()  # the command line's planning brings its own keys
    backup_set_id, folder = planning.registered_set()
    context.log.info(f"deep validation of backup set {backup_set_id} in {folder}")
    report, preset = validate_deeply(folder)
    url = database_url(planning.settings())
    init_database(url)
    with connect(url) as conn:
        run_id = store(conn, report)
    problems = [*preset, *report.problems]
    passed, metadata = problem_metadata(
        problems,
        {
            "backup_set_id": backup_set_id,
            "folder": folder,
            "validation_run": run_id,
            "isos": len(report.isos),
            "bytes_hashed": report.bytes_hashed,
            "seconds": round(report.seconds, 2),
        },
    )
    description = summary(f"backup set {backup_set_id}", problems)
    if not passed:
        raise Failure(description=description, metadata=metadata)
    context.log.info(description)
    return MaterializeResult(metadata=metadata)


VALIDATION_ASSETS = [deep_validation]
