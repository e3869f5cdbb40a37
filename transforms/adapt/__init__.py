"""The adaptation of an old environment onto the new infrastructure, one module per concern.

`hardware` maps old nodes onto inventory nodes and places and scales the VMs, `network` re-addresses
every old subnet onto the inventory's, `storage_paths` redirects Director paths and volumes onto the
storage pools, `scaling` sizes what moves; the plan (transforms/plan/) records their adaptations.
Then, at restore time, `layout.mappings` turns the plan into values to look for and `values` applies them
to every value of every document, each change recorded in `changes`.
"""
