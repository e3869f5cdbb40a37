"""omni_recovery/backupset."""
