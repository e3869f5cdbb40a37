"""The environment state folder: the on-disk shape of a running OmniCloud environment.

`model` maps each file of the folder to its place in a backup set (and back), `topology` reads
the folder into the recovery index, `demo` writes a realistic, deterministic demo folder, and
`pki` builds the environment's CA certificate (for the demo and for a restore alike).
See docs/environment-state.md.
"""
