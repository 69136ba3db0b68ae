"""``regsync_monthly``: after a month closes, load it into the filing store, check, report and package it.

The data interval is one calendar month in regsync's time zone (a data-interval timetable, not a
trigger one), so the scheduled run that starts on 1 March covers February: ``month`` is taken from
``data_interval_start`` and the load's "as of" instant is ``data_interval_end``. Catchup is on, so
unpausing runs every month since ``REGSYNC_AIRFLOW__START_DATE`` (required), and
``airflow backfill create --dag-id regsync_monthly --from-date 2026-01-01T00:00:00+08:00 --to-date
2026-01-01T00:00:00+08:00`` runs January (dates in regsync's zone, see dags/README.md).

A manual run names its month: ``airflow dags trigger regsync_monthly --conf '{"month": "2026-01"}'``
(the ``month`` param, validated ``YYYY-MM``); a manual run without it is refused, because Airflow 3
takes a manual run's interval from the trigger time. ``allow_gap`` (default off) loads a month although
an older month with data is unloaded. Every task recomputes the month, so any one of them can be
cleared and re-run alone; a re-run load is a no-op. Order and exclusion are enforced inside regsync
(months oldest first, one step of a month at a time), not only by ``max_active_runs``.

A failed critical expectation fails ``quality`` (and so stops report and export); the failure
notice names the month, the suite and the expectation. Warnings keep the task green and are in its
return value, its log and a success notice.

Thin on purpose: ``airflow.sdk`` and the shared knobs at the top, ``regsync`` inside the tasks.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, task
from regsync_support import (
    DEFAULT_ARGS,
    MONTH_PATTERN,
    START,
    TZ,
    RegsyncNotifier,
    fail_fast,
    load_as_of,
    monthly_month,
    summary,
)


@dag(
    dag_id="regsync_monthly",
    description="Load the month that just ended into the filing store; quality, audit report, packages",
    schedule=CronDataIntervalTimetable("@monthly", timezone=str(TZ)),
    start_date=START,
    catchup=True,
    max_active_runs=1,  # months load in order (regsync enforces it too: backfills are not counted here)
    default_args={**DEFAULT_ARGS, "on_failure_callback": [RegsyncNotifier("failure")]},
    params={
        "month": Param(
            None,
            type=["null", "string"],
            pattern=MONTH_PATTERN,
            description="YYYY-MM: the month to run (manual runs); empty = the data interval's month",
        ),
        "allow_gap": Param(
            False, type="boolean", description="load although an older month with data is not loaded"
        ),
    },
    tags=["regsync", "monthly"],
    doc_md=__doc__,
)
def regsync_monthly() -> None:
    @task(task_id="load")
    def load(**context: Any) -> Any:
        """Upsert the month's valid events and write its load manifest in one transaction."""
        from regsync import jobs

        allow_gap = bool((context.get("params") or {}).get("allow_gap"))
        with fail_fast():
            month = monthly_month(context)
            return summary(jobs.load(month, as_of=load_as_of(context), allow_gap=allow_gap))

    @task(task_id="quality", on_success_callback=[RegsyncNotifier("warning")])
    def quality(**context: Any) -> Any:
        """Great Expectations suites over the loaded month; a critical failure fails the task."""
        from regsync import jobs
        from regsync.stages.quality import findings

        with fail_fast():
            month = monthly_month(context)
            outcomes = jobs.quality(month, fail_on_critical=True)
        _, warnings = findings(outcomes)
        return {"month": month, "warnings": warnings, "suites": summary(outcomes)}

    # A failed critical expectation fails the quality task (red, notified) but does not hold back the
    # month's report and packages: the report is where auditors read the failure, and a county bureau
    # must still receive what was pushed to it. A failed load stops everything after it.
    @task(task_id="report", trigger_rule="all_done_min_one_success")
    def report(**context: Any) -> str:
        """The month's audit report; returns its path."""
        from regsync import jobs

        with fail_fast():
            return str(jobs.report(monthly_month(context)))

    @task(task_id="export")
    def export(**context: Any) -> Any:
        """The county push packages of the month."""
        from regsync import jobs

        with fail_fast():
            return summary(jobs.export(monthly_month(context)))

    loaded = load()
    checked = quality()
    reported = report()
    loaded >> checked >> reported
    loaded >> reported  # runs when the load succeeded, whatever the suites said
    chain(reported, export())


regsync_monthly()
