"""Allow ``python -m agent`` as an alias of the ``rekam`` command."""

from agent.cli import main

raise SystemExit(main())
