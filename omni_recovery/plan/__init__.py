"""The plan stage: `plan-generate`, the old environment read from a set, adapted, planned and stored.

`generate` opens every ISO of the set once, reads the environment's small documents through the
verifying reader, hands them with the inventory to the pure planner (transforms/planner.py), and
writes the plan's YAML and SVG and its record in the recovery database. execute-plan reads the
set's environment again through the same functions.
"""
