"""The execute stage: a recovery plan carried out on the target roots (`execute-plan`, `deploy-directors`).

`recovery` holds the `Recovery` (the run's context: plan, readers, data key, layout, tracker,
certificates; the gate of preconditions; one handler per step kind); `scheduler` runs steps in
dependency order, several at once; `tracking` records runs, steps and verified files in the
recovery database, with the run's lock; `verification` is the final check of the layout and of
every restored byte. The bytes are written by restorer/ through targets/.
"""
