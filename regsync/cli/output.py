"""How verbs print: tables for people, ``--json`` / ``--csv`` for scripts, progress on stderr.

stdout carries only the result (a table, JSON or CSV), so ``regsync … --json | jq`` works; progress,
warnings and errors go to stderr. A table piped into another program is never wrapped or cut: with
no terminal there is no width to respect, and a USCC cut to ``914418…`` is useless to a script.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = [
    "CsvOpt",
    "JsonOpt",
    "console",
    "emit_csv",
    "emit_json",
    "out",
    "progress",
    "step",
]

console = Console(stderr=True)
"""Errors and warnings (never silenced)."""
progress = Console(stderr=True)
"""Spinners and "done in" lines; ``--quiet`` silences exactly this one."""
# 100 000 columns: wide enough for any row, and rich sizes a table to its content, not the width.
out = Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)
"""The result, on stdout."""

JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the result as JSON on stdout (progress and errors stay on stderr)."),
]
CsvOpt = Annotated[
    bool, typer.Option("--csv", help="Print the rows as CSV on stdout (UTF-8, a header row, no BOM).")
]


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot write: instants and dates as ISO 8601, paths as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def emit_json(data: Any) -> None:
    """One JSON document on stdout (Chinese text as is, never escaped)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_plain) + "\n")
    sys.stdout.flush()


def defuse(value: Any) -> str:
    """A cell as text, with a leading ``=+-@`` quoted so a spreadsheet never runs it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def emit_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """CSV on stdout: a header row, then the rows (formula-like cells defused)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([defuse(v) for v in row])
    sys.stdout.flush()


@contextmanager
def step(what: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the elapsed time on stderr while the block runs, then one "done in" line.

    Yields a function that replaces the spinner's text (for steps that report their counts).
    """
    start = time.monotonic()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=progress,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)
        yield lambda text: bar.update(task, description=text)
    progress.print(f"[dim]{what}: done in {time.monotonic() - start:.1f} s[/]", highlight=False)
