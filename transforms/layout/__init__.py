"""The restore layout's parts: `files` (what a restore writes, and how documents are serialised),
`checks` (a plan checked against the environment and the inventory), `mappings` (the plan's values to
rewrite), `writer` (the builder's state and the files it writes) and `directors` (the node and Director
documents rewritten). transforms/target_layout.py builds the layout from them."""
