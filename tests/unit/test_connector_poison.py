"""Poison rows never block a source (issue 13 item 4): each goes to the connector DLQ, the run goes on.

One test per poison the adversarial probe found. Each runs the connector over a real source (SQLite
database, HTTP server, drop folder) holding good rows around the poison and asserts: the run
finishes, the good rows become events, the poison is in ``Batch.invalid`` with a reason, masked.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Batch, ExtractContext
from connectors.shichang import ShichangConnector
from regsync.sources import for_simulator
from schemas.events import Registrar
from simulators.bianzhi_db import BianzhiDb
from simulators.minzheng_api import MinzhengApiSimulator, render
from simulators.shenpi_db import ShenpiDb
from simulators.shichang_files import as_row, exchange_instant, header, marker_text
from simulators.shichang_files import render as render_csv
from simulators.world import WorldConfig, build_world

END = datetime(2026, 12, 31, tzinfo=UTC)
ID, PHONE = "441802198601011234", "13812345678"


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(institutions_per_month=15, prefectures=("441800",)))


def _run(connector, state=None, as_of=END, size=7) -> list[Batch]:
    return list(connector.batches(state or {}, ExtractContext(as_of, "poison", batch_size=size)))


def _invalid(batches):
    return [r for b in batches for r in b.invalid]


def _events(batches):
    return [e for b in batches for e in b.events]


# 市场监管 --------------------------------------------------------------------------------------------


def _row(**fields: str) -> list[str]:
    base = {
        "record_id": "SCT000001", "version": "1", "uscc": "91441802MA4W000000",
        "name": "清远测试托育服务有限公司", "entity_type": "企业", "address": "广东省清远市清城区育才路1号",
        "division": "441802", "scope": "托育服务", "industry": "8020", "rep_name": "张三",
        "rep_id": ID, "rep_phone": PHONE, "capital": "30.00", "change_code": "01", "approved": "2026-01-05",
    }  # fmt: skip
    return as_row(**{**base, **fields})


def _day_file(folder: Path, lines: list[str]) -> None:
    """A complete day file written byte by byte (the simulator's writer would clean the poison)."""
    path = folder / "SCJG_20260105.csv"
    data = "".join(line + "\r\n" for line in lines).encode("gb18030")
    path.write_bytes(data)
    marker = marker_text(
        path.name, len(lines) - 1, hashlib.sha256(data).hexdigest(), exchange_instant(date(2026, 1, 5))
    )
    path.with_name(path.name + ".ok").write_text(marker, encoding="ascii")


def _csv(row: list[str]) -> str:
    return render_csv([row]).rstrip("\r\n")


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(lambda: _csv(_row(record_id="SCT000002")).replace("育才路", "育\r才路"), id="stray-CR"),
        pytest.param(
            lambda: _csv(_row(record_id="SCT000002", scope="托育服务" + "婴" * 140_000)), id="field-128KiB"
        ),
    ],
)
def test_shichang_poison_rows_go_to_the_dlq(tmp_path, poison):
    lines = [_csv(header()), _csv(_row()), poison(), _csv(_row(record_id="SCT000003"))]
    _day_file(tmp_path, lines)
    batches = _run(ShichangConnector(tmp_path), as_of=datetime(2026, 1, 7, tzinfo=UTC))
    assert sorted(e.lineage.source_record_id for e in _events(batches)) == ["SCT000001", "SCT000003"]
    (bad,) = _invalid(batches)
    assert bad.reason
    assert ID.encode() not in bad.raw and PHONE.encode() not in bad.raw
    assert len(bad.raw) <= 70_000  # a huge row is truncated, its size in the reason
    assert batches[-1].state["files"]  # the file is taken: the next run does not stop on it again


# 行政审批 --------------------------------------------------------------------------------------------


