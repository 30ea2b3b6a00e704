"""One module per ``rekam`` subcommand (see agent/cli.py)."""
