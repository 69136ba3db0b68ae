"""Arguments shared by several verbs, each checked before anything connects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from regsync.settings import get_settings
from schemas.errors import ConfigurationError
from schemas.month import Month


def _month_arg(value: str | None) -> str | None:
    """Validate ``--month`` before anything connects (``2026-13`` fails here, in one line)."""
    if value is None:
        return None
    try:
        return str(Month.parse(value))
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _source_args(values: list[str] | None) -> list[str] | None:
    from regsync import sources

    for name in values or []:
        if name not in sources.FACTORIES:
            raise typer.BadParameter(f"unknown source {name!r}; known: {', '.join(sources.FACTORIES)}")
    return values


def _as_of(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(get_settings().timezone))


def _as_of_arg(value: str | None) -> str | None:
    if value:
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise typer.BadParameter(
                f"not an ISO 8601 instant: {value!r} (e.g. 2026-03-31T20:00+08:00)"
            ) from exc
    return value


AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="INSTANT",
        help="The pipeline clock: extraction time and Kafka timestamp (ISO 8601; default now). "
        "Replaying months uses past instants.",
        callback=_as_of_arg,
    ),
]


ReportMonth = Annotated[
    str,
    typer.Option(
        "--month",
        "-m",
        metavar="YYYY-MM",
        help="The month pushed, YYYY-MM (load it first).",
        callback=_month_arg,
    ),
]


def _uscc_arg(value: str | None) -> str | None:
    """Check a USCC before anything connects, naming the failing position (``schemas.uscc`` knows it)."""
    if value is None:
        return None
    from schemas.uscc import Severity, parse

    result = parse(value)
    if not result.is_valid:
        why = "; ".join(f.message for f in result.findings if f.severity is Severity.ERROR)
        raise typer.BadParameter(f"not a valid USCC {result.code!r}: {why}")
    return result.code
