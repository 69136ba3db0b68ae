"""The ``regsync`` command's root: the Typer app, its global options and the one error handler.

Errors are handled in one place, :class:`_Handled`: every expected failure (a
:class:`~schemas.errors.RegsyncError`, or a client library's error that :func:`regsync.failures.classify`
recognises) ends as one red line with its hint and the exit code of its group (``docs/operations.md``
lists them); ``--debug`` adds the traceback. A traceback without ``--debug`` means a bug. Arguments are
checked before any service is contacted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from regsync.cli.output import console, progress
from regsync.failures import classify


class _Handled(TyperGroup):
    """The one place where failures become a line and an exit code (see the module docstring)."""

    def invoke(self, ctx: Any) -> Any:  # Any: the Context of the click that typer vendors
        """Run the command; an expected failure is one red line and its group's exit code."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            known = classify(exc)
            if known is None:
                raise  # a bug: keep the traceback
            if _debug:
                console.print_exception()
            console.print(f"[bold red]error:[/] {known.one_line()}", highlight=False, soft_wrap=True)
            raise typer.Exit(known.exit_code) from exc


app = typer.Typer(
    cls=_Handled,
    name="regsync",
    help="Sync childcare-institution (托育机构) registrations from registrars to county health departments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_debug = False


@app.callback()
def _options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an expected failure too.")
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="REGSYNC_LOG_LEVEL",
            metavar="LEVEL",
            help="DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        ),
    ] = "WARNING",
    log_json: Annotated[
        bool,
        typer.Option("--log-json", envvar="REGSYNC_LOG_JSON", help="Log one JSON object per line (stderr)."),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            envvar="REGSYNC_METRICS_PORT",
            help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics while the command runs (gate --forever).",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress on stderr (results, warnings and errors still print)."
        ),
    ] = False,
    metrics_textfile_dir: Annotated[
        Path | None,
        typer.Option(
            "--metrics-textfile-dir",
            metavar="DIR",
            envvar="REGSYNC_METRICS_TEXTFILE_DIR",
            help="At exit, write regsync_<command>.prom here (node_exporter's textfile collector).",
        ),
    ] = None,
) -> None:
    """Sync childcare-institution (托育机构) registrations from registrars to county health departments."""
    global _debug
    _debug = debug
    progress.quiet = quiet
    from regsync import logs, metrics

    try:
        logs.configure(log_level, json_lines=log_json)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from exc
    if metrics_port is not None:
        metrics.serve(metrics_port)
    if metrics_textfile_dir is not None and ctx.invoked_subcommand:
        job = ctx.invoked_subcommand
        # Runs on success and on failure alike (a failed extract is what the alerts count).
        ctx.call_on_close(lambda: metrics.write_textfile(metrics_textfile_dir, job))


def main() -> None:
    """Console entry point (errors are handled by :class:`_Handled`, also under Typer's test runner)."""
    app()
