"""Filings import idempotently; the gap lists who registered but has not filed, and the reverse."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from schemas.events import EventType, InstitutionStatus, Registrar
from sink.errors import FilingImportError
from sink.filing import filing_gap, import_filings
from sink.loader import PositionedEvent, load_month
from sink.models import filings
from sink.store import create_engine, upgrade
from sink.synthetic import make_event, uscc_for

A, B, C, D, E, F, G = (uscc_for(n) for n in range(1, 8))
X, Y = uscc_for(90), uscc_for(91)  # filed, never registered
HEADER = "统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态,备注\n"
FILINGS = HEADER + "\n".join(
    [
        f"{B},BA-2025-001,2025-03-02,441802,已备案,",
        f"{E},BA-2025-002,2025/02/01,441802,已注销,备案已注销",
        f"{X},BA-2025-003,20250310,441803,已备案,",
        f"{Y},BA-2025-004,2025-04-15,441803,已备案,after as_of",
        f"{A},,2025-03-01,441802,已备案,no filing number",
        f"{A},BA-2025-005,2025-13-01,441802,已备案,bad date",
    ]
)


def ev(uscc, kind, day, **kw):
    return make_event(uscc, kind, day, **kw)


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    eng = create_engine(url)
    events = [
        ev(A, EventType.ESTABLISHED, date(2025, 1, 10)),
        ev(B, EventType.ESTABLISHED, date(2025, 2, 1)),
        ev(C, EventType.ESTABLISHED, date(2025, 1, 5)),
        ev(C, EventType.DEREGISTERED, date(2025, 3, 1), version=2, status=InstitutionStatus.DEREGISTERED),
        ev(D, EventType.ESTABLISHED, date(2025, 1, 5)),
        ev(D, EventType.SCOPE_REMOVED_CHILDCARE, date(2025, 2, 1), version=2, scope="餐饮服务"),
        ev(E, EventType.ESTABLISHED, date(2025, 1, 20)),
        ev(F, EventType.ESTABLISHED, date(2025, 3, 1), county="441803", registrar=Registrar.MINZHENG),
        ev(G, EventType.ESTABLISHED, date(2025, 4, 2)),
    ]
    ts = int(datetime(2025, 4, 5, tzinfo=UTC).timestamp() * 1000)
    records = [PositionedEvent(0, i, ts, e) for i, e in enumerate(events)]
    load_month(eng, month="2025-04", topic="t", positioned=records, offset_ranges={0: (0, 9)}, run_id="r")
    yield eng
    eng.dispose()


@pytest.fixture
def filings_csv(tmp_path):
    path = tmp_path / "filings.csv"
    path.write_text(FILINGS, encoding="utf-8-sig")
    return path


def test_import_is_idempotent_on_the_filing_number(engine, filings_csv, tmp_path):
    first = import_filings(engine, filings_csv)
    assert (first.read, first.inserted, first.updated, first.unchanged) == (6, 4, 0, 0)
    assert [line for line, _ in first.errors] == [6, 7]
    assert "备案编号" in first.errors[0][1] and "备案日期" in first.errors[1][1]
    again = import_filings(engine, filings_csv)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    changed = tmp_path / "changed.csv"
    changed.write_text(
        FILINGS.replace("BA-2025-001,2025-03-02,441802,已备案", "BA-2025-001,2025-03-02,441802,已变更")
    )
    third = import_filings(engine, changed)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 3)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(filings.c.filing_number, filings.c.status, filings.c.filed_date)).all()
    assert len(rows) == 4
    assert ("BA-2025-001", "已变更", date(2025, 3, 2)) in rows
    assert ("BA-2025-003", "已备案", date(2025, 3, 10)) in rows


def test_import_reads_gb18030_exports(engine, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes(FILINGS.encode("gb18030"))
    assert import_filings(engine, path).inserted == 4


def test_import_refuses_a_file_without_the_columns(engine, tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("统一社会信用代码,编号\nX,1\n", encoding="utf-8")
    with pytest.raises(FilingImportError, match="备案日期"):
        import_filings(engine, path)


def test_filing_gap_per_county(engine, filings_csv):
    import_filings(engine, filings_csv)
    report = filing_gap(engine, as_of=date(2025, 3, 31))
    assert [c.county_code for c in report.counties] == ["441802", "441803"]
    qingcheng, qingxin = report.counties
    # A and E (its filing was cancelled) are unfiled, oldest first; B filed; C deregistered; D no longer
    # childcare; G registered after as_of
    assert [(i.uscc, i.registered_on, i.days_since) for i in qingcheng.registered_not_filed] == [
        (A, date(2025, 1, 10), 80),
        (E, date(2025, 1, 20), 70),
    ]
    assert qingcheng.filed_not_registered == []
    assert [i.uscc for i in qingxin.registered_not_filed] == [F]
    assert qingxin.registered_not_filed[0].registrars == "MINZHENG"
    assert [(f.filing_number, f.uscc) for f in qingxin.filed_not_registered] == [("BA-2025-003", X)]
    assert qingxin.counts == {"登记未备案": 1, "备案未登记": 1}
    assert report.totals == {"登记未备案": 3, "备案未登记": 1}
    assert report.county("441803") is qingxin and report.county("110101") is None
    later = filing_gap(engine, as_of=date(2025, 4, 30))
    assert later.totals == {"登记未备案": 4, "备案未登记": 2}  # G now due, Y now filed
