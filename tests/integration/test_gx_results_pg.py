"""Suite outcomes stored in the real PostgreSQL, and the per-month trend auditors read from it."""

from __future__ import annotations

import random
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from quality import gx_results
from quality.batch_checks import run_suite
from schemas import uscc

pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray that drops timezone")

TIMELY = "expect_column_pair_values_to_be_pushed_in_registration_month"


def month_frame(month: int, late: int, duplicated: bool, total: int = 8) -> pd.DataFrame:
    """``total`` events of 2024-``month``: the first ``late`` pushed the next month; optionally one
    institution also reported by 行政审批 (a cross-registrar duplicate)."""
    rng = random.Random(month)
    rows = [
        {
            "registrar": "SHICHANG",
            "uscc": uscc.random_uscc(rng),
            "event_date": date(2024, month, 10),
            "extracted_at": pd.Timestamp(f"2024-{month + 1 if i < late else month:02d}-12T02:00Z"),
            "county_code": "110105" if i % 2 else "110108",
        }
        for i in range(total)
    ]
    if duplicated:
        rows.append({**rows[-1], "registrar": "SHENPI"})
    return pd.DataFrame(rows)


@pytest.fixture
def engine(database_url):
    from regsync.bookkeeping import migrate

    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)  # the production path: Alembic, not create_all
    yield engine
    engine.dispose()


def test_trend_over_three_months_in_postgres(engine, tmp_path):
    months = ((1, 0, False), (2, 3, True), (3, 1, False))
    for month, late, duplicated in months:
        outcome = run_suite(
            "monthly",
            month_frame(month, late, duplicated),
            context_root=tmp_path / "gx",
            run_id=f"pg-2024-{month:02d}",
            month=f"2024-{month:02d}",
            params={"registrars": ["SHICHANG", "SHENPI"], "timeliness_threshold": 0.8},
            build_data_docs=month == 3,
        )
        gx_results.store(engine, outcome)
        gx_results.store(engine, outcome)  # a retried task must not double the month

    shichang = gx_results.trend(engine, "monthly", TIMELY, condition="registrar == 'SHICHANG'")
    assert [(p.month, p.element_count, p.unexpected_count, p.success) for p in shichang] == [
        ("2024-01", 8, 0, True),
        ("2024-02", 8, 3, False),  # 5/8 = 0.625 < 0.8
        ("2024-03", 8, 1, True),  # 7/8 = 0.875
    ]
    assert [p.started_at.tzinfo is not None for p in shichang] == [True, True, True]

    duplicates = gx_results.trend(engine, "monthly", "expect_uscc_to_come_from_single_registrar")
    assert [(p.month, p.unexpected_count, p.success) for p in duplicates] == [
        ("2024-01", 0, True),
        ("2024-02", 2, False),
        ("2024-03", 0, True),
    ]

    with engine.connect() as conn:
        runs = conn.execute(sa.select(gx_results.quality_runs).order_by("month")).mappings().all()
        details = conn.execute(
            sa.select(gx_results.quality_results.c.details).where(
                gx_results.quality_results.c.run_id == "pg-2024-02",
                gx_results.quality_results.c.expectation_type == "expect_uscc_to_come_from_single_registrar",
            )
        ).scalar_one()
        column_type = conn.execute(
            sa.text(
                "select data_type from information_schema.columns "
                "where table_name = 'quality_results' and column_name = 'details'"
            )
        ).scalar_one()
    assert [r["month"] for r in runs] == ["2024-01", "2024-02", "2024-03"]
    assert runs[1]["metrics"]["timeliness"]["registrar"]["SHICHANG"] == {
        "on_time": 5,
        "total": 8,
        "share": 0.625,
    }
    assert runs[2]["data_docs_path"].endswith("index.html")
    assert runs[0]["data_docs_path"] is None
    assert details["offending_uscc_count"] == 1
    assert column_type == "jsonb"


def test_rerun_of_a_month_replaces_it_in_the_trend(engine, tmp_path):
    for run_id, late in (("first", 4), ("second", 0)):
        outcome = run_suite(
            "monthly",
            month_frame(5, late, False),
            context_root=tmp_path / "gx",
            run_id=run_id,
            month="2024-05",
            params={"registrars": ["SHICHANG"]},
            build_data_docs=False,
        )
        gx_results.store(engine, outcome)
    latest = gx_results.trend(engine, "monthly", TIMELY)
    assert [(p.run_id, p.unexpected_count) for p in latest] == [("second", 0)]
    every = gx_results.trend(engine, "monthly", TIMELY, all_runs=True)
    assert [(p.run_id, p.unexpected_count) for p in every] == [("first", 4), ("second", 0)]


def test_db_upgrade_migrates_both_histories_on_postgres(database_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from regsync.bookkeeping import migrate
    from regsync.cli import app
    from regsync.settings import get_settings
    from sink import store

    monkeypatch.setenv("REGSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("REGSYNC_STACK__STATE_DIR", str(tmp_path / "no-local-stack"))
    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["db", "upgrade"])
        again = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "pipeline  at revision 0003" in again.output  # 0003: the load's low-water offsets
    assert "store     at revision 0002" in again.output
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert migrate.schema_diff(conn) == []
            assert store.schema_diff(conn) == []
            kinds = dict(
                conn.execute(
                    sa.text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = 'quality_results'"
                    )
                ).all()
            )
        assert kinds["details"] == "jsonb"
    finally:
        engine.dispose()
