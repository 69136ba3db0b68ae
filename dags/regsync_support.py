"""What regsync's DAG files share: parse-time knobs, default arguments, and two task-side helpers.

Not a DAG file (``.airflowignore`` keeps the processor from parsing it as one); the DAG files import
it from the DAGs folder, which Airflow's DAG processor and task runner put on ``sys.path``. Only the
standard library here: regsync is imported inside the helpers, at task run time.

Parse-time knobs come from the environment, under the ``REGSYNC_AIRFLOW__`` prefix so they sit beside
regsync's own settings (``REGSYNC_*``) without clashing with them:

* ``REGSYNC_TIMEZONE`` — the zone month boundaries are taken in (the same variable regsync's settings
  read; default ``Asia/Shanghai``), used for the DAGs' timetables.
* ``REGSYNC_AIRFLOW__START_DATE`` — ``YYYY-MM-DD``, the first day the DAGs cover; **required**: the
  monthly DAG catches up every month from it when unpaused, so it is never assumed. Without it every
  DAG file fails to import with a message naming the variable (shown as an import error).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import BaseNotifier

# Parsing imports nothing of ours (test_dag_integrity), so the default is repeated here;
# tests/dags/test_fail_fast.py keeps it equal to schemas.month.DEFAULT_TIMEZONE.
TZ = ZoneInfo(os.environ.get("REGSYNC_TIMEZONE", "Asia/Shanghai"))

START_DATE_VARIABLE = "REGSYNC_AIRFLOW__START_DATE"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
"""``YYYY-MM``: the monthly DAG's ``month`` param (a JSON-schema pattern, also checked in the task)."""

log = logging.getLogger("regsync.airflow")


class StartDateMissing(RuntimeError):
    """``REGSYNC_AIRFLOW__START_DATE`` is unset or malformed: the DAGs refuse to guess a first day."""


def start_date(environ: dict[str, str] | None = None) -> datetime:
    """The first day the DAGs cover, midnight in ``REGSYNC_TIMEZONE``; required, never assumed.

    Unpausing ``regsync_monthly`` catches up every month from here, so a default would quietly
    load months nobody asked for.
    """
    raw = (os.environ if environ is None else environ).get(START_DATE_VARIABLE, "").strip()
    if not raw:
        raise StartDateMissing(
            f"{START_DATE_VARIABLE} is not set: set it to the first day the regsync DAGs cover "
            "(YYYY-MM-DD, e.g. the first day of the first month to load) on the dag-processor, the "
            "scheduler and every worker; regsync_monthly catches up every month from that day when unpaused"
        )
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise StartDateMissing(f"{START_DATE_VARIABLE}={raw!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, datetime.min.time(), tzinfo=TZ)


START = start_date()

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "regsync",
    "retries": 2,  # transient failures only: regsync's fatal errors fail the task at once
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
}


def summary(result: Any) -> Any:
    """A job's result as plain JSON for XCom (dataclasses, paths, dates and enums flattened)."""

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if isinstance(obj, Enum):
            return obj.value
        if isinstance(obj, Path | datetime | date):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    return json.loads(json.dumps(result, default=plain, ensure_ascii=False))


def extraction_as_of(data_interval_end: datetime, now: datetime | None = None) -> datetime:
    """The as-of instant an extraction run passes to regsync: the last instant of its window.

    A poll at ``T`` (the data-interval end: the schedule's instant for a scheduled run, even if it
    starts late or is retried; the logical date, else the trigger time, for a manual one) reports
    what had surfaced *before* ``T``, so its records are pushed at ``T − 1 ms``: the midnight run on
    the 1st pushes the last day's registrations in the month that just ended, not in the new one.
    Never later than ``now`` (a logical date in the future would stamp records not seen yet).
    """
    now = now or datetime.now(UTC)
    return min(data_interval_end, now) - timedelta(milliseconds=1)


def extraction_window_end(context: Any) -> datetime:
    """Where an extraction run's window ends: the schedule's instant, or what a manual trigger named.

    A scheduled run's data interval ends at its cron instant (a trigger timetable: start = end).
    Airflow 3 gives a *manual* run the interval of its trigger time even when a logical date is
    given, so a manual run uses its logical date when it has one (``--logical-date`` replays "the
    poll at that instant") and its trigger time otherwise.
    """
    dag_run = context["dag_run"]
    if run_type(context) == "manual":
        return context.get("logical_date") or dag_run.run_after
    return context.get("data_interval_end") or dag_run.run_after


def run_type(context: Any) -> str:
    """``scheduled``, ``backfill``, ``manual``… of the running DAG run (as plain text)."""
    kind = context["dag_run"].run_type
    return str(getattr(kind, "value", kind))


