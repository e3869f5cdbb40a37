"""The restorer: files of a backup set onto target roots, new certificates, ring and cluster membership.

`files` streams file content from the ISOs onto a `targets.TargetRoot`, verifying every byte
(`sparse` writes files with holes, `attributes` applies owners, xattrs and mtimes);
`certificates` issues a new CA and one certificate per node; `membership` forms the Director
ring and the Orchestrator cluster and renders the files every member gets. Nothing here imports
Dagster: the restore assets call these functions.
"""
