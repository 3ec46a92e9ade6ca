"""``python -m leoflow`` runs the CLI, so the venv's interpreter alone is enough."""

from leoflow.cli import main

raise SystemExit(main())
