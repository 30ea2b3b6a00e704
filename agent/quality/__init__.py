"""On-the-spot capture quality checks (pure functions over images; no I/O)."""
