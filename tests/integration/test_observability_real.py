"""Metrics and logs of real runs: the textfile of a batch gate, the HTTP page of ``gate --forever``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

from listsource import FaultyListConnector, rows
from prometheus_client.parser import text_string_to_metric_families

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stack.process import free_port
from regsync.stages.extract import run_extract

AS_OF = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _env(stack, database_url, topics):
    env = {
        **os.environ,
        "REGSYNC_KAFKA_BOOTSTRAP": stack.bootstrap_servers,
        "REGSYNC_REGISTRY_URL": stack.registry_url,
        "REGSYNC_DATABASE_URL": database_url,
        "REGSYNC_TOPIC_PREFIX": topics.prefix,
    }
    env.pop("REGSYNC_CRASH_AT", None)
    return env


def _topics(stack, uid, as_components):
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    return topics


def test_a_batch_gate_writes_its_metrics_and_json_logs_with_its_run_id(
    stack, uid, database_url, tmp_path, as_components
):
    topics = _topics(stack, uid, as_components)
    p = {"bootstrap": stack.bootstrap_servers, "registry_url": stack.registry_url}
    run_extract(
        FaultyListConnector(rows(40)),
        as_of=AS_OF,
        batch_size=10,
        database_url=database_url,
        topics=topics,
        **p,
    )
    metrics_dir = tmp_path / "textfile"
    cmd = [sys.executable, "-m", "regsync", "--log-json", "--log-level", "INFO"]
    cmd += ["--metrics-textfile-dir", str(metrics_dir), "gate"]
    for _ in range(2):  # a second run adds nothing and keeps the totals
        done = subprocess.run(
            cmd,
            env=_env(stack, database_url, topics),
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
    got = _samples((metrics_dir / "regsync_gate.prom").read_text())
    assert got[("regsync_gate_records_total", (("outcome", "consumed"),))] == 40
    assert (
        got[("regsync_gate_records_total", (("outcome", "valid"),))]
        + got[("regsync_gate_records_total", (("outcome", "rejected"),))]
        == 40
    )
    assert got[("regsync_gate_rule_violations_total", (("rule", "USCC_CHECK_DIGIT"),))] == 8
    assert (
        time.time() - got[("regsync_last_success_timestamp_seconds", (("registrar", ""), ("stage", "gate")))]
        < 300
    )
    lines = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert lines, done.stderr
    assert all(x["run_id"].startswith("gate-") for x in lines if x["logger"].startswith("regsync"))
    assert any(x["msg"].startswith("gate run gate-") for x in lines)


def test_gate_forever_serves_metrics_with_lag_per_partition(stack, uid, database_url, as_components):
    topics = _topics(stack, uid, as_components)
    p = {"bootstrap": stack.bootstrap_servers, "registry_url": stack.registry_url}
    run_extract(
        FaultyListConnector(rows(30)),
        as_of=AS_OF,
        batch_size=10,
        database_url=database_url,
        topics=topics,
        **p,
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "regsync", "--metrics-port", str(port), "gate", "--forever"],
        env=_env(stack, database_url, topics),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        got: dict = {}
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                page = ""
            got = _samples(page) if page else {}
            if got.get(("regsync_gate_records_total", (("outcome", "consumed"),))) == 30:
                lags = {k: v for k, v in got.items() if k[0] == "regsync_consumer_lag"}
                if len(lags) == 3:
                    break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        else:
            raise AssertionError(f"metrics never showed 30 consumed and 3 lag series: {got}")
        lags = {dict(k[1])["partition"]: v for k, v in got.items() if k[0] == "regsync_consumer_lag"}
        assert lags == {"0": 0, "1": 0, "2": 0}
        assert all(dict(k[1])["topic"] == topics.raw for k in got if k[0] == "regsync_consumer_lag")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
