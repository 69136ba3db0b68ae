"""The month's Great Expectations runs, stored run by run so auditors see trends.

``monthly`` runs over the loaded month, ``gate_batch`` over everything the gate judged in it.

Why these inputs:

* ``monthly`` judges what the health departments received, so it reads the filing store — the
  ``institution_events`` the load of month M stored from the valid topic — not Kafka. Its rows are the
  month's registrations (:data:`quality.month_records.REGISTRATION_TYPES`): the timeliness rule and the
  cross-registrar rule are about registrations, and the audit report counts the same rows, so the GX
  verdict and the report's figures cannot disagree. The push instant is the Kafka timestamp the
  loader stored (``pushed_at``), falling back to ``extracted_at``: a DLQ replay is pushed when it is
  replayed, whatever its original extraction time.
* Volume bounds come from the same count in the months loaded before M (:func:`quality.suites.volume_bounds`);
  a month loaded with no registrations counts as zero, not as missing history.
* ``gate_batch`` is the gate's per-record verdicts seen as one batch: the raw window of M joined with
  its outputs on the valid and rejected windows (by the raw position the gate writes in headers). A
  row is the event as the gate left it (the valid event with the county the gate settled; the rejected
  event as it arrived). Raw records that do not decode have nothing to flatten and are counted in the
  outcome's metrics instead, as are raw records the gate has not judged yet.

GX's working copy and Data Docs live under ``<output_dir>/quality``; one working copy for every month,
so its Data Docs index lists every run. Each outcome is also written to ``quality_runs`` /
``quality_results`` in the services' database, with the run's own Data Docs page in its metrics
(``data_docs_page``) so the report can link to it.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from regsync.endpoints import Services
from regsync.kafka.topics import Topics
from regsync.settings import Settings
from schemas.errors import ConfigurationError, DataQualityError

if TYPE_CHECKING:  # GX and pandas load only when the suites run
    import pandas as pd

    from quality.batch_checks import ExpectationOutcome, SuiteOutcome
    from quality.month_records import MonthRecords

__all__ = [
    "GATE_BATCH_COLUMNS",
    "MONTHLY_COLUMNS",
    "CriticalExpectationError",
    "describe",
    "findings",
    "gate_batch_frame",
    "monthly_frame",
    "raise_on_critical",
    "run_month_suites",
]

MONTHLY_COLUMNS: Final = (
    "event_id",
    "event_type",
    "uscc",
    "registrar",
    "event_date",
    "extracted_at",
    "county_code",
)
"""What the ``monthly`` suite needs (``quality.suites._monthly_columns``) plus ids for Data Docs samples."""

GATE_BATCH_COLUMNS: Final = (
    "event_id",
    "event_type",
    "registrar",
    "event_date",
    "extracted_at",
    "uscc",
    "name",
    "county_code",
    "business_scope",
    "verdict",
)
"""Flattened events plus the gate's verdict (``quality.suites.GateBatchParams``)."""


def run_month_suites(
    *, settings: Settings, services: Services, topics: Topics, month: str, records: MonthRecords | None = None
) -> list[SuiteOutcome]:
    """Run ``monthly`` and ``gate_batch`` for ``month`` (``YYYY-MM``), store both, return their outcomes.

    Refuses a month that has not been loaded: the monthly suite would judge an empty month and
    store a misleading green result in the trend. ``records`` is the month already read (the report
    reads the same windows), so a caller doing both reads Kafka once.
    """
    from quality import gx_results
    from quality.batch_checks import run_suite
    from quality.suites import GATE_BATCH, MONTHLY, MonthlyParams, volume_bounds
    from regsync.bookkeeping.migrate import ensure
    from regsync.kafka.month_reader import read_month
    from regsync.outputs import quality_dir
    from schemas.month import Month
    from sink.loader import find_manifest
    from sink.store import create_engine, upgrade

    Month.parse(month).bounds(settings.timezone)  # a malformed month fails here, in one line
    upgrade(services.database_url)
    engine = create_engine(services.database_url)
    try:
        if find_manifest(engine, month, topics.valid) is None:
            raise ConfigurationError(
                f"month {month} of {topics.valid} is not loaded yet; run `regsync load --month {month}` first"
            )
        frame = monthly_frame(engine, topics.valid, month)
        history = _previous_volumes(engine, topics.valid, month)
        params = MonthlyParams(
            volume_bounds=volume_bounds(history),
            timeliness_threshold=settings.timeliness_threshold,
            timezone=settings.timezone,
        )
        if records is None:
            records = read_month(
                services.bootstrap_servers, services.registry_url, topics, month, settings.timezone
            )
        gate_frame, gate_extra = gate_batch_frame(records)

        context_root = quality_dir(settings)
        run_id = f"quality-{month}-{uuid.uuid4().hex[:8]}"
        outcomes = [
            _with_extras(
                run_suite(
                    MONTHLY, frame, context_root=context_root, run_id=run_id, month=month, params=params
                ),
                {"history_months": len(history)},
            ),
            _with_extras(
                run_suite(GATE_BATCH, gate_frame, context_root=context_root, run_id=run_id, month=month),
                gate_extra,
            ),
        ]
        ensure(engine)
        for outcome in outcomes:
            gx_results.store(engine, outcome)
        return outcomes
    finally:
        engine.dispose()


