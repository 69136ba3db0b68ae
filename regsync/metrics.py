"""Prometheus metrics of the pipeline: what an operator alerts on (docs/operations.md#metrics-and-alerts).

One registry for the process. A long-running process (``regsync --metrics-port 9108 gate --forever``)
serves it over HTTP; a batch run (Airflow tasks, cron) writes it at exit to
``<textfile dir>/regsync_<job>.prom`` for node_exporter's textfile collector, atomically (temp file
+ rename). Batch runs *add* their counters to the previous file's, so counters stay monotonic
across runs and ``rate()``/``increase()`` work on them as on a long-running process's.

Stages call the ``record_*`` functions; nothing here talks to Kafka or a database.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

REGISTRY = CollectorRegistry(auto_describe=True)

EXTRACT_ROWS = Counter(
    "regsync_extract_rows_total",
    "Source rows per extract outcome: read, published (to raw), filtered (not childcare), dlq (unreadable).",
    ["source", "outcome"],
    registry=REGISTRY,
)
EXTRACT_RUNS = Counter(
    "regsync_extract_runs_total",
    "Extract runs per source and result (success, failure).",
    ["source", "result"],
    registry=REGISTRY,
)
EXTRACT_CONSECUTIVE_FAILURES = Gauge(
    "regsync_extract_consecutive_failures",
    "Extract runs of the source that failed in a row (0 after a success).",
    ["source"],
    registry=REGISTRY,
)
REGISTRAR_LAST_EVENT = Gauge(
    "regsync_registrar_last_event_timestamp_seconds",
    "When an extract last published at least one new event of the registrar (silence is a finding).",
    ["source"],
    registry=REGISTRY,
)
GATE_RECORDS = Counter(
    "regsync_gate_records_total",
    "Raw records judged by the gate per outcome (consumed = valid + rejected).",
    ["outcome"],
    registry=REGISTRY,
)
GATE_RULES = Counter(
    "regsync_gate_rule_violations_total",
    "Rule violations found by the gate per rule id (a record may break several).",
    ["rule"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "regsync_consumer_lag",
    "Records of the partition not yet consumed by the group (high watermark − position).",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "regsync_last_success_timestamp_seconds",
    "When the stage last finished without error, per registrar where the stage has one (else '').",
    ["stage", "registrar"],
    registry=REGISTRY,
)
LOADED_MONTH_END = Gauge(
    "regsync_loaded_month_end_timestamp_seconds",
    "End instant of the latest month loaded into the filing store (max over loads).",
    registry=REGISTRY,
)
LOAD_RECORDS = Counter(
    "regsync_load_records_total",
    "Records of registrations.valid loaded into the filing store.",
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class ExtractCounts:
    """What one extract run of one source did to its rows (filled by the extract stage)."""

    read: int = 0
    published: int = 0
    filtered: int = 0
    dlq: int = 0


def record_extract(source: str, counts: ExtractCounts, *, ok: bool, now: float | None = None) -> None:
    """One extract run of ``source`` ended: its row counts, and whether it succeeded.

    Call it once per source and run, in a ``finally`` (``ok=False`` when the run raised), with the
    counts reached so far.
    """
    now = time.time() if now is None else now
    for outcome in ("read", "published", "filtered", "dlq"):
        EXTRACT_ROWS.labels(source, outcome).inc(getattr(counts, outcome))
    EXTRACT_RUNS.labels(source, "success" if ok else "failure").inc()
    EXTRACT_RUNS.labels(source, "failure" if ok else "success").inc(0)
    if ok:
        EXTRACT_CONSECUTIVE_FAILURES.labels(source).set(0)
        LAST_SUCCESS.labels("extract", source).set(now)
    else:
        EXTRACT_CONSECUTIVE_FAILURES.labels(source).inc()
    if counts.published:
        REGISTRAR_LAST_EVENT.labels(source).set(now)


def record_gate_batch(valid: int, rejected: int, by_rule: Mapping[str, int]) -> None:
    """One committed gate transaction (call it after the commit: aborted batches count nothing)."""
    GATE_RECORDS.labels("consumed").inc(valid + rejected)
    GATE_RECORDS.labels("valid").inc(valid)
    GATE_RECORDS.labels("rejected").inc(rejected)
    for rule, n in by_rule.items():
        GATE_RULES.labels(rule).inc(n)


def record_lag(group: str, topic: str, lag: Mapping[int, int]) -> None:
    """The group's lag per partition of ``topic``, as the consumer sees it now."""
    for partition, n in lag.items():
        CONSUMER_LAG.labels(group, topic, str(partition)).set(max(0, n))


def record_success(stage: str, registrar: str = "", now: float | None = None) -> None:
    """The stage (per registrar where it has one) finished without error."""
    LAST_SUCCESS.labels(stage, registrar).set(time.time() if now is None else now)


def record_load(records: int, month_end: float) -> None:
    """A month was loaded (or found loaded already): its end instant, the records it stored."""
    LOAD_RECORDS.inc(records)
    current = _gauge_value(LOADED_MONTH_END)
    LOADED_MONTH_END.set(max(current, month_end))
    record_success("load")


def _gauge_value(gauge: Gauge) -> float:
    for family in gauge.collect():
        for sample in family.samples:
            return float(sample.value)
    return 0.0


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` from a daemon thread (for ``--metrics-port``; loopback unless told)."""
    start_http_server(port, addr=addr, registry=REGISTRY)


def render() -> str:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY).decode("utf-8")


def _previous_counters(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Counter and consecutive-failure samples of a textfile written before, keyed by name+labels."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    kept: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "counter" and family.name != EXTRACT_CONSECUTIVE_FAILURES._name:
            continue
        for sample in family.samples:
            if family.type == "counter" and not sample.name.endswith("_total"):
                continue  # the _created samples are per process
            kept[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return kept


def write_textfile(directory: Path, job: str) -> Path:
    """Write the registry to ``<directory>/regsync_<job>.prom`` atomically; returns the path.

    Counters are added to those of the file already there (one batch run after another keeps them
    monotonic); consecutive extract failures continue from the file's count unless this run
    succeeded; gauges are this run's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"regsync_{job}.prom"
    before = _previous_counters(path)
    consecutive = EXTRACT_CONSECUTIVE_FAILURES._name
    lines: list[str] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for family in REGISTRY.collect():
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        names = {family.name, family.name + "_total"}
        earlier = {k: v for k, v in before.items() if k[0] in names}
        if not samples and not earlier:
            continue
        exposed = family.name + "_total" if family.type == "counter" else family.name
        lines.append(f"# HELP {exposed} {family.documentation}")
        lines.append(f"# TYPE {exposed} {family.type}")
        for sample in samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            seen.add(key)
            value = float(sample.value)
            if family.type == "counter" or (sample.name == consecutive and value > 0):
                value += before.get(key, 0.0)
            lines.append(_sample_line(sample.name, dict(key[1]), value))
        # Label sets of earlier runs that this run did not touch keep their values.
        for (name, labels), value in sorted(earlier.items()):
            if (name, labels) not in seen:
                seen.add((name, labels))
                lines.append(_sample_line(name, dict(labels), value))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".regsync_{job}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def _sample_line(name: str, labels: Mapping[str, str], value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value!r}"
    return f"{name} {value!r}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
