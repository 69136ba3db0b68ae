"""Chaos run (issue 13): a seeded world through the real pipeline under random SIGKILLs, then reconciliation.

    python -m bench.chaos --kills 50 --out bench/results/chaos.json     (make chaos)

A stack of its own (Kafka, registry, PostgreSQL) is started under ``--root``. Months of a seeded world
(simulators/) are played: the five registrars publish, each source is extracted, the gate judges,
the month is loaded — every stage as a ``regsync`` subprocess, exactly as Airflow runs it. A random
plan SIGKILLs stage processes (a timer at a random instant of the stage's run), and now and then the
broker or PostgreSQL instead, restarted after the attempt. A stage is re-run until it succeeds (an
operator's, or Airflow's, retry). Every attempt has a deadline: a process still running then counts
as a hang and is killed.

Reconciliation, per stage:
- extract: source ground truth (childcare records the simulators published) → ``registrations.raw``
  by event id (lost = neither on raw nor in the connector DLQ; duplicated = extra copies on raw);
- gate: every raw record → exactly one output on valid or rejected (by raw partition/offset);
- load: every valid event pushed in a loaded month → the filing store (by event id).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil

SOURCES = ("bianzhi", "minzheng", "shichang", "shenpi", "jiaoyu")
PREFIX = "chaos."
ATTEMPT_DEADLINE_S = 180.0
MAX_ATTEMPTS = 15
STARTUP_S = 1.5  # interpreter + imports before a stage does anything
#: Named crash points (regsync/faults.py): a kill at the delicate step itself, not at a random instant.
CRASH_POINTS = {
    "extract": ("extract.after_ack", "extract.after_commit"),
    "gate": ("gate.before_commit", "gate.after_commit"),
    "load": ("load.in_transaction",),
}


@dataclass
class StageStats:
    runs: int = 0
    attempts: int = 0
    kills: int = 0
    crash_point_kills: int = 0
    infra_kills: int = 0
    failed_exits: int = 0
    hangs: int = 0
    seconds: float = 0.0


@dataclass
class Chaos:
    seed: int
    kills_planned: int
    stats: dict[str, StageStats] = field(default_factory=dict)
    broker_kills: int = 0
    postgres_kills: int = 0
    events: list[str] = field(default_factory=list)

    def stage(self, kind: str) -> StageStats:
        return self.stats.setdefault(kind, StageStats())

    @property
    def kills(self) -> int:
        return sum(s.kills for s in self.stats.values())


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)


class Driver:
    def __init__(self, root: Path, seed: int, kills: int, brokers: int, say: Any = print) -> None:
        from regsync.settings import StackSettings
        from regsync.stack.launcher import Stack

        self.root = root.absolute()
        self.rng = random.Random(seed)
        self.chaos = Chaos(seed, kills)
        self.say = say
        self.stack = Stack(StackSettings(state_dir=self.root / "stack", brokers=brokers))
        self.estimate: dict[str, float] = {"extract": 3.0, "gate": 3.0, "load": 3.0}
        self.env: dict[str, str] = {}

    # infrastructure ---------------------------------------------------------------------------
    def _infra_kill(self) -> str | None:
        """SIGKILL a broker or PostgreSQL; returns what was killed (restarted after the attempt)."""
        records = self.stack._load()
        if self.rng.random() < 0.5:
            kafka = [n for n in records if n.startswith("kafka")]
            name = self.rng.choice(kafka)
            self.chaos.broker_kills += 1
        else:
            name = "postgres"
            self.chaos.postgres_kills += 1
        rec = records[name]
        _kill_tree(rec.pid)
        if name == "postgres":
            Path(rec.extra["data"], "postmaster.pid").unlink(missing_ok=True)
        return name

    def _restore(self) -> None:
        self.stack.up()

    # one stage, retried until it succeeds ---------------------------------------------------------
    def run_stage(self, kind: str, args: list[str], kills: int, crash_points: bool = True) -> int:
        """Run ``regsync <args>`` until it exits 0, killing ``kills`` times on the way; returns kills left.

        A timer that fires after the process has already finished kills nothing: those kills are
        handed to the next stage run, so the total planned is reached.
        """
        stats = self.chaos.stage(kind)
        stats.runs += 1
        began = time.monotonic()
        for _attempt in range(MAX_ATTEMPTS):
            stats.attempts += 1
            kill_now = kills > 0 and _attempt < MAX_ATTEMPTS - 1  # the last attempt always runs clean
            infra = kill_now and self.rng.random() < 0.15
            crash_at = None
            if crash_points and kill_now and not infra and self.rng.random() < 0.4:
                crash_at = f"{self.rng.choice(CRASH_POINTS[kind])}:{self.rng.randint(1, 2)}"
            timer = kill_now and crash_at is None
            delay = STARTUP_S + self.rng.uniform(0.0, self.estimate[kind]) if timer else None
            env = {**self.env, "REGSYNC_CRASH_AT": crash_at} if crash_at else self.env
            t0 = time.monotonic()
            # stderr to a file, not a pipe: a chatty process must never block on a full pipe.
            errfile = self.root / "last-stderr.txt"
            with errfile.open("w") as errs:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "regsync", *args],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=errs,
                )
            killed_what = None
            try:
                if delay is not None:
                    try:
                        proc.wait(delay)
                    except subprocess.TimeoutExpired:
                        if infra:
                            # An outage of a few seconds, then the service is back (as a supervisor
                            # would bring it back); the stage must ride it out or fail, not hang.
                            killed_what = self._infra_kill()
                            time.sleep(self.rng.uniform(1.0, 8.0))
                            self._restore()
                        else:
                            proc.send_signal(signal.SIGKILL)
                try:
                    _out, err = proc.communicate(timeout=ATTEMPT_DEADLINE_S)
                except subprocess.TimeoutExpired:
                    stats.hangs += 1
                    self.chaos.events.append(
                        f"HANG {kind} {' '.join(args)} (killed after {ATTEMPT_DEADLINE_S:.0f}s)"
                    )
                    _kill_tree(proc.pid)
                    _out, err = proc.communicate()
            finally:
                if killed_what is not None:
                    stats.infra_kills += 1
                    self._restore()  # idempotent: in case the attempt itself died with the restart
            took = time.monotonic() - t0
            self.say(
                f"    exit {proc.returncode} after {took:.1f}s"
                + (f" ({killed_what} killed)" if killed_what else "")
            )
            if proc.returncode == 0:
                self.estimate[kind] = max(0.5, 0.5 * self.estimate[kind] + 0.5 * (took - STARTUP_S))
                stats.seconds += time.monotonic() - began
                return kills
            if proc.returncode == -signal.SIGKILL and killed_what is None:
                stats.kills += 1
                stats.crash_point_kills += crash_at is not None
                kills -= 1
            elif killed_what is not None:
                # A broker/PostgreSQL kill comes on top of the stage kills: the budget stays.
                self.chaos.events.append(
                    f"{kind} {' '.join(args)}: {killed_what} killed → exit {proc.returncode}"
                )
            else:
                stats.failed_exits += 1
                err = errfile.read_text(errors="replace")
                last = err.strip().splitlines()[-1:] or [""]
                self.chaos.events.append(f"{kind} {' '.join(args)}: exit {proc.returncode}: {last[0][:200]}")
        raise RuntimeError(f"{kind} {' '.join(args)} did not succeed in {MAX_ATTEMPTS} attempts")

    # the world ------------------------------------------------------------------------------------
    def play(self, months: tuple[str, ...], per_month: int) -> dict[str, Any]:
        import shutil

        from pydantic import SecretStr

        from regsync import jobs
        from regsync.demo import _month_after, _simulators
        from regsync.kafka.topics import Topics, ensure_topics
        from regsync.settings import Settings, StackSettings
        from regsync.stack.watchdog import spawn_watchdog
        from simulators.world import WorldConfig, build_world

        self.stack.down(purge=True)
        shutil.rmtree(self.root / "sim", ignore_errors=True)
        spawn_watchdog(os.getpid(), self.stack.state_dir, purge=False)
        ends = self.stack.up()
        assert ends.database_url is not None
        settings = Settings(
            kafka_bootstrap=ends.bootstrap_servers,
            registry_url=ends.registry_url,
            database_url=SecretStr(ends.database_url),
            topic_prefix=PREFIX,
            stack=StackSettings(state_dir=self.stack.state_dir),
        )
        ensure_topics(ends.bootstrap_servers, Topics(prefix=PREFIX))
        jobs.prepare(settings)
        world = build_world(WorldConfig(months=months, institutions_per_month=per_month))
        sims = _simulators(world, self.root / "sim")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")},
            "REGSYNC_KAFKA_BOOTSTRAP": ends.bootstrap_servers,
            "REGSYNC_REGISTRY_URL": ends.registry_url,
            "REGSYNC_DATABASE_URL": ends.database_url,
            "REGSYNC_TOPIC_PREFIX": PREFIX,
            "REGSYNC_SOURCES__BIANZHI_URL": sims["bianzhi"].url,
            "REGSYNC_SOURCES__SHENPI_URL": sims["shenpi"].url,
            "REGSYNC_SOURCES__MINZHENG_URL": sims["minzheng"].base_url,
            "REGSYNC_SOURCES__MINZHENG_TOKEN": sims["minzheng"].token,
            "REGSYNC_SOURCES__SHICHANG_DROP_DIR": str(sims["shichang"].inbox),
            "REGSYNC_SOURCES__JIAOYU_FEED": str(sims["jiaoyu"].feed),
        }
        self.env = {k: str(v) for k, v in self.env.items() if v is not None}
        tz = ZoneInfo(settings.timezone)
        plan: list[tuple[str, list[str], datetime | None]] = []
        for month in months:
            nxt = _month_after(month)
            first_of_next = datetime.fromisoformat(f"{nxt}-01T00:00:00").replace(tzinfo=tz)
            extract_at = first_of_next - timedelta(hours=6)
            load_at = (first_of_next + timedelta(hours=1)).astimezone(UTC).isoformat()
            for name in SOURCES:
                args = ["extract", "-s", name, "--as-of", extract_at.astimezone(UTC).isoformat()]
                plan.append(("extract", args, extract_at))
            plan.append(("gate", ["gate"], None))
            plan.append(("load", ["load", "--month", month, "--as-of", load_at], None))
        # Spread the kills over the stage runs at random (every kill lands on some stage run).
        kills_per_step = Counter(self.rng.randrange(len(plan)) for _ in range(self.chaos.kills_planned))
        carried = 0
        try:
            for i, (kind, args, publish_at) in enumerate(plan):
                if publish_at is not None:
                    sims[args[2]].publish_until(publish_at)
                kills = kills_per_step[i] + carried
                self.say(f"[{i + 1}/{len(plan)}] regsync {' '.join(args)} (kills {kills})")
                carried = self.run_stage(kind, args, kills)
            # Kills the planned runs could not take (a crash point the run never reached): spend them
            # on extra gate and load runs, killed by the timer (an idle run reaches no crash point).
            extra = [("gate", ["gate"]), ("load", plan[-1][1])]
            idle = 0
            while carried and idle < 15:
                kind, args = extra[idle % 2]
                self.say(f"[extra] regsync {' '.join(args)} (kills {carried})")
                left = self.run_stage(kind, args, carried, crash_points=False)
                idle = idle + 1 if left == carried else 0
                carried = left
            result = reconcile(ends.bootstrap_servers, ends.registry_url, ends.database_url, sims, months, tz)
        finally:
            for sim in sims.values():
                sim.close()
        return result


def reconcile(
    bootstrap: str, registry_url: str, database_url: str, sims: dict[str, Any], months, tz
) -> dict[str, Any]:
    """Ground truth → raw → valid + rejected → store: lost and duplicated per stage."""
    import sqlalchemy as sa

    from regsync.kafka import bus
    from regsync.kafka.topics import Topics

    topics = Topics(prefix=PREFIX)
    expected: dict[str, tuple[str, str]] = {}
    for name, sim in sims.items():
        for line in sim.ground_truth():
            if line["childcare"]:
                expected[line["event_id"]] = (name, line["record_id"])
    raw = list(bus.scan(bootstrap, topics.raw, {}))
    raw_ids = Counter(bus.header(r, "regsync.event_id") for r in raw)
    rejected = list(bus.scan(bootstrap, topics.rejected, {}))
    connector_dlq = {
        (bus.header(r, "regsync.source"), (r.key or b"").decode("utf-8", "replace"))
        for r in rejected
        if bus.header(r, "regsync.rule_ids") == "SOURCE_UNREADABLE"
    }
    missing_raw = [e for e, src in expected.items() if e not in raw_ids and src not in connector_dlq]
    extract = {
        "expected_events": len(expected),
        "raw_records": len(raw),
        "raw_distinct_event_ids": len(raw_ids),
        "in_connector_dlq": sum(
            1 for e, src in expected.items() if e not in raw_ids and src in connector_dlq
        ),
        "lost": len(missing_raw),
        "duplicated": sum(n - 1 for n in raw_ids.values() if n > 1),
        "unexpected": sum(1 for e in raw_ids if e not in expected),
    }
    outputs: Counter[tuple[int, int]] = Counter()
    valid = list(bus.scan(bootstrap, topics.valid, {}))
    for r in valid:
        outputs[
            (
                int(bus.header(r, "regsync.raw_partition") or -1),
                int(bus.header(r, "regsync.raw_offset") or -1),
            )
        ] += 1
    for r in rejected:
        if bus.header(r, "__connect.errors.topic") == topics.raw:
            outputs[
                (
                    int(bus.header(r, "__connect.errors.partition") or -1),
                    int(bus.header(r, "__connect.errors.offset") or -1),
                )
            ] += 1
    positions = {(r.partition, r.offset) for r in raw}
    gate = {
        "raw_records": len(positions),
        "outputs": sum(outputs.values()),
        "lost": sum(1 for p in positions if p not in outputs),
        "duplicated": sum(n - 1 for n in outputs.values() if n > 1),
    }
    from schemas.events import RegistrationEvent

    codecs = bus.load_codecs(registry_url, topics)
    loaded_months = set(months)
    want_store: Counter[str] = Counter()
    for r in valid:
        pushed = datetime.fromtimestamp(r.timestamp / 1000, tz).strftime("%Y-%m")
        if pushed in loaded_months:
            want_store[RegistrationEvent.from_avro(codecs.valid.decode(r.value)).event_id] += 1
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = Counter(e for (e,) in conn.execute(sa.text("SELECT event_id FROM institution_events")))
    finally:
        engine.dispose()
    load = {
        "valid_events_in_loaded_months": len(want_store),
        "stored_events": sum(stored.values()),
        "lost": sum(1 for e in want_store if e not in stored),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1),
        "valid_duplicates_by_event_id": sum(n - 1 for n in want_store.values() if n > 1),
    }
    return {"extract": extract, "gate": gate, "load": load}


def run_chaos(
    *,
    seed: int,
    kills: int,
    months: tuple[str, ...],
    per_month: int,
    brokers: int,
    root: Path,
    say: Any = print,
) -> dict[str, Any]:
    driver = Driver(root, seed, kills, brokers, say)
    began = time.monotonic()
    try:
        reconciliation = driver.play(months, per_month)
    finally:
        driver.stack.down(purge=True)
    c = driver.chaos
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "months": list(months),
        "institutions_per_month": per_month,
        "brokers": brokers,
        "kills_planned": kills,
        "kills": {
            "stage_sigkills": c.kills,
            "broker": c.broker_kills,
            "postgres": c.postgres_kills,
            "per_stage": {k: asdict(v) for k, v in c.stats.items()},
        },
        "reconciliation": reconciliation,
        "hangs": sum(s.hangs for s in c.stats.values()),
        "events": c.events,
        "seconds": round(time.monotonic() - began, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--kills", type=int, default=50, help="stage SIGKILLs (broker/PostgreSQL kills come on top)"
    )
    parser.add_argument("--months", default="2026-01,2026-02,2026-03")
    parser.add_argument("--per-month", type=int, default=40)
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path(".regsync/chaos"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"))
    args = parser.parse_args(argv)
    result = run_chaos(
        seed=args.seed,
        kills=args.kills,
        months=tuple(args.months.split(",")),
        per_month=args.per_month,
        brokers=args.brokers,
        root=args.root,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        json.dumps({k: result[k] for k in ("kills", "reconciliation", "hangs")}, indent=2, ensure_ascii=False)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
