"""`voxhost loadtest`: game traffic against a local voxhost (127.0.0.1 only)."""
