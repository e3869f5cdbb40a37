"""omni_recovery/targets."""
