"""The restore layout's parts: `files` (what a restore writes, and how documents are serialised) and
`checks` (a plan checked against the environment and the inventory). transforms/target_layout.py
builds the layout from them."""
