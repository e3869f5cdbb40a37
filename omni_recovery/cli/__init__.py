"""The `omni-recovery` command line: one module per stage's commands, each parsing its options
and calling the library or a pipeline. Nothing outside this package imports click.
"""

from omni_recovery.cli.main import main

__all__ = ["main"]
