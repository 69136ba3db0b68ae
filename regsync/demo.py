"""``regsync demo``: the whole pipeline, end to end, on the embedded defaults.

Starts its own stack (Kafka, Apicurio Registry, PostgreSQL) in ``.regsync/demo``, seeds the five
registrar simulators from one reproducible world, and replays several months on the as-of clock:
each month every registrar's records surface, every source is extracted, the gate judges, and after
the month closes it is loaded, checked by the Great Expectations suites, reported and packaged per
county. The health side's filings arrive too, so the report shows the filing gap. It prints a
summary and stops the stack; data and outputs stay for inspection (``--keep-stack`` keeps it up).
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from regsync import jobs, sources
from regsync.settings import Settings, StackSettings
from regsync.stack.launcher import Stack

Say = Callable[[str], None]
SOURCES = ("bianzhi", "minzheng", "shichang", "shenpi", "jiaoyu")


@dataclass(slots=True)
class DemoSummary:
    """What the demo did, for the closing table."""

    months: list[str]
    extracted: dict[str, int] = field(default_factory=dict)
    not_childcare: dict[str, int] = field(default_factory=dict)
    connector_dlq: dict[str, int] = field(default_factory=dict)
    judged: int = 0
    valid: int = 0
    rejected: int = 0
    loaded: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    packages: dict[str, int] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)
    suites_passed: dict[str, str] = field(default_factory=dict)
    output_dir: Path | None = None
    seconds: float = 0.0


def _simulators(world: Any, root: Path) -> dict[str, Any]:
    from simulators.bianzhi_db import BianzhiDb
    from simulators.jiaoyu_feed import JiaoyuFeed
    from simulators.minzheng_api import MinzhengApiSimulator
    from simulators.shenpi_db import ShenpiDb
    from simulators.shichang_files import ShichangFiles

    return {
        "bianzhi": BianzhiDb(world, root / "bianzhi"),
        "minzheng": MinzhengApiSimulator(world, root / "minzheng"),
        "shichang": ShichangFiles(world, root / "shichang"),
        "shenpi": ShenpiDb(world, root / "shenpi"),
        "jiaoyu": JiaoyuFeed(world, root / "jiaoyu"),
    }


def _month_after(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return f"{year + (mon == 12)}-{mon % 12 + 1:02d}"


def _write_filings(world: Any, path: Path, upto: datetime, seed: int) -> int:
    """The health side's filing export, as the 备案信息系统 would write it.

    Most registered institutions file within weeks; a few filings match no registration (备案未登记).
    """
    from schemas.events import EventType

    rng = random.Random(seed)
    rows = []
    for record in world.records:
        if record.event_type is not EventType.ESTABLISHED or not record.childcare:
            continue
        filed = record.event_date + timedelta(days=rng.randint(5, 60))
        if rng.random() < 0.7 and datetime.combine(filed, datetime.min.time(), ZoneInfo("UTC")) <= upto:
            rows.append(
                [
                    record.snapshot.uscc,
                    f"BA{record.record_id}",
                    filed.isoformat(),
                    record.county_code or "",
                    "已备案",
                ]
            )
    for i in range(3):
        from schemas.uscc import random_uscc

        rows.append(
            [
                random_uscc(rng, registrar="5", category="2", division6="441800"),
                f"BAX{i:04d}",
                "2026-01-15",
                "441802",
                "已备案",
            ]
        )
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["统一社会信用代码", "备案编号", "备案日期", "县级行政区划代码", "状态"])
        writer.writerows(rows)
    return len(rows)


def run_demo(
    *,
    root: Path = Path(".regsync/demo"),
    months: tuple[str, ...] = ("2026-01", "2026-02", "2026-03", "2026-04"),
    per_month: int = 60,
    keep_stack: bool = False,
    say: Say = print,
) -> DemoSummary:
    """Play ``months`` of registrar activity through the real pipeline and report each month."""
    import shutil

    import sqlalchemy as sa

    from simulators.world import WorldConfig, build_world
    from sink.filing import import_filings
    from sink.store import upgrade

    began = time.monotonic()
    root = root.absolute()
    stack = Stack(StackSettings(state_dir=root / "stack"), report=lambda m: say(f"  {m}"))
    stack.down(purge=True)  # a demo starts from a clean slate
    for sub in ("sim", "output"):
        shutil.rmtree(root / sub, ignore_errors=True)
    summary = DemoSummary(list(months), output_dir=root / "output")
    say("starting the stack (Kafka, schema registry, PostgreSQL)…")
    endpoints = stack.up()
    sims: dict[str, Any] = {}
    try:
        settings = Settings(
            kafka_bootstrap=endpoints.bootstrap_servers,
            registry_url=endpoints.registry_url,
            database_url=SecretStr(endpoints.database_url) if endpoints.database_url else None,
            output_dir=root / "output",
            stack=StackSettings(state_dir=root / "stack"),
        )
        jobs.prepare(settings)
        world = build_world(WorldConfig(months=months, institutions_per_month=per_month))
        sims = _simulators(world, root / "sim")
        tz = ZoneInfo(settings.timezone)
        database_url = endpoints.database_url or ""
        upgrade(database_url)
        for month in (*months, _month_after(months[-1])):
            next_month = _month_after(month)
            first_of_next = datetime.fromisoformat(f"{next_month}-01T00:00:00").replace(tzinfo=tz)
            extract_at = first_of_next - timedelta(hours=6)
            say(f"{month}: registrars publish, connectors extract (as of {extract_at:%Y-%m-%d %H:%M})")
            for name in SOURCES:
                sims[name].publish_until(extract_at)
                done = jobs.extract(name, extract_at, settings, connector=sources.for_simulator(sims[name]))
                summary.extracted[name] = summary.extracted.get(name, 0) + done.published
                summary.not_childcare[name] = summary.not_childcare.get(name, 0) + done.not_childcare
                summary.connector_dlq[name] = summary.connector_dlq.get(name, 0) + done.invalid
            counts = jobs.gate(settings)
            summary.judged += counts.consumed
            summary.valid += counts.valid
            summary.rejected += counts.rejected
            say(f"{month}: gate judged {counts.consumed} → valid {counts.valid}, rejected {counts.rejected}")
            if month not in months:
                break  # the trailing month only brings late pushes of the last one into Kafka
            filings_csv = root / "sim" / f"filings-{month}.csv"
            _write_filings(world, filings_csv, first_of_next, seed=len(month))
            engine = sa.create_engine(database_url)
            try:
                import_filings(engine, filings_csv)
            finally:
                engine.dispose()
            loaded = jobs.load(month, first_of_next + timedelta(hours=1), settings)
            summary.loaded[month] = loaded.inserted
            summary.late[month] = loaded.late
            outcomes, report_path = jobs.quality_and_report(month, settings)  # the month is read once
            findings = sum(len(o.failed) for o in outcomes)
            summary.suites_passed[month] = (
                f"{sum(o.success for o in outcomes)}/{len(outcomes)} ({findings} finding{'s' * (findings != 1)})"
            )
            summary.reports[month] = report_path
            summary.packages[month] = len(jobs.export(month, settings))
            say(
                f"{month}: loaded {loaded.inserted} events ({loaded.late} late), suites passed "
                f"{summary.suites_passed[month]}, {summary.packages[month]} county packages"
            )
    finally:
        for sim in sims.values():
            sim.close()
        if not keep_stack:
            say("stopping the stack…")
            stack.down()
    summary.seconds = time.monotonic() - began
    return summary
