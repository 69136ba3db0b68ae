"""The portal under a large county: p95 of its pages and the roster API's paging rate.

A county (370102) with 20,000 institutions and 200,000 events, in a province of 100,000
institutions, generated straight into the filing store's tables (COPY on PostgreSQL) from one
realistic event document per institution (:func:`sink.synthetic.make_event`). The portal runs in
uvicorn (one process, like ``regsync serve``) on a loopback port; an HTTP client measures, after one warm-up request each:

* p50/p95 of the county inbox, an institution page, the filing-gap list and public 公示 searches
  (target: p95 < 200 ms on the 2-core machine);
* paging the roster API through the province's 100,000 institutions (target ≥ 5,000 rows/s).

Run: ``.venv/bin/python -m bench.portal [--store postgres|sqlite] [--database-url URL]``; writes
``bench/results/portal.json``. PostgreSQL without ``--database-url`` starts a throwaway stack.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from schemas.events import EventType, Registrar  # noqa: E402
from sink.eventjson import event_to_json  # noqa: E402
from sink.models import filings, institution_events, institutions, load_manifests  # noqa: E402
from sink.store import insert_rows  # noqa: E402
from sink.synthetic import make_event, uscc_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "portal.json"
COUNTY = "370102"
OTHERS = ("370103", "370104", "370105", "370112", "370113", "370181", "370211", "370212")
MONTHS = tuple(f"2025-{m:02d}" for m in range(1, 13))
PASSWORD = "bench-password-1"
TYPES = [t.value for t in (EventType.ESTABLISHED, EventType.CHANGED, EventType.CHANGED, EventType.CHANGED)]


def populate(engine: sa.Engine, n_inst: int, n_county: int, n_events: int, seed: int = 3) -> dict[str, Any]:
    """Institutions (``n_county`` in the county), ``n_events`` events of the county, filings for half."""
    rng = random.Random(seed)
    began = time.perf_counter()
    per = max(1, n_events // n_county)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    county_usccs: list[str] = []
    with engine.begin() as conn:
        conn.execute(
            load_manifests.insert(),
            [
                {
                    "month": m,
                    "topic": "registrations.valid",
                    "offset_ranges": {},
                    "records": 0,
                    "inserted": 0,
                    "duplicates": 0,
                    "institutions_touched": 0,
                    "late": 0,
                    "checksum": "0" * 64,
                    "loaded_at": now,
                    "run_id": "bench",
                }
                for m in MONTHS
            ],
        )
    inst_rows: list[dict[str, Any]] = []
    ev_rows: list[dict[str, Any]] = []
    fil_rows: list[dict[str, Any]] = []
    offset = 0

    def flush(final: bool = False) -> None:
        if len(inst_rows) >= 10_000 or len(ev_rows) >= 20_000 or final:
            with engine.begin() as conn:
                insert_rows(conn, institutions, inst_rows)
                insert_rows(conn, institution_events, ev_rows)
                insert_rows(conn, filings, fil_rows)
            inst_rows.clear()
            ev_rows.clear()
            fil_rows.clear()

    for i in range(n_inst):
        county = COUNTY if i < n_county else OTHERS[i % len(OTHERS)]
        uscc = uscc_for(i, division=county[:4] + "00", registrar=Registrar.SHICHANG)
        established = date(2025, 1, 1) + timedelta(days=rng.randrange(330))
        event = make_event(uscc, event_date=established, county=county, name=f"济南市第{i}托育服务有限公司")
        doc = event_to_json(event)
        inst_rows.append(
            {
                "uscc": uscc,
                "name": doc["institution"]["name"],
                "legal_form": "ENTERPRISE",
                "profit_nature": "FOR_PROFIT",
                "address": doc["institution"]["address"],
                "county_code": county,
                "county_resolution": "STATED",
                "status": "ACTIVE",
                "childcare": True,
                "childcare_since": established,
                "business_scope": "托育服务",
                "registered_capital": None,
                "capital_currency": None,
                "service_forms": "FULL_DAY",
                "capacity": 30 + i % 90,
                "legal_rep_name": "张三",
                "legal_rep_id_masked": "370102********1234",
                "legal_rep_phone_masked": "138****5678",
                "registrars": "SHICHANG",
                "first_registration_date": established,
                "last_event_id": event.event_id,
                "last_event_date": established,
                "last_event_type": "ESTABLISHED",
                "last_topic": "registrations.valid",
                "last_partition": i % 6,
                "last_offset": offset,
                "first_load_month": MONTHS[0],
                "last_load_month": MONTHS[-1],
            }
        )
        if county == COUNTY:
            county_usccs.append(uscc)
            for k in range(per):
                month = MONTHS[min(11, (established.month - 1) + k // 3)]
                pushed = datetime.fromisoformat(f"{month}-15T10:00:00+08:00") + timedelta(
                    minutes=rng.randrange(20000)
                )
                offset += 1
                ev_rows.append(
                    {
                        "event_id": f"{uscc}-{k:04d}",
                        "uscc": uscc,
                        "event_type": TYPES[min(k, 3)] if k < 4 else "CHANGED",
                        "registrar": "SHICHANG",
                        "event_date": established + timedelta(days=k),
                        "extracted_at": pushed,
                        "pushed_at": pushed,
                        "county_code": COUNTY,
                        "load_month": month,
                        "kafka_topic": "registrations.valid",
                        "kafka_partition": i % 6,
                        "kafka_offset": offset,
                        "late": rng.random() < 0.1,
                        "event_json": doc,
                    }
                )
        if rng.random() < 0.5:
            fil_rows.append(
                {
                    "filing_number": f"BA{i:07d}",
                    "uscc": uscc,
                    "county_code": county,
                    "filed_date": established + timedelta(days=20),
                    "status": "已备案",
                    "source_file": "bench",
                    "imported_at": now,
                }
            )
        flush()
    flush(final=True)
    if engine.dialect.name == "postgresql":  # what autovacuum does to a store that has settled
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    return {"seconds": round(time.perf_counter() - began, 1), "county_usccs": county_usccs}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(client: httpx.Client, paths: list[str], label: str) -> dict[str, Any]:
    client.get(paths[0]).raise_for_status()  # warm-up
    times = []
    for path in paths:
        began = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        r.raise_for_status()
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(f"  {label:<28} n={len(times):>3}  p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")
    return {"n": len(times), "p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1)}


def measure(
    url: str, out_dir: Path, n_inst: int, n_county: int, n_events: int, samples: int
) -> dict[str, Any]:
    """Populate, serve, and time the pages and the API."""
    import os
    import subprocess

    from portal import accounts
    from portal.db import open_engine

    engine = open_engine(url)
    print(f"populating {n_inst:,} institutions ({n_county:,} in {COUNTY}), {n_events:,} events…", flush=True)
    made = populate(engine, n_inst, n_county, n_events)
    print(f"  populated in {made['seconds']} s", flush=True)
    accounts.add_user(engine, "bench_bureau", "bureau", COUNTY, PASSWORD)
    _, token = accounts.add_token(engine, "bench", "37")
    engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "REGSYNC_PORTAL_DATABASE_URL": url,
        "REGSYNC_PORTAL_SESSION_SECRET": "bench-session-secret",
        "REGSYNC_PORTAL_OUTPUT_DIR": str(out_dir),
    }
    # The server in its own process (one uvicorn worker, as `regsync serve` runs it): the client's
    # work does not share its interpreter lock.
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "portal.app:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the portal did not start") from None
            time.sleep(0.1)  # polling a starting server, not hiding a race
    rng = random.Random(5)
    results: dict[str, Any] = {"populate_s": made["seconds"]}
    try:
        with httpx.Client(base_url=base, timeout=60) as web:
            page = web.get("/login").text
            csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            web.post("/login", data={"username": "bench_bureau", "password": PASSWORD, "csrf": csrf})
            usccs = rng.sample(made["county_usccs"], samples)
            results["inbox"] = _timed(
                web, [f"/inbox?month={MONTHS[i % 12]}" for i in range(samples)], "inbox (month)"
            )
            results["inbox_unseen"] = _timed(
                web,
                [f"/inbox?month={MONTHS[i % 12]}&status=unseen" for i in range(samples)],
                "inbox (unseen filter)",
            )
            results["institution"] = _timed(web, [f"/institutions/{u}" for u in usccs], "institution page")
            results["gap"] = _timed(
                web, [f"/gap?sort=-days&page={1 + i % 5}" for i in range(samples)], "filing gap list"
            )
            results["public_search"] = _timed(
                web,
                [
                    f"/public?q=第{rng.randrange(n_inst)}托育" if i % 2 else f"/public?q={rng.choice(usccs)}"
                    for i in range(samples)
                ],
                "public search (name/USCC)",
            )
            results["public_region"] = _timed(
                web,
                [f"/public?region={COUNTY}&page={1 + i}" for i in range(samples)],
                "public by county, paged",
            )
        with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as api:
            for limit in (1000, 5000):
                began, rows, cursor = time.perf_counter(), 0, ""
                while True:
                    body = api.get(f"/api/v1/institutions?limit={limit}&after={cursor}").json()
                    rows += len(body["items"])
                    if not body["next"]:
                        break
                    cursor = body["next"]
                seconds = time.perf_counter() - began
                rate = rows / seconds
                print(
                    f"  roster API, limit {limit:<5}      {rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s"
                )
                results[f"api_limit_{limit}"] = {
                    "rows": rows,
                    "seconds": round(seconds, 2),
                    "rows_per_s": round(rate),
                }
    finally:
        server.terminate()
        server.wait(10)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--database-url", help="an existing, empty PostgreSQL database (default: a throwaway stack)"
    )
    parser.add_argument("--institutions", type=int, default=100_000)
    parser.add_argument("--county-institutions", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="regsync-bench-portal-") as tmp:
        if args.store == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'portal.db'}"
            figures = measure(
                url, Path(tmp), args.institutions, args.county_institutions, args.events, args.samples
            )
        else:
            from bench.sink_load import postgres

            with postgres(args.database_url) as url:
                figures = measure(
                    url, Path(tmp), args.institutions, args.county_institutions, args.events, args.samples
                )
    record = {
        "store": args.store,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "institutions": args.institutions,
        "county_institutions": args.county_institutions,
        "events": args.events,
        "figures": figures,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    existing[args.store] = record
    RESULTS.write_text(json.dumps(existing, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
