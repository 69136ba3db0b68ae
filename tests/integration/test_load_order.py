"""Months load oldest first and one load runs at a time, whoever starts it (issue 16, item 4).

Airflow's ``max_active_runs`` does not count a backfill beside a scheduled run, so the order and the
exclusion are enforced in regsync: a month is refused while an older month with records on the valid
topic is unloaded (``allow_gap`` overrides), and a second load waits on an advisory lock.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from listsource import ListConnector, rows
from pipeline_setup import pipeline_params

from regsync.bookkeeping.locks import LockBusyError, advisory_lock
from regsync.kafka.topics import Topics
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate
from regsync.stages.load import MonthGapError, run_load, unloaded_before
from schemas.errors import RetriableError

IN_JAN = datetime(2026, 1, 20, 4, tzinfo=UTC)
IN_MAR = datetime(2026, 3, 20, 4, tzinfo=UTC)
LOAD_AT = datetime(2026, 4, 1, 1, tzinfo=UTC)
TZ = "Asia/Shanghai"


@pytest.fixture
def pushed(stack, uid, database_url, as_components):
    """Records pushed in January and in March, none in February; all judged."""
    topics = Topics(prefix=f"o{uid}.")
    p = pipeline_params(stack, database_url, topics, as_components)
    data = rows(20)
    run_extract(ListConnector(data[:8]), as_of=IN_JAN, **p)
    run_extract(ListConnector(data), as_of=IN_MAR, **p)
    run_gate(**p, until_idle=True)
    return p


def test_a_month_is_refused_while_an_older_month_with_data_is_unloaded(pushed):
    p = pushed
    with pytest.raises(MonthGapError, match="2026-01") as refused:
        run_load(**p, month="2026-03", as_of=LOAD_AT)
    assert refused.value.gaps == ["2026-01"]  # February has no records: not a gap
    assert isinstance(refused.value, RetriableError)  # usually a backfill of January still running
    assert run_load(**p, month="2026-01", as_of=LOAD_AT).records == 8
    assert unloaded_before(p["bootstrap"], p["database_url"], p["topics"], "2026-03", TZ) == []
    assert run_load(**p, month="2026-03", as_of=LOAD_AT).records == 12
    # An empty month after its elders loads; a re-run of a loaded month is a no-op, as before.
    assert run_load(**p, month="2026-02", as_of=LOAD_AT).records == 0
    assert run_load(**p, month="2026-03", as_of=LOAD_AT).noop


def test_allow_gap_loads_a_month_out_of_order(pushed):
    p = pushed
    assert run_load(**p, month="2026-03", as_of=LOAD_AT, allow_gap=True).records == 12
    # The older month can still be loaded afterwards (the gap is closed, not forgotten).
    assert unloaded_before(p["bootstrap"], p["database_url"], p["topics"], "2026-04", TZ) == ["2026-01"]
    assert run_load(**p, month="2026-01", as_of=LOAD_AT).records == 8


def test_a_second_load_of_the_topic_is_refused_while_one_runs(pushed):
    p = pushed
    with advisory_lock(p["database_url"], f"regsync.load:{p['topics'].valid}"):
        with pytest.raises(LockBusyError, match="running elsewhere"):
            run_load(**p, month="2026-01", as_of=LOAD_AT)
        # Another topic's loads (another deployment in the same database) are not held up.
        with advisory_lock(p["database_url"], "regsync.load:other.registrations.valid"):
            pass
    assert run_load(**p, month="2026-01", as_of=LOAD_AT).records == 8  # released when the holder ends
