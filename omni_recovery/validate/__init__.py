"""The checker: is a backup set whole, authentic and safe to restore from? (`validate-isos`)

How it works
------------
Checks never raise on a fault of the set: each fault becomes a `Problem` (severity, check, ISO,
path, expected, found, message, blocking), so one bad ISO never hides the problems of the
others, and errors the reader raises on purpose are converted, keeping their ISO and path.
Three layers, each callable on its own (a Dagster asset check wraps one call):

- per ISO, shallow (`check_iso`): the image's directory tree is readable; the fixed files are
  there; both signatures verify and the signer is one the operator trusts; manifest and
  backup_info parse (unsafe paths such as `../x`, `/x`, backslashes or NUL, duplicated paths,
  symlinks leaving their volume are refused); the ISO is what its name says; the manifest
  equals the image listing (nothing missing, nothing extra); sizes agree; the small metadata
  files hash as listed; recovery_index.db is readable; parts of chunked files agree.
- over the set, shallow (`check_set`): complete against `iso_set` (missing, extra, other sets
  mixed in), kind counts, sequences without gaps, backup_info identical in every ISO; every
  component, dependency and file reference resolves across the set; chunks complete and in order.
- deep (`deep_check_iso`, `deep_check_chunks`, after `unlock`): every stored byte hashed against
  the manifest straight from the image's extents; chunked files reassembled and checked against
  logical_sha256; every encrypted file decrypted and its tag checked with the data key.

`validate` runs all of them over a folder (threads across ISOs and files) and returns a
`ValidationReport` (`passed`, text table, JSON); `store` writes it to the recovery database.
`check_iso_url`, `check_set_urls`, `deep_check_iso_url` and `passed_and_metadata` are the one
call each Dagster asset check makes.

What can go wrong
-----------------
Everything read is untrusted. The image walker refuses malformed trees; metadata reads are
capped (absurd declared sizes are compared, never allocated); recovery_index.db is read from a
private copy, read-only and immutable, with only known columns selected; Rock Ridge symlinks are
reported, never followed; scripts in the backup are never run. A check that cannot run because
an earlier one failed (no manifest, unreadable index) is skipped, and the earlier failure is
the reported problem. Without trusted keys every ISO fails the signature check (fail closed);
without the passphrase, deep mode reports encrypted files as not authenticated.
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
