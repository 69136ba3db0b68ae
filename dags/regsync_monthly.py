"""``regsync_monthly``: after a month closes, load it into the filing store, check, report and package it.

The data interval is one calendar month in regsync's time zone (a data-interval timetable, not a
trigger one), so the run that starts on 1 March covers February: ``month`` is taken from
``data_interval_start`` and the load's "as of" instant is ``data_interval_end``. Catchup is on, so
``airflow backfill create --dag-id regsync_monthly --from-date … --to-date …`` loads past months, one
at a time and oldest first (the filing store folds events in order). Every task recomputes the month
from the interval, so any one of them can be cleared and re-run alone; a re-run load is a no-op.

Thin on purpose: ``airflow.sdk`` and the shared knobs at the top, ``regsync`` inside the tasks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, chain, dag, task
from regsync_support import DEFAULT_ARGS, START, TZ, fail_fast, summary


def month_of(data_interval_start: datetime | None) -> str:
    """``YYYY-MM`` of the month a run covers, checked to be a whole month in regsync's time zone."""
    from zoneinfo import ZoneInfo

    from airflow.sdk.exceptions import AirflowFailException

    from regsync.settings import get_settings

    if data_interval_start is None:
        raise AirflowFailException("regsync_monthly needs a data interval: trigger it with a logical date")
    local = data_interval_start.astimezone(ZoneInfo(get_settings().timezone))
    if (local.day, local.hour, local.minute, local.second) != (1, 0, 0, 0):
        raise AirflowFailException(
            f"data interval starts at {local.isoformat()}, not at a month start in {local.tzinfo}: "
            "the DAG's REGSYNC_TIMEZONE and regsync's timezone setting disagree"
        )
    return f"{local:%Y-%m}"


@dag(
    dag_id="regsync_monthly",
    description="Load the month that just ended into the filing store; quality, audit report, packages",
    schedule=CronDataIntervalTimetable("@monthly", timezone=str(TZ)),
    start_date=START,
    catchup=True,
    max_active_runs=1,  # months load in order
    default_args=DEFAULT_ARGS,
    tags=["regsync", "monthly"],
    doc_md=__doc__,
)
def regsync_monthly() -> None:
    @task(task_id="load")
    def load(data_interval_start: datetime | None = None, data_interval_end: datetime | None = None) -> Any:
        """Upsert the month's valid events and write its load manifest in one transaction."""
        from regsync import jobs

        with fail_fast():
            return summary(jobs.load(month_of(data_interval_start), as_of=data_interval_end))

    @task(task_id="quality")
    def quality(data_interval_start: datetime | None = None) -> Any:
        """Great Expectations suites over the loaded month; results stored for trends."""
        from regsync import jobs

        with fail_fast():
            return summary(jobs.quality(month_of(data_interval_start)))

    @task(task_id="report")
    def report(data_interval_start: datetime | None = None) -> str:
        """The month's audit report; returns its path."""
        from regsync import jobs

        with fail_fast():
            return str(jobs.report(month_of(data_interval_start)))

    @task(task_id="export")
    def export(data_interval_start: datetime | None = None) -> Any:
        """The county push packages of the month."""
        from regsync import jobs

        with fail_fast():
            return summary(jobs.export(month_of(data_interval_start)))

    chain(load(), quality(), report(), export())


regsync_monthly()
