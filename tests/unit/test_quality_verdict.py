"""Which failed expectations fail the monthly DAG's quality task (issue 16, item 3).

A failed suite used to be a green task. Now a failed critical expectation raises a
``DataQualityError`` naming the month, the suite and the expectation (the DAG's ``fail_fast`` turns it
into a failed task and the notifier repeats it); the volume bound is a warning.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quality.batch_checks import ExpectationOutcome, SuiteOutcome
from quality.suites import GATE_BATCH, MONTHLY, is_critical
from regsync.stages.quality import CriticalExpectationError, findings, raise_on_critical
from schemas.errors import DataQualityError

TIMELY = "expect_column_pair_values_to_be_pushed_in_registration_month"
VOLUME = "expect_table_row_count_to_be_between"


def outcome(suite: str, *failed: ExpectationOutcome) -> SuiteOutcome:
    passed = ExpectationOutcome("expect_column_values_to_be_unique", ("event_id",), True)
    return SuiteOutcome(
        suite=suite,
        run_id="r",
        month="2026-11",
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        duration_s=1.0,
        success=not failed,
        per_expectation=(passed, *failed),
        data_docs_path=None,
    )


def late(share: float) -> ExpectationOutcome:
    return ExpectationOutcome(
        TIMELY,
        ("event_date", "extracted_at"),
        False,
        element_count=10,
        unexpected_count=5,
        unexpected_percent=share,
        condition="registrar == 'BIANZHI'",
    )


def test_volume_is_a_warning_and_everything_else_is_critical():
    assert not is_critical(MONTHLY, VOLUME)
    assert is_critical(MONTHLY, TIMELY)
    assert is_critical(GATE_BATCH, VOLUME)  # only the monthly suite's volume bound is statistical


def test_a_failed_timeliness_fails_naming_month_suite_and_expectation():
    outcomes = [outcome(MONTHLY, late(50.0)), outcome(GATE_BATCH)]
    with pytest.raises(CriticalExpectationError) as failed:
        raise_on_critical("2026-11", outcomes)
    text = str(failed.value)
    assert isinstance(failed.value, DataQualityError)
    for part in ("2026-11", "monthly", TIMELY, "registrar == 'BIANZHI'", "5 unexpected (50.0%)"):
        assert part in text


def test_a_volume_outside_its_bounds_stays_green_but_is_reported():
    volume = ExpectationOutcome(VOLUME, (), False, observed_value=0)
    outcomes = [outcome(MONTHLY, volume), outcome(GATE_BATCH)]
    assert raise_on_critical("2026-11", outcomes) == [f"monthly: {VOLUME}: observed 0"]
    assert findings(outcomes) == ([], [f"monthly: {VOLUME}: observed 0"])


def test_all_green_has_nothing_to_say():
    assert raise_on_critical("2026-11", [outcome(MONTHLY), outcome(GATE_BATCH)]) == []
