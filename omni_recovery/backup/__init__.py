"""The backup stage: environment state folders written as signed, encrypted backup sets.

`writer` (`backup create`) walks an environment state folder and writes the set's ISOs in one
streaming pass each, built by `isobuild`; `post_recovery` gathers a restored environment from its
target roots and backs it up with the same writer. The format itself (manifest, layout, keys,
signing, the reader) is backupset/'s, shared by every stage.
"""
