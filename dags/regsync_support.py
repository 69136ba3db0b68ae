"""What regsync's DAG files share: parse-time knobs, default arguments, and two task-side helpers.

Not a DAG file (``.airflowignore`` keeps the processor from parsing it as one); the DAG files import
it from the DAGs folder, which Airflow's DAG processor and task runner put on ``sys.path``. Only the
standard library here: regsync is imported inside the helpers, at task run time.

Parse-time knobs come from the environment, under the ``REGSYNC_AIRFLOW__`` prefix so they sit beside
regsync's own settings (``REGSYNC_*``) without clashing with them:

* ``REGSYNC_TIMEZONE`` — the zone month boundaries are taken in (the same variable regsync's settings
  read; default ``Asia/Shanghai``), used for the DAGs' timetables.
* ``REGSYNC_AIRFLOW__START_DATE`` — ``YYYY-MM-DD``, the first day the DAGs cover (default 2026-01-01):
  catchup and ``airflow backfill`` of the monthly DAG never go before it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Parsing imports nothing of ours (test_dag_integrity), so the default is repeated here;
# tests/dags/test_fail_fast.py keeps it equal to schemas.month.DEFAULT_TIMEZONE.
TZ = ZoneInfo(os.environ.get("REGSYNC_TIMEZONE", "Asia/Shanghai"))
START = datetime.combine(
    date.fromisoformat(os.environ.get("REGSYNC_AIRFLOW__START_DATE", "2026-01-01")),
    datetime.min.time(),
    tzinfo=TZ,
)

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
