"""DagBag import test: every DAG parses, with the ids, tags, schedules and wiring the design names.

Needs no services and no metadata DB: parsing must not touch either (no top-level I/O).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"

SOURCES = ("bianzhi", "minzheng", "shichang", "shenpi", "jiaoyu")
EXTRACT_IDS = {f"regsync_extract_{s}" for s in SOURCES}
RAW = {f"regsync://registrations.raw/{s}" for s in SOURCES}


def _uris(assets):
    return {a.uri for a in assets}


def test_no_import_errors_and_expected_dags(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXTRACT_IDS | {"regsync_gate", "regsync_monthly"}


def test_parsing_imports_nothing_of_regsync(airflow_home):
    # Heavy imports belong inside the tasks. This process imported regsync already (the root
    # conftest does), so parse in a fresh interpreter, as the DAG processor would.
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        f"dags = Path({str(DAGS)!r})\n"
        "bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name='dags-folder')\n"
        "assert bag.import_errors == {}, bag.import_errors\n"
        "ours = {'regsync', 'connectors', 'quality', 'sink', 'schemas', 'simulators'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & ours))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_sources_match_regsync():
    from regsync.sources import FACTORIES

    assert set(FACTORIES) == set(SOURCES)


@pytest.mark.parametrize("source", SOURCES)
def test_extraction_dag(dagbag, source):
    from airflow.sdk import CronTriggerTimetable

    dag = dagbag.dags[f"regsync_extract_{source}"]
    assert set(dag.tags) == {"regsync", "extract", source}
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 0 * * *"  # @daily, in the DAG's zone
    assert str(dag.timetable.timezone) == "Asia/Shanghai"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert [t.task_id for t in dag.tasks] == ["extract"]
    assert _uris(dag.tasks[0].outlets) == {f"regsync://registrations.raw/{source}"}


def test_gate_is_scheduled_on_any_raw_asset(dagbag):
    from airflow.sdk import AssetAny

    dag = dagbag.dags["regsync_gate"]
    assert set(dag.tags) == {"regsync", "gate"}
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert _uris(condition.objects) == RAW
    assert dag.max_active_runs == 1
    assert [t.task_id for t in dag.tasks] == ["gate"]
    # Airflow normalises an empty URI path to "/".
    assert _uris(dag.tasks[0].outlets) == {"regsync://registrations.valid/"}
    # N gate workers per run: the param, else REGSYNC_GATE__WORKERS, else one per core.
    assert dag.params["workers"] is None
    assert dag.params.get_param("workers").schema["type"] == ["null", "integer"]


def test_monthly_dag(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["regsync_monthly"]
    assert set(dag.tags) == {"regsync", "monthly"}
    # A data-interval timetable: the run at the start of March covers February.
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "0 0 1 * *"
    assert str(dag.timetable.timezone) == "Asia/Shanghai"
    assert dag.catchup is True
    assert dag.max_active_runs == 1
    order = ["load", "quality", "report", "export"]
    assert {t.task_id for t in dag.tasks} == set(order)
    assert dag.get_task("load").upstream_task_ids == set()
    assert dag.get_task("quality").upstream_task_ids == {"load"}
    # A failed suite does not hold back the report and the packages; a failed load does.
    assert dag.get_task("report").upstream_task_ids == {"load", "quality"}
    assert dag.get_task("report").trigger_rule == "all_done_min_one_success"
    assert dag.get_task("export").upstream_task_ids == {"report"}


def test_monthly_interval_is_the_month_that_ended(dagbag):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(dagbag.dags["regsync_monthly"].timetable)
    shanghai = ZoneInfo("Asia/Shanghai")
    interval = timetable.infer_manual_data_interval(run_after=datetime(2026, 3, 1, 0, 30, tzinfo=shanghai))
    assert interval.start == datetime(2026, 2, 1, tzinfo=shanghai)
    assert interval.end == datetime(2026, 3, 1, tzinfo=shanghai)


def _support(dagbag):
    return dagbag.dags["regsync_monthly"].get_task("load").python_callable.__globals__


class _Run:
    def __init__(self, run_type, run_after=None):
        self.run_type = run_type
        self.run_after = run_after


def test_monthly_refuses_an_interval_that_is_not_a_month_in_regsync_zone(dagbag, monkeypatch):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from airflow.sdk.exceptions import AirflowFailException

    from regsync.settings import get_settings

    month_of = _support(dagbag)["monthly_month"].__globals__["month_of"]
    monkeypatch.setenv("REGSYNC_TIMEZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    try:
        assert month_of(datetime(2026, 1, 31, 16, tzinfo=ZoneInfo("UTC"))) == "2026-02"
        with pytest.raises(AirflowFailException, match="not at a month start"):
            month_of(datetime(2026, 2, 1, tzinfo=ZoneInfo("UTC")))  # 08:00 in Shanghai
        with pytest.raises(AirflowFailException, match='"month"'):
            month_of(None)
    finally:
        get_settings.cache_clear()


def test_monthly_month_param_and_interval(dagbag, monkeypatch):
    """Manual runs name their month (validated); scheduled and backfill runs use the interval."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from airflow.sdk.exceptions import AirflowFailException

    from regsync.settings import get_settings

    g = _support(dagbag)
    month, as_of = g["monthly_month"], g["load_as_of"]
    shanghai = ZoneInfo("Asia/Shanghai")
    start, end = datetime(2026, 2, 1, tzinfo=shanghai), datetime(2026, 3, 1, tzinfo=shanghai)
    trigger = datetime(2026, 12, 4, 9, tzinfo=shanghai)
    monkeypatch.setenv("REGSYNC_TIMEZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    try:
        for kind in ("scheduled", "backfill"):
            ctx = {
                "params": {"month": None},
                "dag_run": _Run(kind),
                "data_interval_start": start,
                "data_interval_end": end,
            }
            assert (month(ctx), as_of(ctx)) == ("2026-02", end)
        manual = {
            "params": {"month": "2026-01"},
            "dag_run": _Run("manual", trigger),
            "data_interval_start": start,
            "data_interval_end": end,
        }
        assert (month(manual), as_of(manual)) == ("2026-01", trigger)  # the param wins, as of the trigger
        with pytest.raises(AirflowFailException, match="needs the month"):
            month({**manual, "params": {"month": None}})  # an interval from the trigger time is not a month
        with pytest.raises(AirflowFailException, match="not YYYY-MM"):
            month({**manual, "params": {"month": "2026-13"}})
    finally:
        get_settings.cache_clear()


def test_monthly_month_param_is_validated_by_airflow(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["regsync_monthly"].params)
    assert params["month"] is None and params["allow_gap"] is False
    params["month"] = "2026-01"
    with pytest.raises(ParamValidationError, match="does not match"):
        params["month"] = "2026-1"


def test_dags_refuse_to_guess_a_start_date(airflow_home, monkeypatch):
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.delenv("REGSYNC_AIRFLOW__START_DATE")
    # The DAG processor parses in a fresh process; here the shared module is cached from earlier parses.
    monkeypatch.delitem(sys.modules, "regsync_support", raising=False)
    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert not bag.dags
    assert len(bag.import_errors) == 2  # both DAG files, each naming the variable
    for error in bag.import_errors.values():
        assert "REGSYNC_AIRFLOW__START_DATE is not set" in error
    monkeypatch.setenv("REGSYNC_AIRFLOW__START_DATE", "January")
    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert all("is not a date" in e for e in bag.import_errors.values()) and bag.import_errors


def test_extract_schedule_is_configurable(airflow_home, monkeypatch):
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setenv("REGSYNC_AIRFLOW__EXTRACT_SCHEDULE", "0 */6 * * *")
    monkeypatch.setenv("REGSYNC_AIRFLOW__EXTRACT_SCHEDULE_JIAOYU", "none")
    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert bag.dags["regsync_extract_bianzhi"].timetable.expression == "0 */6 * * *"
    assert bag.dags["regsync_extract_jiaoyu"].schedule is None


@pytest.mark.parametrize(
    ("from_date", "to_date", "months"),
    [
        # The documented command: the months' first instants in regsync's zone, both ends included.
        ("2026-01-01T00:00:00+08:00", "2026-03-01T00:00:00+08:00", ["2026-01", "2026-02", "2026-03"]),
        ("2026-01-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00", ["2026-01"]),
        # What the README said before: UTC midnight is 08:00 in Shanghai, so January is skipped.
        ("2026-01-01", "2026-03-01", ["2026-02", "2026-03"]),
    ],
)
def test_backfill_dates_choose_the_documented_months(dagbag, from_date, to_date, months):
    """The runs ``airflow backfill create --from-date … --to-date …`` creates (its own date parsing
    and run list; the real-scheduler test runs the one-month command end to end)."""
    from zoneinfo import ZoneInfo

    from airflow._shared.timezones.timezone import parse as parsedate
    from airflow.models.backfill import _get_info_list
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["regsync_monthly"]))
    infos = _get_info_list(
        from_date=parsedate(from_date), to_date=parsedate(to_date), reverse=False, dag=serialized
    )
    shanghai = ZoneInfo("Asia/Shanghai")
    assert [f"{i.data_interval.start.astimezone(shanghai):%Y-%m}" for i in infos] == months


@pytest.mark.parametrize(("param", "expected"), [(None, None), (3, 3)])
def test_gate_task_hands_the_workers_param_to_the_gate_job(dagbag, monkeypatch, param, expected):
    """The task is thin: the param (else the setting, decided in the job) picks the worker count."""
    from regsync import jobs
    from regsync.stages.gate import GateCounts

    seen = []

    def fake_gate(settings=None, workers=None):  # pure wiring: the job itself runs in test_dag_runs
        seen.append(workers)
        return GateCounts(consumed=2, valid=1, rejected=1, transactions=1)

    monkeypatch.setattr(jobs, "gate", fake_gate)
    task = dagbag.dags["regsync_gate"].get_task("gate")
    valid = next(iter(task.outlets))

    class Events(dict):
        def __missing__(self, key):
            self[key] = type("Event", (), {"extra": None})()
            return self[key]

    events = Events()
    result = task.python_callable(params={"workers": param}, outlet_events=events)
    assert seen == [expected]
    assert result["consumed"] == 2
    assert events[valid].extra == result
