"""``python -m regsync`` runs the CLI."""

from regsync.cli import main

main()
