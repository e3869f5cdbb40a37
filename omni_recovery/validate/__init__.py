"""The checker: is a backup set whole, authentic and safe to restore from? (`validate-isos`)

How it works: checks never raise on a fault of the set: each fault becomes a `Problem` (severity,
check, ISO, path, expected, found, message, blocking), so one bad ISO never hides the problems of
the others; errors the reader raises on purpose are converted, keeping their ISO and path. Three
layers, each callable on its own (a Dagster asset check wraps one call):
- per ISO, shallow (`check_iso`): the directory tree is readable; the fixed files are there; both
  signatures verify by a signer the operator trusts; manifest and backup_info parse (unsafe paths,
  duplicates, symlinks leaving their volume refused); the ISO is what its name says; the manifest
  equals the image listing; sizes agree; small metadata files hash as listed; recovery_index.db is
  readable; parts of chunked files agree.
- over the set, shallow (`check_set`): complete against `iso_set`, kind counts, sequences without
  gaps, backup_info identical everywhere, every reference resolved, chunks complete and in order.
- deep (`deep_check_iso`, `deep_check_chunks`, after `unlock`): every stored byte hashed from the
  image's extents; chunked files checked against logical_sha256; encrypted files decrypted, tags checked.
`validate` runs them all over a folder (threads across ISOs and files) into a `ValidationReport`
(`passed`, text table, JSON); `store` writes it to the recovery database. `check_iso_url`,
`check_set_urls`, `deep_check_iso_url` and `passed_and_metadata` serve the Dagster asset checks.

What can go wrong: everything read is untrusted. Malformed trees are refused; metadata reads are
capped (absurd sizes compared, never allocated); recovery_index.db is read from a private read-only
copy, known columns only; Rock Ridge symlinks are reported, never followed; backup scripts never run.
A check that cannot run because an earlier one failed is skipped (the earlier failure is reported).
Without trusted keys every ISO fails its signature check (fail closed); without the passphrase, deep
mode reports encrypted files as not authenticated.
"""

from omni_recovery.validate.deep import deep_check_chunks, deep_check_iso, unlock
from omni_recovery.validate.iso_checks import check_iso, open_iso
from omni_recovery.validate.problems import Problem, Progress
from omni_recovery.validate.report import ValidationReport, latest_deep_run, store
from omni_recovery.validate.runner import (
    check_iso_url,
    check_set_urls,
    deep_check_iso_url,
    list_set_folder,
    passed_and_metadata,
    validate,
)
from omni_recovery.validate.set_checks import check_set

__all__ = [
    "Problem",
    "Progress",
    "ValidationReport",
    "check_iso",
    "check_iso_url",
    "check_set",
    "check_set_urls",
    "deep_check_chunks",
    "deep_check_iso",
    "deep_check_iso_url",
    "latest_deep_run",
    "list_set_folder",
    "open_iso",
    "passed_and_metadata",
    "store",
    "unlock",
    "validate",
]
