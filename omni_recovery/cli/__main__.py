"""`python -m omni_recovery.cli COMMAND ...`, as the `omni-recovery` console script."""

from omni_recovery.cli.main import main

main()
