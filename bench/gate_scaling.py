"""Gate workers: 1 vs 2 processes in one consumer group over the same raw topic, same run.

The raw topic (6 partitions, the default of ``topic_partitions``) is filled once by extract
(:mod:`bench.stages`); then the gate judges all of it with 1 worker, with 2, with 1, with 2
(interleaved, so a shared machine's load falls on both alike), each trial in a fresh consumer
group. A trial's figures: wall seconds from starting the workers to the last one exiting, events/s
over that, the workers' CPU seconds (``wait4``, their whole process: imports and start-up
included) and the broker's CPU seconds. From the per-worker CPU per event the report derives what
N workers should reach on a machine with enough cores, bounded by the raw partitions.

    python -m bench.gate_scaling [--events 100000] [--state-dir DIR]   # DIR: reuse a running stack
    python -m bench.gate_scaling --baseline-tree /tmp/gate-main ...     # A/B: that tree's gate vs ours

With ``--baseline-tree`` (a checkout of another revision, e.g. ``git archive main``; repeatable),
every round runs each worker count with each tree's gate and with this one's, alternately (the
order reversed every other round), on the same raw topic; the summary then has the medians per
tree (named by its folder) and the ratios current ÷ each.

Writes ``bench/results/gate_scaling.json`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import AS_OF, MONTH, ROOT, machine, run_stage, save_result, service_cpu, stop_watchdog
from bench.stages import stage_peak_rss_mib
from regsync.settings import StackSettings
from regsync.stack.launcher import Endpoints, Stack

PARTITIONS = 6


def prepare(endpoints: Endpoints) -> dict[str, Any]:
    """Own topics (6 partitions), subjects and database, named by a short uuid."""
    import sqlalchemy as sa

    from regsync.kafka import bus
    from regsync.kafka.topics import Topics, ensure_topics

    uid = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"benchscale{uid}.", partitions=PARTITIONS)
    ensure_topics(endpoints.bootstrap_servers, topics)
    bus.register_schemas(endpoints.registry_url, topics)
    assert endpoints.database_url is not None
    name = f"bench_scale_{uid}"
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
        "partitions": PARTITIONS,
    }


def trial(
    stack: Stack, base: dict[str, Any], workers: int, workdir: Path, tree: Path = ROOT, name: str = "current"
) -> dict[str, Any]:
    """All of raw judged by ``workers`` gate processes (instances 0…N-1) of ``tree`` in a fresh group."""
    group = f"bench-scale-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    outs = [workdir / f"{group}-{i}.json" for i in range(workers)]
    before = service_cpu(stack)
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.stages",
                json.dumps(
                    {
                        **base,
                        "stage": "gate",
                        "label": f"gate-{workers}w-{i}",
                        "group_id": group,
                        "instance": i,
                        "out": str(outs[i]),
                    }
                ),
            ],
            cwd=tree,
            env=env,
        )
        for i in range(workers)
    ]
    cpu, peak_rss_mib = 0.0, 0.0
    try:
        for proc, out in zip(procs, outs, strict=True):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"a gate worker of the {workers}-worker trial failed ({proc.returncode})")
            cpu += usage.ru_utime + usage.ru_stime
            reported = json.loads(out.read_text(encoding="utf-8"))
            peak_rss_mib = max(peak_rss_mib, stage_peak_rss_mib(reported, usage))
    except BaseException:
        for proc in procs:  # no worker outlives a failed trial
            if proc.returncode is None:
                proc.kill()
                proc.wait()
        raise
    wall = time.perf_counter() - began
    after = service_cpu(stack)
    figures = [json.loads(o.read_text(encoding="utf-8")) for o in outs]
    events = sum(int(f["events"]) for f in figures)
    loop_cpu = sum(float(f["loop_cpu_s"]) for f in figures)
    if events != base["events"]:
        raise RuntimeError(f"{workers} workers judged {events} of {base['events']} raw records")
    # The workers' timed sections together: from the first one's start to the last one's end (wall
    # clock; interpreter start-up and imports left out, as in bench.run's one-process gate figure).
    # A baseline tree's bench.stages may not report the span: then the wall figures only.
    spans = [(float(f["began_at"]), float(f["ended_at"])) for f in figures if "began_at" in f]
    timed = max(e for _, e in spans) - min(b for b, _ in spans) if len(spans) == len(figures) else wall
    result = {
        "tree": name,
        "workers": workers,
        "events": events,
        "valid": sum(int(f["valid"]) for f in figures),
        "rejected": sum(int(f["rejected"]) for f in figures),
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall),
        "timed_s": round(timed, 2),
        "timed_events_per_s": round(events / timed),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "workers_cpu_s": round(cpu, 2),
        "workers_loop_cpu_s": round(loop_cpu, 2),
        "cpu_us_per_event": round(1e6 * cpu / events),
        "loop_cpu_us_per_event": round(1e6 * loop_cpu / events),
        "per_worker_events": [int(f["events"]) for f in figures],
        "kafka_cpu_s": round(after.get("kafka", 0.0) - before.get("kafka", 0.0), 2),
        "postgres_cpu_s": round(after.get("postgres", 0.0) - before.get("postgres", 0.0), 2),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"  {name:8} {workers} worker(s): {events:,} in {wall:6.1f} s = {events / wall:7,.0f}/s   "
        f"CPU {cpu:6.1f} s ({result['cpu_us_per_event']} µs/event, loop {result['loop_cpu_us_per_event']})"
        f"   Kafka CPU {result['kafka_cpu_s']} s   split {result['per_worker_events']}",
        flush=True,
    )
    return result


def summarise(trials: list[dict[str, Any]], cpus: int) -> dict[str, Any]:
    """Medians per worker count, the 2-vs-1 speed-up, and what N workers should do given N cores."""
    by: dict[int, list[dict[str, Any]]] = {}
    for t in trials:
        by.setdefault(t["workers"], []).append(t)
    med = {
        n: {
            "events_per_s": statistics.median(t["events_per_s"] for t in ts),
            "cpu_us_per_event": statistics.median(t["cpu_us_per_event"] for t in ts),
            "loop_cpu_us_per_event": statistics.median(t["loop_cpu_us_per_event"] for t in ts),
            "kafka_cpu_us_per_event": statistics.median(1e6 * t["kafka_cpu_s"] / t["events"] for t in ts),
        }
        for n, ts in sorted(by.items())
    }
    one, two = med[1], med[2]
    # One worker on a core of its own judges 1e6 / loop-CPU-per-event records a second; N workers
    # on N free cores, N × that, less the per-event CPU that two workers add over one (rebalances,
    # twice the transactions and start-ups), and never more than one worker per raw partition.
    per_worker = 1e6 / one["loop_cpu_us_per_event"]
    efficiency = one["loop_cpu_us_per_event"] / two["loop_cpu_us_per_event"]
    kafka_us = statistics.median([one["kafka_cpu_us_per_event"], two["kafka_cpu_us_per_event"]])
    expected = {
        str(n): round(min(n, PARTITIONS) * per_worker * (efficiency if n > 1 else 1.0))
        for n in (1, 2, 4, 6, 8)
    }
    return {
        "median": {str(n): m for n, m in med.items()},
        "speedup_2_over_1": round(two["events_per_s"] / one["events_per_s"], 2),
        "cpu_per_event_2_over_1": round(two["cpu_us_per_event"] / one["cpu_us_per_event"], 2),
        "per_worker_events_per_cpu_s": round(per_worker),
        "cpu_efficiency_2_workers": round(efficiency, 2),
        "expected_events_per_s_with_n_free_cores": expected,
        "broker_cores_needed_at_6_workers": round(expected["6"] * kafka_us / 1e6, 2),
        "cores_here": cpus,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="1-worker/2-worker pairs, interleaved")
    parser.add_argument("--state-dir", type=Path, help="reuse the stack running there (else start one)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        action="append",
        default=[],
        help="A/B: also run the gate of this source tree (repeatable; named by its folder)",
    )
    args = parser.parse_args(argv)
    from regsync.stack.watchdog import spawn_watchdog

    started = datetime.now(UTC)
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="regsync-bench-scale-") as tmp:
        workdir = Path(tmp)
        own = args.state_dir is None
        state_dir = workdir / "stack" if own else args.state_dir
        stack = Stack(StackSettings(state_dir=state_dir), report=lambda m: print(f"  stack: {m}", flush=True))
        watchdog = spawn_watchdog(os.getpid(), state_dir, purge=True) if own else None
        try:
            endpoints = stack.up()
            about = machine(stack, endpoints)
            base = {
                **prepare(endpoints),
                "label": "scale",
                "events": args.events,
                "month": MONTH,
                "as_of": AS_OF,
                "seed": 0,
            }
            print(f"== gate scaling: {args.events:,} raw events over {PARTITIONS} partitions ==", flush=True)
            run_stage(stack, {**base, "stage": "extract"}, workdir)
            trees = [*((t.resolve().name, t.resolve()) for t in args.baseline_tree), ("current", ROOT)]
            for round_ in range(args.rounds):
                for workers in (1, 2):
                    order = trees if round_ % 2 == 0 else trees[::-1]  # none always goes first
                    for name, tree in order:
                        trials.append(trial(stack, base, workers, workdir, tree, name))
        finally:
            if own:
                stack.down(purge=True)
                if watchdog is not None:
                    stop_watchdog(watchdog)
    summary = summarise([t for t in trials if t["tree"] == "current"], os.cpu_count() or 1)
    for tree in args.baseline_tree:
        name = tree.resolve().name
        baseline = summarise([t for t in trials if t["tree"] == name], os.cpu_count() or 1)
        summary.setdefault("baselines", {})[name] = baseline
        summary.setdefault("current_over_baseline", {})[name] = {
            n: {
                "events_per_s": round(m["events_per_s"] / baseline["median"][n]["events_per_s"], 2),
                "cpu_us_per_event": round(
                    m["cpu_us_per_event"] / baseline["median"][n]["cpu_us_per_event"], 2
                ),
            }
            for n, m in summary["median"].items()
        }
    payload = {
        "benchmark": "gate workers, 1 vs 2",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**about, "platform": platform.platform()},
        "parameters": {
            "events": args.events,
            "partitions": PARTITIONS,
            "rounds": args.rounds,
            "baseline_trees": [str(t) for t in args.baseline_tree],
        },
        "trials": trials,
        "summary": summary,
    }
    print(json.dumps(summary, indent=2))
    if not args.no_save:
        save_result("gate_scaling.json", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
