"""The ``regsync`` command: one verb per job, one module per group of verbs.

:mod:`regsync.cli.app` holds the Typer app, the global options and the one place where failures
become a line and an exit code; each other module adds its verbs to that app when imported, so the
order of the imports below is the order of ``regsync --help``.
"""

# ruff: noqa: I001  (the import order is the help's order)
from regsync.cli import pipeline as _pipeline  # noqa: F401  (each module registers its verbs)
from regsync.cli import stack as _stack  # noqa: F401
from regsync.cli import dlq as _dlq  # noqa: F401
from regsync.cli import deploy as _deploy  # noqa: F401
from regsync.cli import filings as _filings  # noqa: F401
from regsync.cli import web as _web  # noqa: F401
from regsync.cli.app import app, main

__all__ = ["app", "main"]
