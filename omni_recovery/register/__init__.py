"""The register stage: which backup sets the workspace knows, where their ISOs lie, and their catalog.

`register-isos` reads each ISO of a whole set (through backupset/reader.py) and the Dagster
pipeline (pipelines/runner.py, assets/ingest.py, assets/catalog.py) turns the listings into
catalog tables. Here: `registered_sets` (the registry: which sets, where, the latest one, what
commands use when --path is left out) and `catalog_sql` (SQL over the catalog with DuckDB, for
`omni-recovery sql`).
"""
