"""Nothing vanishes without a count (issue 13 item 8): unreadable rows go to the DLQ, waiting files are told.

市场监管 rows with corrupted keywords or cut before the name were counted "not childcare" unread;
编制 rows with a NULL change timestamp were never read; 民政 rows with neither name nor scope
vanished; a 市场监管 day file whose ``.ok`` marker is missing or wrong waited forever, exit 0, silent.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Batch, ExtractContext, FatalSourceError
from connectors.shichang import ShichangConnector
from regsync.sources import for_simulator
from schemas.events import Registrar
from simulators.bianzhi_db import BianzhiDb
from simulators.minzheng_api import MinzhengApiSimulator, render
from simulators.shichang_files import as_row, exchange_instant, write_day_file
from simulators.shichang_files import render as render_csv
from simulators.world import WorldConfig, build_world

END = datetime(2026, 12, 31, tzinfo=UTC)


def _run(connector, state=None, as_of=END) -> list[Batch]:
    return list(connector.batches(state or {}, ExtractContext(as_of, "silent", batch_size=50)))


def _row(**fields: str) -> list[str]:
    base = {
        "record_id": "SCT000001", "version": "1", "uscc": "91441802MA4W000000",
        "name": "清远测试托育服务有限公司", "entity_type": "企业", "address": "广东省清远市清城区育才路1号",
        "division": "441802", "scope": "托育服务", "industry": "8020", "rep_name": "张三",
        "rep_id": "441802198601011234", "rep_phone": "13812345678", "capital": "30.00",
        "change_code": "01", "approved": "2026-01-05",
    }  # fmt: skip
    return as_row(**{**base, **fields})


def test_shichang_corrupted_or_cut_rows_are_unreadable_not_not_childcare(tmp_path: Path):
    path = tmp_path / "SCJG_20260105.csv"
    write_day_file(
        path,
        [_row(), _row(record_id="SCT000002"), _row(record_id="SCT000003")],
        exchange_instant(date(2026, 1, 5)),
    )
    lines = path.read_bytes().split(b"\r\n")
    gbk_scope = "托育服务".encode("gb18030")
    lines[2] = lines[2].replace(gbk_scope, b"\xff\xfe\xff\xfe")  # keywords corrupted on the wire
    lines[3] = (
        render_csv([_row(record_id="SCT000003")[:2]]).encode("gb18030").rstrip(b"\r\n")
    )  # cut before the name
    data = b"\r\n".join(lines)
    path.write_bytes(data)
    marker = path.with_name(path.name + ".ok")
    import hashlib

    text = marker.read_text().splitlines()
    marker.write_text(
        "\n".join(
            f"sha256={hashlib.sha256(data).hexdigest()}" if t.startswith("sha256=") else t for t in text
        )
        + "\n"
    )
    batches = _run(ShichangConnector(tmp_path), as_of=datetime(2026, 1, 7, tzinfo=UTC))
    assert [e.lineage.source_record_id for b in batches for e in b.events] == ["SCT000001"]
    invalid = {r.source_record_id: r.reason for b in batches for r in b.invalid}
    assert set(invalid) == {"SCT000002", "SCT000003"}
    assert "GB18030" in invalid["SCT000002"] and "expected 20 fields, found 2" in invalid["SCT000003"]
    assert sum(b.not_childcare for b in batches) == 0


def test_shichang_waiting_file_is_reported_then_fails_past_the_grace(tmp_path: Path):
    write_day_file(tmp_path / "SCJG_20260105.csv", [_row()], exchange_instant(date(2026, 1, 5)))
    late = tmp_path / "SCJG_20260106.csv"
    write_day_file(late, [_row(record_id="SCT000002")], exchange_instant(date(2026, 1, 6)))
    late.with_name(late.name + ".ok").unlink()  # the marker never came
    connector = ShichangConnector(tmp_path, marker_grace=timedelta(hours=24))
    batches = _run(connector, as_of=datetime(2026, 1, 7, 12, tzinfo=UTC))  # within the grace
    notes = {k: v for b in batches for k, v in b.notes.items()}
    assert notes == {"SCJG_20260106.csv": "no_marker"}
    with pytest.raises(FatalSourceError, match=r"SCJG_20260106.csv.*no_marker"):
        _run(connector, batches[-1].state, as_of=datetime(2026, 1, 9, tzinfo=UTC))


def test_bianzhi_rows_without_a_change_timestamp_go_to_the_dlq_once(tmp_path: Path):
    sim = BianzhiDb(build_world(WorldConfig(institutions_per_month=10, prefectures=("441800",))), tmp_path)
    try:
        sim.publish_until(END)
        with sim.engine.begin() as conn:  # a production copy without the NOT NULL the simulator keeps
            conn.execute(sa.text("CREATE TABLE loose AS SELECT * FROM sydw_djls"))
            conn.execute(sa.text("DROP TABLE sydw_djls"))
            conn.execute(sa.text("ALTER TABLE loose RENAME TO sydw_djls"))
            jgid = conn.execute(sa.text("SELECT min(jgid) FROM sydw_djls")).scalar_one()
            conn.execute(sa.text("UPDATE sydw_djls SET gxsj = NULL WHERE jgid = :j"), {"j": jgid})
            nulls = conn.execute(sa.text("SELECT count(*) FROM sydw_djls WHERE gxsj IS NULL")).scalar_one()
        connector = for_simulator(sim)
        batches = _run(connector)
        invalid = [r for b in batches for r in b.invalid if "gxsj" in r.reason]
        assert len(invalid) == nulls >= 1 and all(r.source_record_id == jgid for r in invalid)
        again = _run(connector, batches[-1].state)
        assert not [r for b in again for r in b.invalid]  # reported once, not at every run
    finally:
        sim.close()


def test_minzheng_row_with_neither_name_nor_scope_is_unreadable(tmp_path: Path):
    world = build_world(WorldConfig(institutions_per_month=10, prefectures=("441800",)))
    with MinzhengApiSimulator(world, tmp_path) as sim:
        sim.publish_until(END)
        connector = for_simulator(sim, max_attempts=2, backoff_initial=0.001, backoff_max=0.002, jitter=0.001)
        state = _run(connector)[-1].state
        good = json.loads(json.dumps(render(next(r for r in world.for_registrar(Registrar.MINZHENG)))))
        sim.inject_rows(
            [
                {
                    **good,
                    "id": "MX0000009",
                    "updateTime": "2027-01-05T10:00:00",
                    "orgName": None,
                    "businessScope": "",
                }
            ]
        )
        batches = _run(connector, state, as_of=datetime(2027, 2, 1, tzinfo=UTC))
        (bad,) = [r for b in batches for r in b.invalid]
        assert "neither orgName nor businessScope" in bad.reason
        assert sum(b.not_childcare for b in batches) == 0
