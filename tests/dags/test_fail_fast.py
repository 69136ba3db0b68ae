"""The DAG helper acts on regsync's error groups: fatal fails at once, retriable is left to retries.

A registrar answering 401 (a fatal source error) used to be retried twice; a broker that did not
answer surfaced as a raw client error. Both are decided here, in ``regsync_support.fail_fast``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture
def support(airflow_home):
    sys.path.insert(0, str(DAGS))
    try:
        import regsync_support

        yield regsync_support
    finally:
        sys.path.remove(str(DAGS))


def _raised(support, exc: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, support.fail_fast():  # noqa: PT011  # any type: that is the test
        raise exc
    return caught.value


def test_fatal_source_error_fails_the_task_without_retry(support):
    from airflow.sdk.exceptions import AirflowFailException

    from connectors.base import FatalSourceError

    raised = _raised(support, FatalSourceError("minzheng: HTTP 401 from the registrar's API"))
    assert isinstance(raised, AirflowFailException)
    assert "401" in str(raised)


def test_missing_schema_fails_with_its_hint(support):
    from airflow.sdk.exceptions import AirflowFailException

    from schemas.registry import SchemaNotFoundError

    raised = _raised(support, SchemaNotFoundError("subject registrations.valid-value not found"))
    assert isinstance(raised, AirflowFailException)
    assert "regsync schemas register" in str(raised)


def test_data_quality_failure_fails_the_task(support):
    from airflow.sdk.exceptions import AirflowFailException

    from schemas.errors import DataQualityError

    assert isinstance(_raised(support, DataQualityError("monthly suite failed")), AirflowFailException)


def test_unavailable_service_is_left_to_airflow_retries(support):
    from airflow.sdk.exceptions import AirflowFailException
    from kafka import errors as kerr

    from schemas.errors import ServiceUnavailableError

    raised = _raised(support, kerr.KafkaTimeoutError("Failed to update metadata"))
    assert isinstance(raised, ServiceUnavailableError)  # translated, not failed
    assert not isinstance(raised, AirflowFailException)
    assert isinstance(raised.__cause__, kerr.KafkaTimeoutError)


def test_a_bug_keeps_its_own_exception(support):
    raised = _raised(support, ZeroDivisionError("bug"))
    assert type(raised) is ZeroDivisionError


def test_the_dags_default_zone_is_the_pipelines(support, monkeypatch):
    from schemas.month import DEFAULT_TIMEZONE

    if "REGSYNC_TIMEZONE" in __import__("os").environ:
        pytest.skip("REGSYNC_TIMEZONE set in this environment")
    assert support.TZ.key == DEFAULT_TIMEZONE


# Item 1 of issue 16: the month a poll's records are pushed in must not depend on when the poll ran.
BOUNDARY = [
    # (what, data-interval end (Asia/Shanghai), month before the change, month after)
    ("@daily run at 00:00 on the 1st", (2026, 2, 1, 0, 0), "2026-02", "2026-01"),
    ("manual trigger with logical date 1 Feb 00:00", (2026, 2, 1, 0, 0), "2026-02", "2026-01"),
    ("manual trigger at 08:00 on the 1st, no logical date", (2026, 2, 1, 8, 0), "2026-02", "2026-02"),
    ("@daily run at 00:00 on the 31st", (2026, 1, 31, 0, 0), "2026-01", "2026-01"),
]


@pytest.mark.parametrize(("what", "end", "before", "after"), BOUNDARY, ids=[b[0] for b in BOUNDARY])
def test_a_record_surfaced_at_2359_59_on_the_last_day(support, what, end, before, after):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from schemas.month import Month

    shanghai = ZoneInfo("Asia/Shanghai")
    window_end = datetime(*end, tzinfo=shanghai)
    now = datetime(2026, 12, 4, tzinfo=shanghai)
    as_of = support.extraction_as_of(window_end, now)
    assert str(Month.of(window_end, "Asia/Shanghai")) == before  # main stamped the window end itself
    assert str(Month.of(as_of, "Asia/Shanghai")) == after
    assert as_of < window_end  # the poll reports what surfaced before it
    if end[2] == 1 and end[3] == 8:
        # Without a source-given surfacing time the record (23:59:59 on the 31st) lands in February:
        # extract must stamp the record's own time, bounded by the window (see docs/operations.md).
        assert as_of > datetime(2026, 1, 31, 23, 59, 59, tzinfo=shanghai)


def test_a_logical_date_in_the_future_is_clamped_to_now(support):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    now = datetime(2026, 12, 4, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert support.extraction_as_of(now + timedelta(days=30), now) == now - timedelta(milliseconds=1)


class _Run:
    def __init__(self, run_type: str, run_after):
        self.run_type = run_type
        self.run_after = run_after


def test_the_window_end_of_scheduled_and_manual_extractions(support):
    """Airflow 3 gives a manual run its trigger time as interval even with a logical date."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    cron = datetime(2026, 2, 1, tzinfo=shanghai)
    trigger = datetime(2026, 12, 4, 9, tzinfo=shanghai)
    scheduled = {"dag_run": _Run("scheduled", trigger), "data_interval_end": cron, "logical_date": cron}
    assert support.extraction_window_end(scheduled) == cron  # late start or retry: still the cron instant
    manual = {"dag_run": _Run("manual", trigger), "data_interval_end": trigger, "logical_date": cron}
    assert support.extraction_window_end(manual) == cron  # --logical-date names the poll
    assert support.extraction_window_end({**manual, "logical_date": None}) == trigger


class _Ti:
    task_id = "quality"

    def __init__(self, result):
        self.result = result

    def xcom_pull(self, task_ids):
        assert task_ids == "quality"
        return self.result


class _MonthlyRun(_Run):
    dag_id = "regsync_monthly"
    run_id = "manual__1"


def test_the_notifier_names_month_suite_and_expectation(support, tmp_path, monkeypatch):
    from regsync.stages.quality import CriticalExpectationError

    out = tmp_path / "notices.jsonl"
    monkeypatch.setenv("REGSYNC_AIRFLOW__NOTIFY_FILE", str(out))
    context = {
        "dag_run": _MonthlyRun("manual", None),
        "params": {"month": "2026-11"},
        "ti": _Ti({"warnings": ["monthly: expect_table_row_count_to_be_between: observed 0"]}),
        "exception": CriticalExpectationError(
            "2026-11", ["monthly: expect_column_pair_values_to_be_pushed_in_registration_month: 5 unexpected"]
        ),
    }
    support.RegsyncNotifier("failure").notify(context)
    support.RegsyncNotifier("warning").notify(context)
    support.RegsyncNotifier("warning").notify({**context, "ti": _Ti({"warnings": []})})  # nothing to say
    failure, warning = (json.loads(line) for line in out.read_text().splitlines())
    assert (failure["month"], failure["task_id"], failure["dag_id"]) == (
        "2026-11",
        "quality",
        "regsync_monthly",
    )
    assert "CriticalExpectationError" in failure["error"]
    assert "monthly: expect_column_pair_values_to_be_pushed_in_registration_month" in failure["error"]
    assert warning["warnings"] == ["monthly: expect_table_row_count_to_be_between: observed 0"]
