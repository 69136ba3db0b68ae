"""The portal's only imports of pipeline modules that are moving (``regsync.jobs``, ``regsync.dlq``).

Kept in one file so a rename of those modules is one edit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def reports_dir(configured: Path | None) -> Path:
    """Where the pipeline writes ``audit-YYYY-MM.html`` (``<output>/reports``)."""
    if configured is not None:
        return Path(configured) / "reports"
    from regsync.jobs import output_dir
    from regsync.settings import get_settings

    return output_dir(get_settings()) / "reports"


@dataclass(frozen=True, slots=True)
class DlqView:
    """Rejected records as masked summaries, or why they could not be read."""

    rows: list[dict[str, Any]]
    error: str | None


def dlq_rows(*, month: str | None = None, rule: str | None = None, limit: int = 200) -> DlqView:
    """Masked DLQ entries (read-only) from Kafka; an explanation instead when Kafka is unreachable."""
    try:
        from regsync import dlq, endpoints
        from regsync.errors import RegsyncError
        from regsync.settings import get_settings
        from regsync.topics import Topics
    except ImportError as exc:  # pragma: no cover - the pipeline is installed with the portal
        return DlqView([], str(exc))
    settings = get_settings()
    try:
        services = endpoints.resolve(settings)
        found = []
        flt = dlq.DlqFilter(rule_id=rule or None, month=month or None)
        for entry in dlq.entries(
            services.bootstrap_servers,
            services.registry_url,
            Topics(prefix=settings.topic_prefix),
            flt,
            settings.timezone,
        ):
            summary = entry.summary()
            event = entry.record.event
            summary["county_code"] = event.institution.county_code if event else None
            summary["registrar"] = event.registrar.value if event else None
            found.append(summary)
            if len(found) >= limit:
                break
        return DlqView(found, None)
    except (RegsyncError, OSError, Exception) as exc:
        return DlqView([], f"DLQ 暂不可读 / the dead-letter queue cannot be read now: {type(exc).__name__}")