def describe(suite: str, failed: ExpectationOutcome) -> str:
    """One line naming a failed expectation: suite, type, column and slice, how much was unexpected."""
    where = "; ".join(x for x in (failed.column, failed.condition) if x)
    if failed.unexpected_count is not None:
        share = "" if failed.unexpected_percent is None else f" ({failed.unexpected_percent:.1f}%)"
        amount = f": {failed.unexpected_count:,} unexpected{share}"
    elif failed.observed_value is not None:
        amount = f": observed {failed.observed_value}"
    else:
        amount = f": {failed.exception}" if failed.exception else ""
    return f"{suite}: {failed.expectation_type}{f' [{where}]' if where else ''}{amount}"


def findings(outcomes: list[SuiteOutcome]) -> tuple[list[str], list[str]]:
    """The failed expectations as (critical, warnings), one line each (see :func:`describe`)."""
    from quality.suites import is_critical

    critical: list[str] = []
    warnings: list[str] = []
    for outcome in outcomes:
        for failed in outcome.failed:
            (critical if is_critical(outcome.suite, failed.expectation_type) else warnings).append(
                describe(outcome.suite, failed)
            )
    return critical, warnings


class CriticalExpectationError(DataQualityError):
    """A critical expectation failed for the month: its packages must not go out as they are."""

    def __init__(self, month: str, failures: list[str]) -> None:
        super().__init__(
            f"month {month}: {len(failures)} critical expectation(s) failed — " + " | ".join(failures),
            hint="see the month's Data Docs and audit report; fix the data and re-run the month",
        )
        self.month = month
        self.failures = failures


def raise_on_critical(month: str, outcomes: list[SuiteOutcome]) -> list[str]:
    """Raise :class:`CriticalExpectationError` if a critical expectation failed; else the warnings."""
    critical, warnings = findings(outcomes)
    if critical:
        raise CriticalExpectationError(month, critical)
    return warnings


def monthly_frame(engine: sa.Engine, valid_topic: str, month: str) -> pd.DataFrame:
    """The registrations the load of ``month`` stored, one row each, in Kafka order."""
    import pandas as pd

    from quality.month_records import REGISTRATION_TYPES
    from sink.models import institution_events as ev

    query = (
        sa.select(
            ev.c.event_id,
            ev.c.event_type,
            ev.c.uscc,
            ev.c.registrar,
            ev.c.event_date,
            ev.c.pushed_at,
            ev.c.extracted_at,
            ev.c.county_code,
        )
        .where(
            ev.c.load_month == month,
            ev.c.kafka_topic == valid_topic,
            ev.c.event_type.in_(sorted(t.value for t in REGISTRATION_TYPES)),
        )
        .order_by(ev.c.kafka_partition, ev.c.kafka_offset)
    )
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    frame = pd.DataFrame(rows, columns=[*MONTHLY_COLUMNS, "pushed_at"])
    # The push instant is the record's Kafka timestamp; naive values (SQLite) were stored as UTC.
    pushed = pd.to_datetime(frame["pushed_at"], utc=True)
    extracted = pd.to_datetime(frame["extracted_at"], utc=True)
    frame["extracted_at"] = pushed.fillna(extracted)
    return frame.drop(columns=["pushed_at"])


def _previous_volumes(engine: sa.Engine, valid_topic: str, month: str) -> list[int]:
    """Registrations per month for every month loaded before ``month`` (zero when it had none)."""
    from quality.month_records import REGISTRATION_TYPES
    from sink.models import institution_events as ev
    from sink.models import load_manifests as lm

    with engine.connect() as conn:
        months = conn.scalars(
            sa.select(lm.c.month).where(lm.c.topic == valid_topic, lm.c.month < month).order_by(lm.c.month)
        ).all()
        counts: dict[str, int] = dict(
            conn.execute(
                sa.select(ev.c.load_month, sa.func.count())
                .where(
                    ev.c.kafka_topic == valid_topic,
                    ev.c.load_month < month,
                    ev.c.event_type.in_(sorted(t.value for t in REGISTRATION_TYPES)),
                )
                .group_by(ev.c.load_month)
            ).all()
        )
    return [int(counts.get(m, 0)) for m in months]


def gate_batch_frame(records: MonthRecords) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The month's judged records flattened for ``gate_batch``, and counts of what could not be."""
    import pandas as pd

    from sink.fold import event_county

    rows = []
    undecodable = 0
    for raw, judged in records.judged():
        event = judged.event or raw.event
        if event is None:
            undecodable += 1
            continue
        inst = event.institution
        rows.append(
            {
                "event_id": event.event_id,
                "event_type": event.event_type.value,
                "registrar": event.registrar.value,
                "event_date": event.event_date,
                "extracted_at": event.extracted_at,
                "uscc": inst.uscc,
                "name": inst.name,
                "county_code": event_county(event),
                "business_scope": inst.business_scope,
                "verdict": judged.verdict,
            }
        )
    frame = pd.DataFrame(rows, columns=list(GATE_BATCH_COLUMNS))
    frame["extracted_at"] = pd.to_datetime(frame["extracted_at"], utc=True)
    judged_count = len(rows) + undecodable
    extra = {
        "raw_in_window": len(records.raw),
        "judged": judged_count,
        "not_judged_yet": len(records.raw) - judged_count,
        "undecodable": undecodable,
    }
    return frame, extra


def _with_extras(outcome: SuiteOutcome, extra: dict[str, Any]) -> SuiteOutcome:
    """The outcome with ``extra`` figures and this run's Data Docs page added to its metrics."""
    metrics = {**outcome.metrics, **extra}
    if outcome.data_docs_page is not None:
        metrics["data_docs_page"] = str(outcome.data_docs_page)
    return dataclasses.replace(outcome, metrics=metrics)
