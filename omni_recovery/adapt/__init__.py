"""The adapt stage's inputs: the target inventory, read and checked, and where a recovery may write.

`inventory` loads the operator's inventory (nodes, roots, storage pools, networks) and refuses one
that cannot be used, naming the line; `root_safety` finds roots that are system folders, one
folder through a symbolic link, or roots and paths of a plan that are not the inventory's. The
adaptation itself (hardware, network, storage, scaling) is pure and lives in transforms/.
"""
