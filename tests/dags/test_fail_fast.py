"""The DAG helper acts on regsync's error groups: fatal fails at once, retriable is left to retries.

A registrar answering 401 (a fatal source error) used to be retried twice; a broker that did not
answer surfaced as a raw client error. Both are decided here, in ``regsync_support.fail_fast``.
"""

from __future__ import annotations

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
