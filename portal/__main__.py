"""``python -m portal users|tokens|serve`` — the same commands ``regsync`` gains from :func:`portal.cli.register`."""

from portal.cli import main

main()