def monthly_month(context: Any) -> str:
    """The month a ``regsync_monthly`` run covers.

    The ``month`` param (``YYYY-MM``) when given — the way to run or re-run one month by hand;
    otherwise the data interval of a scheduled or backfill run. A manual run without ``month`` is
    refused: Airflow 3 takes a manual run's interval from its trigger time, so any logical date
    would silently give "the last whole month".
    """
    from airflow.sdk.exceptions import AirflowFailException

    month = (context.get("params") or {}).get("month")
    if month:
        if not re.match(MONTH_PATTERN, str(month)):
            raise AirflowFailException(f"month param {month!r} is not YYYY-MM")
        return str(month)
    if run_type(context) == "manual":
        raise AirflowFailException(
            "a manual run of regsync_monthly needs the month: "
            'airflow dags trigger regsync_monthly --conf \'{"month": "YYYY-MM"}\''
        )
    return month_of(context.get("data_interval_start"))


def month_of(data_interval_start: datetime | None) -> str:
    """``YYYY-MM`` of a scheduled or backfill run's interval, checked to be a whole month in regsync's zone."""
    from airflow.sdk.exceptions import AirflowFailException

    from regsync.settings import get_settings

    if data_interval_start is None:
        raise AirflowFailException(
            'regsync_monthly run without a data interval: give the month, --conf \'{"month": "YYYY-MM"}\''
        )
    local = data_interval_start.astimezone(ZoneInfo(get_settings().timezone))
    if (local.day, local.hour, local.minute, local.second) != (1, 0, 0, 0):
        raise AirflowFailException(
            f"data interval starts at {local.isoformat()}, not at a month start in {local.tzinfo}: "
            "the DAG's REGSYNC_TIMEZONE and regsync's timezone setting disagree"
        )
    return f"{local:%Y-%m}"


def load_as_of(context: Any) -> datetime | None:
    """The load's "as of": the data-interval end of a scheduled/backfill run, the trigger time of a
    manual one (so a manual run of a month not over yet is refused, as from the CLI)."""
    if (context.get("params") or {}).get("month") or run_type(context) == "manual":
        return context["dag_run"].run_after
    return context.get("data_interval_end")


class RegsyncNotifier(BaseNotifier):
    """Says what happened to a regsync task in one line: DAG, run, task, month and the error or warnings.

    The line goes to the ``regsync.airflow`` logger (the task log) and, when
    ``REGSYNC_AIRFLOW__NOTIFY_FILE`` is set on the worker, is appended to that file as JSON — the
    hook for whatever alerting the deployment reads. Failures carry the exception text, which for a
    failed suite names the month, the suite and each critical expectation.
    """

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event

    def notify(self, context: Any) -> None:
        """Build the notice from the callback context and deliver it (never raises)."""
        try:
            notice = self.notice(context)
        except Exception as exc:  # a notifier must not turn one failure into two
            log.exception("regsync notifier could not build its notice: %s", exc)
            return
        if notice is None:
            return
        level = logging.ERROR if self.event == "failure" else logging.WARNING
        log.log(level, "regsync %s: %s", self.event, json.dumps(notice, ensure_ascii=False))
        path = os.environ.get("REGSYNC_AIRFLOW__NOTIFY_FILE")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(notice, ensure_ascii=False) + "\n")

    def notice(self, context: Any) -> dict[str, Any] | None:
        """The notice as a dict, or None when there is nothing to say (a success without warnings)."""
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        notice: dict[str, Any] = {
            "event": self.event,
            "dag_id": getattr(dag_run, "dag_id", None),
            "run_id": getattr(dag_run, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
        }
        try:
            notice["month"] = monthly_month(context) if notice["dag_id"] == "regsync_monthly" else None
        except Exception:
            notice["month"] = None
        if self.event == "failure":
            exc = context.get("exception")
            notice["error"] = f"{type(exc).__name__}: {exc}" if exc is not None else "failed"
            return notice
        result = ti.xcom_pull(task_ids=notice["task_id"]) if ti is not None else None
        warnings = (result or {}).get("warnings") if isinstance(result, dict) else None
        if not warnings:
            return None
        notice["warnings"] = warnings
        return notice


@contextmanager
def fail_fast() -> Iterator[None]:
    """Act on regsync's error groups: fatal and data-quality errors fail the task without retries,
    retriable ones (a service that did not answer) are left to Airflow's retries, anything else is
    a bug and keeps its traceback. Client-library errors are classified first, as the CLI does."""
    from airflow.sdk.exceptions import AirflowFailException

    from regsync.failures import classify
    from schemas.errors import DataQualityError, FatalError, RetriableError

    try:
        yield
    except Exception as exc:
        known = classify(exc)
        if isinstance(known, FatalError | DataQualityError):
            raise AirflowFailException(f"{type(known).__name__}: {known.one_line()}") from exc
        if isinstance(known, RetriableError) and known is not exc:
            raise known from exc
        raise
