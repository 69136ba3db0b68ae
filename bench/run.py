"""The regsync benchmark: per-stage and end-to-end rates on the real stack, against its own limits.

One command (``make bench``, ``.venv/bin/python -m bench.run`` or ``python bench/run.py``) starts the
real stack (Kafka, Apicurio Registry, PostgreSQL) in a throwaway folder, runs the scenarios and stops
the stack again, also when a stage fails (a watchdog stops it even if this process is killed).

Per scenario (100,000 and 1,000,000 synthetic childcare events of one month; own topics and database):

1. **extract** — ``run_extract`` of a synthetic registrar into ``registrations.raw``;
2. **gate** — ``run_gate`` until idle: real Kafka transactions, raw → valid | rejected; one process,
   and again at the end of the scenario as ``--gate-workers`` processes in one consumer group;
3. **load** — ``run_load`` of the month into the PostgreSQL filing store;
4. **end to end** — wall time from starting extract to the load's commit (three processes, as three
   Airflow tasks would be);
5. baselines, measured in the same run on the same machine: **raw consume** of the raw topic and **raw
   produce** of its own records (key, value, headers) with extract's producer settings (the transport
   limit), and **COPY** of the rows the load wrote into tables ``LIKE`` the store's (the storage limit);
6. the peer (:mod:`bench.peers.connect`): **Kafka Connect** standalone with Debezium's JDBC sink,
   sinking the same valid topic into the same database (``--no-peer`` skips it);
7. **pipelined** (:mod:`bench.pipelined`, the smallest scenario by default): extract, gate and the
   load of the closed month running side by side while the next month streams in; seconds from the
   first publish to the month loaded, beside the sequential end to end (``--pipelined none`` skips it).

Every stage runs in its own process (:mod:`bench.stages`); its peak RSS and CPU seconds come from
``wait4``. The CPU seconds the broker, the registry and PostgreSQL spent during each stage are read
from their process trees. Results: a table on stdout, ``bench/results/<UTC timestamp>.json`` and
``bench/results/latest.json``. ``--profile`` runs the stages under cProfile (slower: use it to find
hot spots, not for figures) and prints each stage's top functions; ``--flame`` runs extract, gate and
load under py-spy and writes SVG flame graphs of every thread to ``bench/profiles/`` (``make profile``).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import platform
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.stages import stage_peak_rss_mib  # noqa: E402
from regsync.settings import StackSettings  # noqa: E402
from regsync.stack.launcher import Endpoints, Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PROFILES = ROOT / "bench" / "profiles"
STARTED = time.perf_counter()
SCENARIOS = {"100k": 100_000, "1m": 1_000_000}
MONTH = "2026-01"
AS_OF = "2026-01-31T15:00:00+00:00"  # 23:00 in Shanghai: every record is pushed in MONTH
PIPELINE = ("extract", "gate", "load")
#: Raw partitions of a scenario's topics: the deployment's default (``topic_partitions``), which two
#: and three gate workers share evenly; raised to ``--gate-workers`` when that is larger.
PARTITIONS = 6
BASELINES = ("raw_consume", "raw_produce", "copy")


@dataclass(slots=True)
class StageResult:
    """One stage of one scenario: its own figures plus what the parent measured around it."""

    stage: str
    events: int
    seconds: float
    wall_s: float  # process start to exit, imports included
    peak_rss_mib: float
    cpu_s: float
    service_cpu_s: dict[str, float]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events per second over the stage's own timed section."""
        return self.events / self.seconds if self.seconds else 0.0


# --------------------------------------------------------------------------------------------------
# machine and versions


def machine(stack: Stack, endpoints: Endpoints) -> dict[str, Any]:
    """What this run ran on: hardware, OS, Python, services and client libraries."""
    model = ""
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = found.group(1).strip() if found else ""
    libs = {}
    for name in ("kafka-python", "fastavro", "psycopg", "sqlalchemy", "psutil"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            libs[name] = metadata.version(name)
    s = stack.settings
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": s.kafka_version,
        "kafka_heap": s.kafka_heap,
        "apicurio_registry": s.apicurio_version,
        "postgres": _postgres_version(endpoints),
        "java": _java_version(),
        "libraries": libs,
        "git": _git(),
    }


