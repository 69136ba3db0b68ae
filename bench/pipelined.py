"""Pipelined end to end: the stages running as deployed, side by side, while the next month streams in.

The sequential figure of :mod:`bench.run` runs extract, gate and load one after another. Deployed,
they overlap: the gate judges while the registrar pushes, and the load of a closed month runs while
the next month's pushes keep coming. This scenario (own topics and database, like the others):

1. starts extract of month M (``events`` events, pushed at the end of M) and a gate that keeps judging
   until told to stop (``run_gate`` until idle, started again whenever it goes idle);
2. when extract of M is done, starts extract of month M+1 (``events`` more, pushed at the end of M+1);
3. as soon as every record of M has a verdict (``unjudged`` is empty: what the load itself checks),
   starts the load of M, while M+1 still streams and the gate still judges;
4. stops timing when the load of M has committed, then stops extract of M+1 and the gate (SIGTERM:
   not measured, and draining M+1 would only lengthen ``make bench``; the topics are throwaway).

Reported: seconds from the first record on the raw topic to month M loaded, M's events per second
over that span, and the same for the sequential scenario of the same size in the same run.

``python -m bench.pipelined gate '<json>'`` is the long-running gate (a child of :func:`run`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NEXT_MONTH = "2026-02"
NEXT_AS_OF = "2026-02-28T15:00:00+00:00"  # 23:00 in Shanghai on the last day of NEXT_MONTH


def _child(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stage(cfg: dict[str, Any], workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = workdir / f"{cfg['label']}-pipelined-{name}.json"
    proc = _child(["bench.stages", json.dumps({**cfg, "out": str(out)})], workdir / f"pipelined-{name}.log")
    return proc, out


def _raw_records(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def _log_tail(workdir: Path, name: str, lines: int = 30) -> str:
    """The end of a child's log, so a failed child says why (its folder is deleted after the run)."""
    try:
        text = (workdir / f"pipelined-{name}.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait(proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"pipelined: {what} did not finish in {timeout:.0f} s") from None
    if code != 0:
        raise RuntimeError(f"pipelined: {what} failed with exit code {code}")


def run(base: dict[str, Any], workdir: Path, timeout: float = 1800.0) -> dict[str, Any]:
    """The pipelined scenario over ``base`` (a prepared scenario of :mod:`bench.run`); its figures."""
    from regsync.kafka.topics import Topics
    from regsync.stages.load import unjudged

    events = int(base["events"])
    topics = Topics(prefix=base["prefix"], partitions=base["partitions"])
    stop_file = workdir / f"{base['label']}-pipelined-gate.stop"
    procs: list[subprocess.Popen[bytes]] = []
    load_avg = [os.getloadavg()]
    try:
        began = time.perf_counter()
        extract_m, _ = _stage({**base, "stage": "extract"}, workdir, "extract-m")
        gate_cfg = {**base, "stop_file": str(stop_file), "out": str(workdir / "pipelined-gate.json")}
        gate = _child(["bench.pipelined", "gate", json.dumps(gate_cfg)], workdir / "pipelined-gate.log")
        procs += [extract_m, gate]
        first = None
        while first is None:
            if _raw_records(base["bootstrap"], topics.raw):
                first = time.perf_counter()
            elif extract_m.poll() is not None:
                raise RuntimeError(
                    f"pipelined: extract of M ended (exit {extract_m.returncode}) before publishing anything:\n"
                    + _log_tail(workdir, "extract-m")
                )
            else:
                time.sleep(0.1)
        _wait(extract_m, "extract of M", timeout)
        extracted_m = time.perf_counter()
        # The synthetic registrar keeps its state (events emitted): asking for 2n continues after n.
        next_cfg = {
            **base,
            "stage": "extract",
            "events": 2 * events,
            "month": NEXT_MONTH,
            "as_of": NEXT_AS_OF,
        }
        extract_next, _ = _stage(next_cfg, workdir, "extract-next")
        procs.append(extract_next)
        while unjudged(base["bootstrap"], topics, base["month"], "Asia/Shanghai"):
            if gate.poll() is not None:
                raise RuntimeError(f"pipelined: the gate ended with exit code {gate.returncode}")
            time.sleep(0.2)
        judged_m = time.perf_counter()
        load_avg.append(os.getloadavg())
        load, load_out = _stage({**base, "stage": "load", "expected": events}, workdir, "load-m")
        procs.append(load)
        _wait(load, "load of M", timeout)
        loaded_m = time.perf_counter()
        load_avg.append(os.getloadavg())
        next_running = extract_next.poll() is None
        loaded = json.loads(load_out.read_text(encoding="utf-8"))
    finally:
        stop_file.write_text("stop")
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    span = loaded_m - first
    return {
        "events": events,
        "loaded": int(loaded["events"]),
        "first_publish_to_loaded_s": round(span, 2),
        "events_per_s": round(events / span),
        "extract_m_s": round(extracted_m - first, 2),
        "judged_m_after_s": round(judged_m - first, 2),
        "load_m_s": round(loaded_m - judged_m, 2),
        "load_m_own_s": round(float(loaded["seconds"]), 2),
        "next_month_still_streaming_at_load_end": next_running,
        "process_start_to_first_publish_s": round(first - began, 2),
        "loadavg": [[round(x, 2) for x in sample] for sample in load_avg],
    }


def gate_main(cfg: dict[str, Any]) -> None:
    """Judge until the stop file exists and the raw topic is judged (``run_gate`` until idle, again)."""
    from regsync.kafka.topics import Topics
    from regsync.stages.gate import run_gate

    stop = Path(cfg["stop_file"])
    consumed = valid = runs = 0
    while True:
        stopping = stop.exists()  # read before the run: a stop written during it means one more pass
        counts = run_gate(
            bootstrap=cfg["bootstrap"],
            registry_url=cfg["registry_url"],
            database_url=cfg["database_url"],
            topics=Topics(prefix=cfg["prefix"], partitions=cfg["partitions"]),
            until_idle=True,
        )
        consumed, valid, runs = consumed + counts.consumed, valid + counts.valid, runs + 1
        if stopping:
            break
        if not counts.consumed:
            time.sleep(0.2)
    Path(cfg["out"]).write_text(json.dumps({"consumed": consumed, "valid": valid, "runs": runs}))


if __name__ == "__main__":
    if sys.argv[1] != "gate":
        raise SystemExit("usage: python -m bench.pipelined gate '<json config>'")
    gate_main(json.loads(sys.argv[2]))
