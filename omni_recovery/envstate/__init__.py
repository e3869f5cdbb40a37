"""The environment state folder: the on-disk shape of a running OmniCloud environment.

`model` maps each file of the folder to its place in a backup set (and back), `topology` reads
the folder into the recovery index, and `demo` writes a realistic, deterministic demo folder.
See docs/environment-state.md.
"""
