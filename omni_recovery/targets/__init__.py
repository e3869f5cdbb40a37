"""Target drivers: where a restore writes. `driver.TargetRoot` is one node's root over fsspec."""