def _postgres_version(endpoints: Endpoints) -> str:
    import sqlalchemy as sa

    assert endpoints.database_url is not None
    engine = sa.create_engine(endpoints.database_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


def _java_version() -> str:
    from regsync.stack.prereq import find_java

    with contextlib.suppress(Exception):
        out = subprocess.run(
            [str(find_java().executable), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
        return (out.stderr or out.stdout).splitlines()[0]
    return "unknown"


def _git() -> str:
    with contextlib.suppress(Exception):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    return "unknown"


# --------------------------------------------------------------------------------------------------
# running a stage


def service_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds each service's process tree has used so far (reaped children included)."""
    out: dict[str, float] = {}
    for st in stack.status():
        if st.pid is None:
            continue
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(st.pid)
            t = root.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
            out[st.name] = total
    return out


def run_stage(stack: Stack, cfg: dict[str, Any], workdir: Path, module: str = "bench.stages") -> StageResult:
    """Run one stage in a fresh interpreter; its figures, peak RSS and CPU time.

    Peak RSS: the larger of the stage's own (``VmHWM``, which the stage reports) and that of the
    largest child it reaped (the load's reading process, the Connect peer's JVM); ``wait4``'s
    figure only for a module that reports neither, as it also carries this process's own peak.
    """
    out = workdir / f"{cfg['label']}-{cfg['stage']}.json"
    cfg = {**cfg, "out": str(out)}
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print(f"  -> {cfg['label']} {cfg['stage']} (bench at {_elapsed()})", flush=True)
    before = service_cpu(stack)
    load_before = os.getloadavg()
    began = time.perf_counter()
    command = [sys.executable, "-m", module, json.dumps(cfg)]
    if cfg.get("flame"):
        command = flame_command(Path(cfg["flame"])) + command
    proc = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    after = service_cpu(stack)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {cfg['stage']} of {cfg['label']} failed with exit code {proc.returncode}")
    figures = json.loads(out.read_text(encoding="utf-8"))
    if cfg.get("flame"):
        retitle(Path(cfg["flame"]), f"{cfg['stage']}, {cfg['events']:,} events")
    result = StageResult(
        stage=cfg["stage"],
        events=int(figures.pop("events")),
        seconds=float(figures.pop("seconds")),
        wall_s=wall,
        peak_rss_mib=stage_peak_rss_mib(figures, usage),
        cpu_s=usage.ru_utime + usage.ru_stime,
        service_cpu_s={k: round(after[k] - before.get(k, 0.0), 1) for k in after},
        figures={
            **figures,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    )
    print(
        f"  {result.stage:<12} {result.events:>10,} events in {result.seconds:7.1f} s = {result.rate:>9,.0f}/s"
        f"   peak RSS {result.peak_rss_mib:6.0f} MiB   CPU {result.cpu_s:6.1f} s"
        f"   services CPU {sum(result.service_cpu_s.values()):6.1f} s",
        flush=True,
    )
    if cfg.get("profile"):
        stats = pstats.Stats(cfg["profile"])
        print(f"  --- cProfile of {cfg['stage']} ({cfg['profile']}), top by own time ---")
        stats.sort_stats("tottime").print_stats(20)
    return result


def _elapsed() -> str:
    """Minutes and seconds since the bench started, for the progress lines."""
    seconds = int(time.perf_counter() - STARTED)
    return f"{seconds // 60}:{seconds % 60:02d}"


def flame_command(svg: Path) -> list[str]:
    """py-spy in front of a stage: a sampled SVG flame graph, one row of stacks per thread.

    Sampling from outside (a separate process reading the stage's memory) costs the stage far less
    than cProfile's per-call hooks, and it sees every thread: kafka-python's sender and consumer
    fetch threads as well as the main loop. ``--idle`` keeps the threads' waits in the picture, so
    a stage that blocks on the broker or PostgreSQL shows it; ``--nonblocking`` leaves the stage
    running while it is read. The figures of a profiled run are still not for the tables.
    """
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(f"--flame needs py-spy ({spy} is missing): uv sync --extra dev")
    return [
        str(spy),
        "record",
        "--output",
        str(svg),
        "--format",
        "flamegraph",
        "--threads",
        "--idle",
        "--rate",
        "100",
        "--nonblocking",
        "--",
    ]


def retitle(svg: Path, what: str) -> None:
    """Replace the flame graph's title (py-spy puts the whole command line there, the stage's
    config with its endpoints and database URL included) by the options and the stage."""
    text = svg.read_text(encoding="utf-8")
    title = html.escape(f"py-spy record --threads --idle --rate 100 --nonblocking -- bench.stages ({what})")
    svg.write_text(
        re.sub(
            r'(<text id="title"[^>]*>).*?(</text>)', lambda m: m[1] + title + m[2], text, count=1, flags=re.S
        ),
        encoding="utf-8",
    )


def stop_watchdog(pid: int) -> None:
    """The stack is down: end our watchdog, or it would re-create the state folder after we exit."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def prepare(endpoints: Endpoints, label: str, partitions: int = PARTITIONS) -> dict[str, Any]:
    """A scenario's own topics (``partitions`` each), registry subjects and database, named by a short uuid."""
    import sqlalchemy as sa
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from regsync.kafka import bus
    from regsync.kafka.topics import Topics, ensure_topics

    uid = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"bench{label}{uid}.", partitions=partitions)
    ensure_topics(endpoints.bootstrap_servers, topics)
    bus.register_schemas(endpoints.registry_url, topics)
    baseline_topic = f"{topics.prefix}baseline"
    admin = KafkaAdminClient(bootstrap_servers=endpoints.bootstrap_servers)
    try:
        admin.create_topics(
            [NewTopic(baseline_topic, num_partitions=topics.partitions, replication_factor=1)]
        )
    finally:
        admin.close()
    assert endpoints.database_url is not None
    name = f"bench_{label}_{uid}"
    engine = sa.create_engine(endpoints.database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return {
        "bootstrap": endpoints.bootstrap_servers,
        "registry_url": endpoints.registry_url,
        "database_url": endpoints.database_url.rsplit("/", 1)[0] + f"/{name}",
        "prefix": topics.prefix,
        "partitions": topics.partitions,
        "baseline_topic": baseline_topic,
    }


def scenario(
    stack: Stack,
    endpoints: Endpoints,
    label: str,
    events: int,
    workdir: Path,
    profile_dir: Path | None,
    peer: dict[str, Any] | None = None,
    flame_dir: Path | None = None,
    gate_workers: int = 0,
) -> dict[str, Any]:
    """Extract, gate and load ``events`` events, the three baselines over the same data, then the peer,
    then the gate again as ``gate_workers`` processes (0: not)."""
    print(f"\n== scenario {label}: {events:,} events (bench at {_elapsed()}) ==", flush=True)
    base = {
        **prepare(endpoints, label, max(PARTITIONS, gate_workers)),
        "label": label,
        "events": events,
        "month": MONTH,
        "as_of": AS_OF,
        "seed": 0,
    }
    stages: dict[str, StageResult] = {}
    began = time.perf_counter()
    for stage in PIPELINE:
        cfg = {**base, "stage": stage}
        if stage == "load":
            cfg["expected"] = stages["gate"].figures["valid"]
        if profile_dir is not None:
            cfg["profile"] = str(profile_dir / f"{label}-{stage}.prof")
        if flame_dir is not None:
            cfg["flame"] = str(flame_dir / f"{stage}-{label}.svg")
        stages[stage] = run_stage(stack, cfg, workdir)
    end_to_end = time.perf_counter() - began
    check = stages["load"]
    if stages["extract"].events != events or stages["gate"].events != events:
        raise RuntimeError(f"{label}: extract/gate moved {stages['extract'].events}/{stages['gate'].events}")
    if check.events != stages["gate"].figures["valid"]:
        raise RuntimeError(f"{label}: loaded {check.events} of {stages['gate'].figures['valid']} valid")
    print(
        f"  {'end to end':<12} {events:>10,} events in {end_to_end:7.1f} s = {events / end_to_end:>9,.0f}/s"
    )
    for stage in BASELINES:
        stages[stage] = run_stage(stack, {**base, "stage": stage}, workdir)
    if peer is not None:
        cfg = {
            **base,
            **peer,
            "stage": "connect",
            "expected": stages["gate"].figures["valid"],
            "workdir": str(workdir / f"{label}-connect"),
        }
        stages["connect"] = run_stage(stack, cfg, workdir, module="bench.peers.connect")
        if stages["connect"].events != stages["gate"].figures["valid"]:
            raise RuntimeError(f"{label}: Connect wrote {stages['connect'].events} rows")
    if gate_workers:
        stages["gate_workers"] = gate_workers_stage(stack, base, gate_workers, stages["gate"], workdir)
    return _summarise(
        label, events, stages, end_to_end, profiled=profile_dir is not None or flame_dir is not None
    )


def gate_workers_stage(
    stack: Stack, base: dict[str, Any], workers: int, one: StageResult, workdir: Path
) -> StageResult:
    """The raw topic judged once more, by ``workers`` gate processes in a fresh consumer group.

    The same code path as ``regsync gate --workers N`` (each worker ``run_gate`` with its own
    instance: static member ``gate-<i>``, transactional id ``…-<i>``), through
    :func:`bench.gate_scaling.trial`. It runs last in the scenario, after the load and the peer read
    the valid topic, because its outputs go to the same valid and rejected topics. Reconciled
    exactly: the workers judged every raw record once (their counts sum to the extracted events),
    with the one-process gate's verdicts, and what they committed is on the topics under
    ``read_committed`` (counted before and after), no more and no less.
    """
    from bench.gate_scaling import trial

    print(f"  -> {base['label']} gate with {workers} workers (bench at {_elapsed()})", flush=True)
    before = committed_counts(base["bootstrap"], base["prefix"])
    if before["valid"] != one.figures["valid"]:
        raise RuntimeError(
            f"valid holds {before['valid']} committed records, the gate wrote {one.figures['valid']}"
        )
    load_before = os.getloadavg()
    t = trial(stack, base, workers, workdir)
    after = committed_counts(base["bootstrap"], base["prefix"])
    if (t["valid"], t["rejected"]) != (one.figures["valid"], one.figures["rejected"]):
        raise RuntimeError(
            f"{workers} gate workers: {t['valid']} valid + {t['rejected']} rejected, one process "
            f"{one.figures['valid']} + {one.figures['rejected']}"
        )
    written = {k: after[k] - before[k] for k in after}
    if written != {"valid": t["valid"], "rejected": t["rejected"]}:
        raise RuntimeError(
            f"{workers} gate workers committed {written}, their counts say {t['valid']}/{t['rejected']}"
        )
    return StageResult(
        stage="gate_workers",
        events=t["events"],
        seconds=t["timed_s"],
        wall_s=t["wall_s"],
        peak_rss_mib=t["peak_rss_mib"],
        cpu_s=t["workers_cpu_s"],
        service_cpu_s={"kafka": t["kafka_cpu_s"], "postgres": t["postgres_cpu_s"]},
        figures={
            "workers": workers,
            "valid": t["valid"],
            "rejected": t["rejected"],
            "loop_cpu_s": t["workers_loop_cpu_s"],
            "per_worker_events": t["per_worker_events"],
            "committed_on_topics": written,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": t["loadavg_after"],
        },
    )


def committed_counts(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records on the valid and rejected topics under ``read_committed``, read to the end.

    Counted, not taken from offsets: transaction markers take offsets too, and aborted records are
    skipped only by reading.
    """
    from kafka import KafkaConsumer, TopicPartition

    from regsync.kafka.topics import Topics

    topics = Topics(prefix=prefix)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=64 * 2**20,
    )
    try:
        counts: dict[str, int] = {}
        for name, topic in (("valid", topics.valid), ("rejected", topics.rejected)):
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)  # the last stable offsets under read_committed
            counts[name] = 0
            deadline = time.monotonic() + 300
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not read {topic} to its end in 300 s")
                counts[name] += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        return counts
    finally:
        consumer.close()


def _summarise(
    label: str, events: int, stages: dict[str, StageResult], end_to_end: float, profiled: bool
) -> dict[str, Any]:
    ex, gt, ld = stages["extract"], stages["gate"], stages["load"]
    produce, consume, cp = stages["raw_produce"], stages["raw_consume"], stages["copy"]
    extract_net = ex.events / max(ex.seconds - ex.figures["source_seconds"], 1e-9)
    transport = produce.events / (produce.seconds + consume.seconds / consume.events * produce.events)
    # CPU per event in the timed sections, net of the source's own CPU: steadier than wall time
    # when other work shares the cores (the wall ratios above are what the targets name).
    produce_cpu = produce.figures["timed_cpu_s"] / produce.events
    extract_cpu = (ex.figures["timed_cpu_s"] - ex.figures["source_cpu_s"]) / ex.events
    ratios = {
        "extract_vs_raw_produce": extract_net / produce.rate,
        "extract_vs_raw_produce_by_cpu": produce_cpu / max(extract_cpu, 1e-12),
        "extract_with_source_vs_raw_produce": ex.rate / produce.rate,
        "gate_vs_produce_plus_consume": gt.rate / transport,  # one process
        "load_vs_copy": ld.rate / cp.rate,
    }
    gate_cpu = {
        "one_process": {
            "cpu_us_per_event": round(1e6 * gt.cpu_s / gt.events),  # the whole process, start-up included
            "loop_cpu_us_per_event": round(1e6 * gt.figures["loop_cpu_s"] / gt.events),  # the timed section
        }
    }
    if "gate_workers" in stages:
        gw = stages["gate_workers"]
        ratios["gate_workers_vs_produce_plus_consume"] = gw.rate / transport
        ratios["gate_workers_over_one_process"] = gw.rate / gt.rate
        gate_cpu["workers"] = {
            "workers": gw.figures["workers"],
            "cpu_us_per_event": round(1e6 * gw.cpu_s / gw.events),
            "loop_cpu_us_per_event": round(1e6 * gw.figures["loop_cpu_s"] / gw.events),
        }
    # The load's CPU floor: its CPU and its services' (PostgreSQL, Kafka) in one run, spread over
    # every core with no wait. A load that reaches it is CPU-bound on this machine, and what it
    # says against COPY is the best ratio this much CPU per event allows here.
    cores = os.cpu_count() or 1
    load_cpu = ld.figures.get("timed_cpu_s", ld.cpu_s)
    floor_s = (load_cpu + sum(ld.service_cpu_s.values())) / cores
    ratios["load_vs_copy_at_cpu_floor"] = ld.events / max(floor_s, 1e-9) / cp.rate
    cpu_floor = {
        "cores": cores,
        "client_cpu_us_per_event": round(1e6 * load_cpu / ld.events, 1),
        "services_cpu_us_per_event": round(1e6 * sum(ld.service_cpu_s.values()) / ld.events, 1),
        "copy_cpu_us_per_event": round(1e6 * (cp.cpu_s + sum(cp.service_cpu_s.values())) / cp.events, 1),
        "floor_s": round(floor_s, 2),
        "seconds": round(ld.seconds, 2),
    }
    if "connect" in stages:
        ratios["load_vs_connect"] = ld.rate / stages["connect"].rate
        ratios["connect_vs_copy"] = stages["connect"].rate / cp.rate
    return {
        "label": label,
        "events": events,
        "profiled": profiled,
        "end_to_end": {
            "seconds": round(end_to_end, 2),
            "events_per_s": round(events / end_to_end),
            "stage_seconds_sum": round(ex.seconds + gt.seconds + ld.seconds, 2),
        },
        "extract_net_events_per_s": round(extract_net),
        "transport_produce_plus_consume_events_per_s": round(transport),
        "gate_workers": stages["gate_workers"].figures["workers"] if "gate_workers" in stages else 1,
        "gate_cpu": gate_cpu,
        "load_cpu_floor": cpu_floor,
        "stages": {
            name: {
                "events": r.events,
                "seconds": round(r.seconds, 2),
                "events_per_s": round(r.rate),
                "process_wall_s": round(r.wall_s, 2),
                "peak_rss_mib": round(r.peak_rss_mib, 1),
                "cpu_s": round(r.cpu_s, 1),
                "service_cpu_s": r.service_cpu_s,
                **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.figures.items()},
            }
            for name, r in stages.items()
        },
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }


def shichang(rows: int, workdir: Path) -> dict[str, Any]:
    """The 市场监管 day-file scan at ``rows`` rows, through the existing scan bench (own process)."""
    print(f"\n== 市场监管 scan: {rows:,} rows (bench/shichang_scan.py) ==", flush=True)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "shichang_scan.py"), "--rows", str(rows), "--repeat", "1"],
        cwd=ROOT,
        check=True,
    )
    payload = json.loads((RESULTS / "shichang_scan.json").read_text(encoding="utf-8"))
    return payload["results"][0]


# --------------------------------------------------------------------------------------------------
# output


def table(results: list[dict[str, Any]]) -> str:
    """The figures as a fixed-width table."""
    lines = [
        f"{'scenario':<9}{'stage':<13}{'events':>11}{'seconds':>9}{'events/s':>10}{'peak RSS MiB':>14}"
        f"{'CPU s':>8}{'Kafka CPU s':>13}{'PG CPU s':>10}"
    ]
    for r in results:
        for name, s in r["stages"].items():
            cpu = s["service_cpu_s"]
            lines.append(
                f"{r['label']:<9}{name:<13}{s['events']:>11,}{s['seconds']:>9.1f}{s['events_per_s']:>10,}"
                f"{s['peak_rss_mib']:>14.0f}{s['cpu_s']:>8.1f}{cpu.get('kafka', 0):>13.1f}"
                f"{cpu.get('postgres', 0):>10.1f}"
            )
        e2e = r["end_to_end"]
        lines.append(
            f"{r['label']:<9}{'end to end':<13}{r['events']:>11,}{e2e['seconds']:>9.1f}{e2e['events_per_s']:>10,}"
        )
    lines.append("")
    lines.append(
        f"{'scenario':<9}{'extract/produce':>17}{'(by CPU)':>10}{'(with source)':>15}{'gate/(prod+cons)':>18}"
        f"{'N workers':>11}{'load/COPY':>11}"
        f"{'load/Connect':>14}{'Connect/COPY':>14}"
    )
    for r in results:
        q = r["ratios"]
        lines.append(
            f"{r['label']:<9}{q['extract_vs_raw_produce']:>17.2f}{_ratio(q, 'extract_vs_raw_produce_by_cpu'):>10}"
            f"{q['extract_with_source_vs_raw_produce']:>15.2f}"
            f"{q['gate_vs_produce_plus_consume']:>18.2f}{_ratio(q, 'gate_workers_vs_produce_plus_consume'):>11}"
            f"{q['load_vs_copy']:>11.2f}"
            f"{_ratio(q, 'load_vs_connect'):>14}{_ratio(q, 'connect_vs_copy'):>14}"
        )
    lines.append(
        "gate/(prod+cons): the gate in one process; N workers: the same raw topic judged by N gate "
        "processes in one consumer group (N: "
        + ", ".join(f"{r['label']} {r['gate_workers']}" for r in results)
        + ")"
    )
    for r in results:
        c = r["gate_cpu"]
        text = f"{c['one_process']['loop_cpu_us_per_event']} µs one process"
        if "workers" in c:
            text += f", {c['workers']['loop_cpu_us_per_event']} µs over {c['workers']['workers']} workers"
        lines.append(f"{r['label']}: gate CPU per event in the timed sections: {text}")
    for r in results:
        f, q = r.get("load_cpu_floor"), r["ratios"]
        if f:
            lines.append(
                f"{r['label']}: load CPU per event {f['client_cpu_us_per_event']} µs + services "
                f"{f['services_cpu_us_per_event']} µs (COPY: {f['copy_cpu_us_per_event']} µs in all); over "
                f"{f['cores']} cores with no wait that is {f['floor_s']} s against {f['seconds']} s run, "
                f"{q['load_vs_copy_at_cpu_floor']:.2f} × COPY"
            )
    return "\n".join(lines)


def pipelined_scenario(
    endpoints: Endpoints, label: str, events: int, workdir: Path, sequential: dict[str, Any] | None
) -> dict[str, Any]:
    """:mod:`bench.pipelined` on its own topics and database; beside the sequential run of that size."""
    from bench import pipelined

    print(
        f"\n== pipelined {label}: {events:,} events of {MONTH}, the next month streaming in "
        f"(bench at {_elapsed()}) ==",
        flush=True,
    )
    base = {
        **prepare(endpoints, f"{label}p"),
        "label": f"{label}p",
        "events": events,
        "month": MONTH,
        "as_of": AS_OF,
        "seed": 0,
    }
    figures = pipelined.run(base, workdir)
    if figures["loaded"] != figures["events"]:
        print(f"  note: {figures['loaded']:,} of {events:,} events loaded (the rest rejected by the gate)")
    print(
        f"  {'pipelined':<12} {events:>10,} events, first publish → month loaded in "
        f"{figures['first_publish_to_loaded_s']:7.1f} s = {figures['events_per_s']:>9,}/s "
        f"(extract {figures['extract_m_s']} s, judged at {figures['judged_m_after_s']} s, "
        f"load {figures['load_m_s']} s)",
        flush=True,
    )
    if sequential is not None:
        e2e = sequential["end_to_end"]
        figures["sequential_seconds"] = e2e["seconds"]
        figures["sequential_events_per_s"] = e2e["events_per_s"]
        figures["pipelined_over_sequential_rate"] = round(figures["events_per_s"] / e2e["events_per_s"], 2)
        print(
            f"  sequential   {events:>10,} events in {e2e['seconds']:7.1f} s = {e2e['events_per_s']:>9,}/s; "
            f"pipelined ÷ sequential = {figures['pipelined_over_sequential_rate']:.2f}",
            flush=True,
        )
    return {"label": label, **figures}


def _ratio(ratios: dict[str, float], name: str) -> str:
    return f"{ratios[name]:.2f}" if name in ratios else "-"


def memory_ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    """Peak RSS of each stage at the largest scenario over the smallest (1.0 = flat)."""
    if len(results) < 2:
        return {}
    small, large = min(results, key=lambda r: r["events"]), max(results, key=lambda r: r["events"])
    return {
        name: round(large["stages"][name]["peak_rss_mib"] / small["stages"][name]["peak_rss_mib"], 2)
        for name in PIPELINE
    }


def pipelined_labels(choice: str, scenarios: dict[str, int]) -> list[str]:
    """Which scenarios also run pipelined: ``smallest`` (default), ``none`` or labels."""
    if choice == "none" or not scenarios:
        return []
    if choice == "smallest":
        return [min(scenarios, key=lambda label: scenarios[label])]
    labels = [c.strip().lower() for c in choice.split(",") if c.strip()]
    unknown = [c for c in labels if c not in scenarios]
    if unknown:
        raise SystemExit(f"--pipelined: {', '.join(unknown)} not among the scenarios {', '.join(scenarios)}")
    return labels


def parse_events(text: str) -> dict[str, int]:
    """``100k``, ``1m``, ``all`` or a number such as ``20k`` / ``250000`` → {label: events}."""
    if text == "all":
        return dict(SCENARIOS)
    match = re.fullmatch(r"(\d+)([km]?)", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"scenario must be 100k, 1m, all or a number, not {text!r}")
    n = int(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    return {text.lower(): n}


def prepare_peer(cache_dir: Path, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve Kafka Connect and its plugins (once, cached); the stage settings and what it is made of."""
    from bench.peers.connect import Versions, resolve

    versions = Versions()
    print("== resolving the peer (Kafka Connect + Debezium JDBC sink + Apicurio converter) ==", flush=True)
    resolved = resolve(Path(cache_dir), versions)
    if resolved.fetch_seconds:
        print(f"  fetched in {resolved.fetch_seconds:.0f} s into {resolved.libs.parent}", flush=True)
    settings = {
        "libs": str(resolved.libs),
        "plugins": str(resolved.plugins),
        "heap": args.peer_heap,
        "batch_size": args.peer_batch_size,
        "max_poll_records": args.peer_max_poll_records,
        "tasks": args.peer_tasks,
        "insert_mode": args.peer_insert_mode,
    }
    about = {
        "artifacts": {
            "org.apache.kafka:connect-runtime / connect-json / connect-transforms": versions.kafka,
            "io.debezium:debezium-connector-jdbc": versions.debezium,
            "io.apicurio:apicurio-registry-utils-converter": versions.converter,
            "io.apicurio:apicurio-registry-avro-serde-kafka": versions.serde,
            "org.apache.logging.log4j:log4j-core / log4j-slf4j-impl": versions.log4j,
        },
        "mode": "standalone, one worker",
        **{k: v for k, v in settings.items() if k not in ("libs", "plugins")},
    }
    return settings, about


def save_result(name: str, payload: Any) -> Path:
    """Write a bench's figures to ``bench/results/<name>`` (UTF-8 JSON, one trailing newline)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {path.relative_to(ROOT)}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=parse_events, default=parse_events("all"), help="100k, 1m or all")
    parser.add_argument(
        "--shichang-rows", type=int, default=0, help="also run the 市场监管 scan at this many rows (10000000)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile every stage (slower figures)")
    parser.add_argument(
        "--flame",
        action="store_true",
        help="py-spy flame graphs of extract, gate and load into bench/profiles/ (figures not for tables)",
    )
    parser.add_argument(
        "--no-save", action="store_true", help="print only; write nothing under bench/results"
    )
    parser.add_argument(
        "--tag",
        help="write bench/results/<timestamp>-<tag>.json and leave latest.json alone (a side run)",
    )
    parser.add_argument(
        "--pipelined",
        default="smallest",
        help="scenario label(s) to also run pipelined (comma-separated), 'smallest' or 'none'",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip Kafka Connect (bench/peers/connect.py)")
    parser.add_argument("--peer-heap", default="1g", help="the Connect JVM's heap (-Xms = -Xmx)")
    parser.add_argument("--peer-batch-size", type=int, default=2000, help="the JDBC sink's batch.size")
    parser.add_argument(
        "--peer-max-poll-records", type=int, default=2000, help="its consumer's max.poll.records"
    )
    parser.add_argument("--peer-tasks", type=int, default=1, help="the sink's tasks.max")
    parser.add_argument("--peer-insert-mode", default="upsert", choices=("insert", "upsert"))
    parser.add_argument(
        "--gate-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="also judge each scenario's raw topic with this many gate processes (default: the cores; 0: skip)",
    )
    args = parser.parse_args(argv)
    if args.gate_workers < 0:
        parser.error("--gate-workers must be 0 or more")
    if args.tag is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.tag):
        parser.error("--tag takes letters, digits, '.', '_' and '-' (it becomes part of a file name)")
    piped_labels = pipelined_labels(args.pipelined, args.scenario)  # a wrong label fails before the stack
    gate_workers = 0 if args.profile or args.flame else args.gate_workers  # profiled figures: one gate

    from regsync.stack.watchdog import spawn_watchdog

    started = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    peer: dict[str, Any] | None = None
    peer_about: dict[str, Any] | None = None
    piped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="regsync-bench-") as tmp:
        workdir = Path(tmp)
        state_dir = workdir / "stack"
        stack = Stack(
            StackSettings(state_dir=state_dir), report=lambda msg: print(f"  stack: {msg}", flush=True)
        )
        watchdog = spawn_watchdog(os.getpid(), state_dir, purge=True)  # stops the stack if we are killed
        try:
            print("== starting the stack ==", flush=True)
            endpoints = stack.up()
            about = machine(stack, endpoints)
            print(
                f"  {about['cpu_count']} CPU ({about['cpu_model']}), {about['memory_gib']} GiB, "
                f"Kafka {about['kafka']}, Apicurio {about['apicurio_registry']}, PostgreSQL {about['postgres']}",
                flush=True,
            )
            if not args.no_peer:
                peer, peer_about = prepare_peer(stack.settings.cache_dir, args)
            profile_dir = None
            if args.profile:
                profile_dir = RESULTS / "profiles"
                profile_dir.mkdir(parents=True, exist_ok=True)
                (profile_dir / ".gitignore").write_text("*\n", encoding="utf-8")  # binary, machine-bound
            flame_dir = PROFILES if args.flame else None
            per_event_s: float | None = None  # seconds per event of the last scenario, for the estimate
            for label, events in args.scenario.items():
                if per_event_s is not None:
                    print(
                        f"  (bench at {_elapsed()}; {label} should take about "
                        f"{per_event_s * events / 60:.0f} min at the last scenario's pace)",
                        flush=True,
                    )
                began = time.perf_counter()
                results.append(
                    scenario(
                        stack,
                        endpoints,
                        label,
                        events,
                        workdir,
                        profile_dir,
                        peer,
                        flame_dir,
                        gate_workers=gate_workers,
                    )
                )
                per_event_s = (time.perf_counter() - began) / events
            for label in piped_labels:
                same = next((r for r in results if r["label"] == label), None)
                piped.append(pipelined_scenario(endpoints, label, args.scenario[label], workdir, same))
        finally:
            print("\n== stopping the stack ==", flush=True)
            stack.down(purge=True)
            stop_watchdog(watchdog)
        scan = shichang(args.shichang_rows, workdir) if args.shichang_rows else None
    payload = {
        "benchmark": "regsync pipeline",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": about,
        "parameters": {
            "scenarios": args.scenario,
            "month": MONTH,
            "as_of": AS_OF,
            "partitions": max(PARTITIONS, gate_workers),
            "gate_workers": gate_workers,
            "extract_batch_size": 500,
            "gate_max_poll_records": 2000,
            "load_chunk_size": 1000,
            "profiled": args.profile or args.flame,
            "source": "bench.source.SyntheticConnector (distinct institutions and addresses, seed 0)",
        },
        "scenarios": results,
        "peer": peer_about,
        "pipelined": piped,
        "memory_ratio_largest_over_smallest": memory_ratios(results),
        "shichang_scan": scan,
    }
    print("\n" + table(results))
    if payload["memory_ratio_largest_over_smallest"]:
        print(f"\npeak RSS, largest / smallest scenario: {payload['memory_ratio_largest_over_smallest']}")
    if scan:
        print(
            f"市场监管 scan: {scan['rows']:,} rows in {scan['scan_s']} s = {scan['rows_per_s']:,} rows/s, "
            f"{scan['childcare_events']:,} childcare events, peak RSS {scan['peak_rss_mib']} MiB"
        )
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        stamped = RESULTS / f"{started:%Y%m%dT%H%M%SZ}{'-' + args.tag if args.tag else ''}.json"
        stamped.write_text(text, encoding="utf-8")
        if args.tag:
            print(f"written {stamped.relative_to(ROOT)} (latest.json left as it was)")
        else:
            (RESULTS / "latest.json").write_text(text, encoding="utf-8")
            print(f"written {stamped.relative_to(ROOT)} and bench/results/latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
