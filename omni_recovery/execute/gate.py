"""The gate of a recovery run: every refusal, each before anything is written.

In this order: the plan read and re-validated (its roots and paths against the inventory's), the
run's lock (a second process on the same plan stops here), the set's latest deep validation on
record for these very ISOs (by their manifests' fingerprint), the passphrase (the data key derived
while the layout is worked out), the chosen or launched applications, and the signing key of the
post-recovery backup. Only then is the run opened, or resumed, in the recovery database.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from omni_recovery.backupset.reader import manifests_fingerprint
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.db.connection import connect
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import RecoveryRefused

_VALIDATE_AGAIN = "Run `omni-recovery validate-isos --deep`"


def prepare(context: RunContext) -> None:
    """Pass the gate (see the module documentation), or raise the refusal that stops the run."""
    _ = context.plan  # the plan's roots and paths against the inventory's, before any other check
    _ = context.run_lock  # a second process on this run stops here
    if context.options.require_validation:
        require_validation(context)
    _ = context.source  # the readers' documents, read before another thread uses a reader
    # scrypt releases the GIL: the key is derived while the layout is worked out.
    with ThreadPoolExecutor(1, thread_name_prefix="omni-unlock") as pool:
        unlocking = pool.submit(lambda: context.data_key)
        try:
            _ = context.files_by_step
        finally:
            unlocking.result()  # a wrong passphrase is the refusal reported, as it comes first
    _ = context.partial  # unknown --applications or launched application partitions
    if context.options.signing_key is not None:
        load_signing_key(context.options.signing_key)  # not at the end of the run, after the restore
    _ = context.tracker


def require_validation(context: RunContext) -> None:
    """The latest deep validation of these very ISOs (by their manifests' fingerprint) passed."""
    set_id = context.source.backup_set_id
    with connect(context.database_url) as conn:
        runs = conn.execute(
            "SELECT passed, finished_at, manifests_sha256 FROM omni.validation_runs "
            "WHERE backup_set_id = %s AND deep ORDER BY started_at DESC",
            (set_id,),
        ).fetchall()
    if not runs:
        raise RecoveryRefused(
            f"backup set {set_id} has no deep validation on record: run "
            "`omni-recovery validate-isos --deep` first; nothing is restored from an "
            "unvalidated set"
        )
    fingerprint = manifests_fingerprint(context.readers)
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
            f"manifests it checked (an older omni-recovery, or unreadable ISOs). {_VALIDATE_AGAIN} again"
        )
    raise RecoveryRefused(
        f"the ISOs at {context.source_record['location']} are not the ones any deep validation of backup "
        f"set {set_id} checked (the last on {runs[0][1]}): their manifests differ. {_VALIDATE_AGAIN} on "
        "them first"
    )
