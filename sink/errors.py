"""The sink's exceptions, grouped by what the caller should do.

All are terminal for the run that raised them: the load transaction has been rolled back, so
nothing is half-written, and retrying unchanged would fail the same way. Messages name the month,
topic and record so the operator can act without reading a traceback.
"""

from __future__ import annotations

from schemas.errors import FatalError

__all__ = ["FilingImportError", "MonthConflictError", "PositionError", "SinkError"]


class SinkError(FatalError):
    """Base of every error the filing store raises on purpose."""


class MonthConflictError(SinkError):
    """The month was already loaded from different offset ranges (e.g. while it was still open).

    Re-run with ``replace=True`` to delete that load and reload the month from the new ranges.
    """


class PositionError(SinkError):
    """A record lies outside the declared offset ranges or goes backwards within its partition.

    The caller read something other than what it declared; loading it would make the manifest lie.
    """


class FilingImportError(SinkError):
    """A filings file cannot be imported at all (missing columns, unreadable encoding)."""
