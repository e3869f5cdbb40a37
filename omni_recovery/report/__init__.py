"""The report stage: what a recovery run did, for machines (JSON) and people (one HTML page).

`build` gathers the content from a run (its steps as recorded, the plan's adaptations, the
verification steps as checks, what was recovered); `render` holds the `RecoveryReport` and writes
it as JSON and a self-contained HTML page with a timeline. The validation report of a set is the
validate stage's (validate/report.py).
"""