def test_shenpi_number_in_change_items_goes_to_the_dlq(tmp_path):
    sim = ShenpiDb(build_world(WorldConfig(institutions_per_month=15)), tmp_path)
    try:
        sim.publish_until(END)
        with sim.engine.begin() as conn:
            seq = conn.execute(
                sa.text(
                    "SELECT min(change_seq) FROM approval_registration"
                    " WHERE biz_type = 'BG' AND scope_json LIKE '%托育%'"
                )
            ).scalar_one()
            conn.execute(
                sa.text("UPDATE approval_registration SET change_items = :v WHERE change_seq = :s"),
                {"v": json.dumps([{"item": 5, "before": 1, "after": 2}]), "s": seq},
            )
        batches = _run(for_simulator(sim))
        invalid = _invalid(batches)
        assert len(invalid) == 1
        assert invalid[0].reason
        assert _events(batches)
    finally:
        sim.close()


# 编制 ------------------------------------------------------------------------------------------------


def test_bianzhi_text_in_a_numeric_column_on_sqlite_goes_to_the_dlq(world, tmp_path):
    sim = BianzhiDb(world, tmp_path)
    try:
        sim.publish_until(END)
        with sim.engine.begin() as conn:
            gxsj = conn.execute(
                sa.text("SELECT min(gxsj) FROM sydw_djls WHERE ywfw LIKE '%托育%'")
            ).scalar_one()
            conn.execute(sa.text("UPDATE sydw_djls SET kbzj = '三十万' WHERE gxsj = :g"), {"g": gxsj})
        batches = _run(for_simulator(sim))
        invalid = _invalid(batches)
        assert invalid, "the poisoned row went to the DLQ"
        assert all("kbzj" in r.reason or "三十万" in r.reason for r in invalid)
        assert len(_events(batches)) >= 5
    finally:
        sim.close()


# 民政 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(lambda good: [good["id"], good["orgName"]], id="json-array-row"),
        pytest.param(lambda good: {**good, "orgName": 12345}, id="name-is-a-number"),
        pytest.param(lambda good: {**good, "businessScope": {"text": "托育服务"}}, id="scope-is-an-object"),
        pytest.param(lambda good: {**good, "nurseryPlaces": "many"}, id="places-is-text"),
    ],
)
def test_minzheng_poison_rows_go_to_the_dlq(world, tmp_path, poison):
    with MinzhengApiSimulator(world, tmp_path) as sim:
        sim.publish_until(END)
        connector = for_simulator(sim, max_attempts=2, backoff_initial=0.001, backoff_max=0.002, jitter=0.001)
        state = _run(connector)[-1].state
        good = _any_row(sim)
        stamp = "2027-01-05T10:00:00"
        row = poison(
            {**good, "id": "MX0000001", "updateTime": stamp, "legalPersonIdNo": ID, "legalPersonPhone": PHONE}
        )
        if isinstance(row, list):
            row = {
                "updateTime": stamp,
                "id": "MX0000001",
                "version": 1,
                "orgName": row,
            }  # an array where text goes
        sim.inject_rows([row, {**good, "id": "MX0000002", "version": 1, "updateTime": stamp}])
        batches = _run(connector, state, as_of=datetime(2027, 2, 1, tzinfo=UTC))
        assert [e.lineage.source_record_id for e in _events(batches)] == ["MX0000002"]
        (bad,) = _invalid(batches)
        assert "MX0000001" in bad.reason
        assert ID.encode() not in bad.raw and PHONE.encode() not in bad.raw


def _any_row(sim: MinzhengApiSimulator) -> dict:
    record = next(r for r in sim.world.for_registrar(Registrar.MINZHENG) if r.childcare)
    return json.loads(json.dumps(render(record)))


def test_minzheng_a_json_array_body_is_one_line_not_a_traceback():
    """A body that is a JSON array (not ``{code, data}``) is retried, then one RetriableSourceError."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from connectors.base import RetriableSourceError
    from connectors.minzheng import MinzhengConnector

    class ArrayBody(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'[{"id": "MX1"}]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ArrayBody)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connector = MinzhengConnector(
            f"http://127.0.0.1:{server.server_port}", max_attempts=2, backoff_initial=0.001, backoff_max=0.002
        )
        with pytest.raises(RetriableSourceError, match="not a JSON object"):
            _run(connector)
    finally:
        server.shutdown()
        server.server_close()
