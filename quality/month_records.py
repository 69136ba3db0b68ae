"""One month of the pipeline's records as plain values: what the audit report and the suites count.

The composition root reads the three topics' month windows and hands them over as
:class:`MonthRecords`; everything here is pure data, so the report's arithmetic
(:mod:`quality.report_metrics`) is tested without Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from schemas.events import EventType, Registrar, RegistrationEvent, RuleViolation, event_county

__all__ = [
    "CONNECTOR_DLQ_RULE",
    "DEREGISTRATION_TYPES",
    "EXEMPT_FROM_DUPLICATES",
    "REGISTRATION_TYPES",
    "UNRESOLVED_COUNTY_CODE",
    "Judged",
    "MonthRecords",
    "Pushed",
    "RawRecord",
]

REGISTRATION_TYPES: Final = frozenset(
    {EventType.ESTABLISHED, EventType.SCOPE_ADDED_CHILDCARE, EventType.CHILDCARE_CLASS_ADDED}
)
"""Events that make an institution a registered childcare provider: what the push-within-the-month
rule is about. 教育's 托班 event is included: for a kindergarten it is the moment it starts childcare."""

DEREGISTRATION_TYPES: Final = frozenset({EventType.DEREGISTERED, EventType.REVOKED})
"""注销/吊销; every other valid event counts as a change in the county table."""

EXEMPT_FROM_DUPLICATES: Final = frozenset({Registrar.JIAOYU})
"""Registrars whose events never make a cross-registrar duplicate: the GX suite's default
(``quality.expectations.DEFAULT_EXEMPT_REGISTRARS``), kept here because importing that module loads
Great Expectations, which a report does not otherwise need (the tests keep the two equal)."""

UNRESOLVED_COUNTY_CODE: Final = "000000"
"""Where events without a county are counted (the same bucket the county packages use)."""

LATE_PUSH_RULE: Final = "LATE_PUSH"
"""The gate's warning for a registration extracted after its month (``quality.rules.LATE_PUSH``)."""

CONNECTOR_DLQ_RULE: Final = "SOURCE_UNREADABLE"
"""The rule id a connector DLQ record carries (not in the catalog: no event, no rule)."""
CONNECTOR_DLQ_ZH: Final = "来源记录无法转换为事件（连接器死信，未进入抽取计数）。"
CONNECTOR_DLQ_EN: Final = "The source record could not become an event (connector DLQ; outside extracted)."


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record of the raw window; ``event`` is ``None`` when it does not decode."""

    partition: int
    offset: int
    timestamp_ms: int
    source: str | None
    registrar: Registrar | None
    event: RegistrationEvent | None
    replay_id: str | None = None


@dataclass(frozen=True, slots=True)
class Judged:
    """One record of the valid (``accepted``) or rejected (``rejected``) window.

    ``raw_position`` is the raw record it was judged from (the gate's headers); ``None`` for connector
    DLQ records, which never were on the raw topic.
    """

    verdict: str
    partition: int
    offset: int
    timestamp_ms: int
    source: str | None
    registrar: Registrar | None
    event: RegistrationEvent | None
    violations: tuple[RuleViolation, ...]
    raw_position: tuple[int, int] | None
    connector_dlq: bool = False


@dataclass(frozen=True, slots=True)
class MonthRecords:
    """Everything pushed in one month on the three topics, decoded."""

    month: str
    raw: tuple[RawRecord, ...]
    valid: tuple[Judged, ...]
    rejected: tuple[Judged, ...]
    outside_month: int = 0
    """Records inside a window whose own timestamp is outside the month (see :func:`read_month`)."""

    @property
    def gate_rejected(self) -> tuple[Judged, ...]:
        """Rejections by the gate (everything on the DLQ except the connectors' own records)."""
        return tuple(r for r in self.rejected if not r.connector_dlq)

    @property
    def connector_dlq(self) -> tuple[Judged, ...]:
        """Source rows a connector could not turn into an event."""
        return tuple(r for r in self.rejected if r.connector_dlq)

    def pushed(self) -> tuple[Pushed, ...]:
        """The valid window as :class:`Pushed` values (every event type), in topic order."""
        from datetime import UTC

        out = []
        for judged in self.valid:
            event = judged.event
            if event is None:
                continue
            out.append(
                Pushed(
                    event.event_id,
                    event.institution.uscc,
                    event.institution.name,
                    event.registrar,
                    event.event_type,
                    event.event_date,
                    event_county(event) or UNRESOLVED_COUNTY_CODE,
                    datetime.fromtimestamp(judged.timestamp_ms / 1000, UTC),
                    any(v.rule_id == LATE_PUSH_RULE for v in judged.violations),
                )
            )
        return tuple(out)

    def judged(self) -> Iterator[tuple[RawRecord, Judged]]:
        """Each raw record of the window with its verdict (records not judged yet are left out)."""
        verdicts = {j.raw_position: j for j in (*self.valid, *self.gate_rejected) if j.raw_position}
        for raw in self.raw:
            verdict = verdicts.get((raw.partition, raw.offset))
            if verdict is not None:
                yield raw, verdict


@dataclass(frozen=True, slots=True)
class Pushed:
    """One valid event and the instant it was pushed: what both timeliness measures count.

    Built from a month's valid window (:meth:`MonthRecords.pushed`) or from the filing store's
    ``institution_events`` (months already loaded), so measure (a) can see the pushes of M+1.
    ``pushed_at`` is timezone-aware (the Kafka timestamp). ``warned``: the gate attached ``LATE_PUSH``.
    """

    event_id: str
    uscc: str
    name: str
    registrar: Registrar
    event_type: EventType
    event_date: date
    county_code: str
    pushed_at: datetime
    warned: bool = False

    def __post_init__(self) -> None:
        if self.pushed_at.tzinfo is None or self.pushed_at.utcoffset() is None:
            raise ValueError(f"Pushed.pushed_at must be timezone-aware ({self.event_id})")
