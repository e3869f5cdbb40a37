"""Practising the recovery: drills, the rotating verification of the backup store, notifications,
and what a finished recovery suggests for the next one.

- the drill itself (a whole rehearsal through the pipelines) is `pipelines/drill.py`.
- `rotation`: which slice of a set the next `validate-isos --deep --subset auto/N` hashes, and how
  much of every set was verified how long ago (`status --verification`).
- `freshness`: whether backups have stopped (the newest set older than allowed).
- `notifications`: one message (webhook and/or SMTP) for a finished or failed run.
- `optimize`: recommendations after a recovery (transforms.recommendations), and applying the
  rebalances that change the restored environment.

Each module says how it works and what can go wrong; docs/practise-the-recovery.md is the
operator's guide. Nothing here imports Dagster: the schedules and sensors in pipelines/ call it.
"""
