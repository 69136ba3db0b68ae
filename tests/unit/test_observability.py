"""Logging and metrics of issue 13 ("operators can see and alert"): what an operator relies on."""

from __future__ import annotations

import importlib
import io
import json
import logging
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from regsync import logs, metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_importing_the_bus_leaves_logging_alone():
    """Was: regsync.kafka.bus set the 'kafka' logger to WARNING at import, for every program."""
    code = (
        "import logging; logging.getLogger('kafka').setLevel(logging.DEBUG);"
        "import regsync.kafka.bus, regsync.stages.gate, regsync.stages.load;"
        "print(logging.getLogger('kafka').level)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(logging.DEBUG)


def test_json_lines_carry_the_run_id_also_for_third_party_loggers():
    stream = io.StringIO()
    try:
        logs.configure("INFO", json_lines=True, stream=stream)
        logs.bind_run_id("gate-abc123")
        logging.getLogger("regsync.test").info("judged %d", 7)
        logging.getLogger("sqlalchemy.pool").warning("pool says hi")
        logging.getLogger("kafka.conn").info("kafka chatter stays below WARNING")
    finally:
        logging.getLogger().handlers = [
            h for h in logging.getLogger().handlers if not getattr(h, "_regsync", False)
        ]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["logger"], x["msg"], x["run_id"]) for x in lines] == [
        ("regsync.test", "judged 7", "gate-abc123"),
        ("sqlalchemy.pool", "pool says hi", "gate-abc123"),
    ]
    assert all(x["ts"].endswith("+00:00") for x in lines)


def test_a_wrong_level_is_refused():
    with pytest.raises(ValueError, match="log level"):
        logs.configure("LOUD")


@pytest.fixture
def fresh_metrics():
    """Each test sees an empty registry (the module's metrics are process-wide)."""
    yield importlib.reload(metrics)
    importlib.reload(metrics)


def test_batch_textfile_counters_accumulate_across_runs_and_failures_count_in_a_row(fresh_metrics, tmp_path):
    m = fresh_metrics
    m.record_extract(
        "minzheng", m.ExtractCounts(read=10, published=7, filtered=2, dlq=1), ok=True, now=1000.0
    )
    path = m.write_textfile(tmp_path, "extract")
    first = _samples(path.read_text())
    assert first[("regsync_extract_rows_total", (("outcome", "published"), ("source", "minzheng")))] == 7
    assert first[("regsync_registrar_last_event_timestamp_seconds", (("source", "minzheng"),))] == 1000.0

    # Two later processes fail; a third one succeeds on another source only.
    for _ in range(2):
        m = importlib.reload(metrics)
        m.record_extract("minzheng", m.ExtractCounts(read=3), ok=False)
        m.write_textfile(tmp_path, "extract")
    after = _samples(path.read_text())
    assert after[("regsync_extract_rows_total", (("outcome", "read"), ("source", "minzheng")))] == 16
    assert after[("regsync_extract_runs_total", (("result", "failure"), ("source", "minzheng")))] == 2
    assert after[("regsync_extract_consecutive_failures", (("source", "minzheng"),))] == 2

    m = importlib.reload(metrics)
    m.record_extract("jiaoyu", m.ExtractCounts(read=1, published=1), ok=True)
    m.record_extract("minzheng", m.ExtractCounts(read=1), ok=True)
    m.write_textfile(tmp_path, "extract")
    final = _samples(path.read_text())
    assert final[("regsync_extract_consecutive_failures", (("source", "minzheng"),))] == 0
    assert final[("regsync_extract_rows_total", (("outcome", "read"), ("source", "minzheng")))] == 17
    assert final[("regsync_extract_rows_total", (("outcome", "read"), ("source", "jiaoyu")))] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["regsync_extract.prom"]  # no temp file left


def test_gate_lag_and_load_metrics_render(fresh_metrics):
    m = fresh_metrics
    m.record_gate_batch(valid=8, rejected=2, by_rule={"USCC_CHECK_DIGIT": 2})
    m.record_lag("regsync-gate-default", "registrations.raw", {0: 5, 1: 0})
    m.record_load(30, month_end=1_767_196_800.0)
    m.record_load(0, month_end=1_764_518_400.0)  # an older month loaded later: the max stays
    got = _samples(m.render())
    assert got[("regsync_gate_records_total", (("outcome", "consumed"),))] == 10
    assert got[("regsync_gate_rule_violations_total", (("rule", "USCC_CHECK_DIGIT"),))] == 2
    lag_key = (("group", "regsync-gate-default"), ("partition", "0"), ("topic", "registrations.raw"))
    assert got[("regsync_consumer_lag", lag_key)] == 5
    assert got[("regsync_loaded_month_end_timestamp_seconds", ())] == 1_767_196_800.0
    assert got[("regsync_load_records_total", ())] == 30
