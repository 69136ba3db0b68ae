"""The portal's reads of the pipeline beyond the filing store: report files and the DLQ.

Kept in one file so the portal's dependence on ``regsync``'s stages is visible in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def reports_dir(configured: Path | None) -> Path:
    """Where the pipeline writes ``audit-YYYY-MM.html`` (``<output>/reports``)."""
    if configured is not None:
        return Path(configured) / "reports"
    from regsync.outputs import reports_dir as pipeline_reports_dir
    from regsync.settings import get_settings

    return pipeline_reports_dir(get_settings())


@dataclass(frozen=True, slots=True)
class DlqView:
    """Rejected records as masked summaries, or why they could not be read."""

    rows: list[dict[str, Any]]
    error: str | None


def dlq_rows(*, month: str | None = None, rule: str | None = None, limit: int = 200) -> DlqView:
    """Masked DLQ entries (read-only) from Kafka; an explanation instead when Kafka is unreachable."""
    try:
        from regsync import endpoints
        from regsync.kafka.topics import topics_from
        from regsync.settings import get_settings
        from regsync.stages import dlq
        from schemas.errors import RegsyncError
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
            topics_from(settings),
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
