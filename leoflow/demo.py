"""``python -m leoflow.demo``: what ``make demo`` runs; the same as ``leoflow demo`` (leoflow/cli/demo.py)."""

import sys

from leoflow.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["demo", *sys.argv[1:]]))
