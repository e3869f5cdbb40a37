"""The execute stage: a recovery plan carried out on the target roots (`execute-plan`, `deploy-directors`).

`options`: what a run is asked to do. `context`: the run's context (plan, readers, data key, layout,
roots, tracker, certificates), loaded once. `gate`: every refusal before anything is written.
`selection`: which steps a run or partition takes on. `steps/`: one handler per step kind.
`runner`: scheduling (`scheduler`), retries and on_failure. `end`: the run closed once every step
has succeeded. `tracking`: runs, steps and verified files in the recovery database, with the run's
lock. `verification`: the final check of the layout and of every restored byte. The bytes are
written by restorer/ through targets/; the run is built by pipelines/recovery_run.py.
"""
