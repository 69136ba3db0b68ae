"""``regsync users|tokens|serve``: the web service's commands on the one ``regsync`` command."""

from __future__ import annotations

from regsync.cli.app import app


def _add_portal_commands() -> None:
    """``regsync users|tokens|serve``: the web service's own commands, on the one ``regsync`` command.

    The portal sits above ``regsync`` (it imports the pipeline, never the reverse); this is the one
    deliberate exception, declared in pyproject's import-linter contracts: the command line is where
    every interface meets.
    """
    from portal.cli import register

    register(app)


_add_portal_commands()
