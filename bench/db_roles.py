"""What the least-privilege database role costs the monthly load: the owner vs ``<prefix>pipeline``.

The same ``load_month`` (``bench.sink_load.measure``: a synthetic month, chunks of 1000) into two
fresh databases on one PostgreSQL server, one loaded as the owner (superuser in the local stack) and
one as the pipeline role after ``apply_roles``; the rounds alternate (owner, role, owner, role, …)
so the shared machine's load falls on both alike. Also times ``apply_roles`` itself (create roles,
revoke and grant 19 tables). Roles and databases are made with a uuid and dropped afterwards.

Run: ``.venv/bin/python -m bench.db_roles --database-url postgresql+psycopg://…/postgres [--events N]
[--rounds R]`` (an admin URL of an existing server: the shared stack's, say), else a throwaway stack
is started and stopped. Writes ``bench/results/db_roles.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.sink_load import measure, postgres  # noqa: E402
from regsync.bookkeeping.roles import apply_roles  # noqa: E402
from regsync.jobs import migrate_database  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "db_roles.json"


def _database(admin: sa.Engine, base: str, name: str) -> str:
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return base.rsplit("/", 1)[0] + f"/{name}"


def run(server_url: str, events: int, rounds: int) -> dict[str, Any]:
    """Alternate owner and role loads ``rounds`` times each; events/s per round and the medians."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    prefix = f"b{uuid.uuid4().hex[:8]}_"
    made: list[str] = []
    rates: dict[str, list[int]] = {"owner": [], "pipeline role": []}
    grant_s: list[float] = []
    try:
        for i in range(rounds):
            for who in ("owner", "pipeline role"):
                name = f"bench_roles_{uuid.uuid4().hex[:8]}"
                url = _database(admin, server_url, name)
                made.append(url)
                migrate_database(url)
                if who == "pipeline role":
                    owner = sa.create_engine(url)
                    began = time.perf_counter()
                    with owner.begin() as conn:
                        applied = apply_roles(conn, prefix=prefix, passwords={})
                    grant_s.append(time.perf_counter() - began)
                    owner.dispose()
                    url = sa.make_url(url).set(username=applied.roles["pipeline"]).render_as_string(False)
                result = measure(url, who, events, 1000)
                rates[who].append(result["events_per_s"])
                print(f"  round {i + 1}: {who:<14} {result['events_per_s']:>8,} events/s", file=sys.stderr)
    finally:
        for url in made:
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                roles = ", ".join(f'"{prefix}{c}"' for c in ("pipeline", "portal", "reader"))
                exists = conn.scalar(
                    sa.text("SELECT count(*) FROM pg_roles WHERE rolname LIKE :p"), {"p": f"{prefix}%"}
                )
                if exists:
                    conn.execute(sa.text(f"DROP OWNED BY {roles}"))
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
        with admin.connect() as conn:
            for c in ("pipeline", "portal", "reader"):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{prefix}{c}"'))
        admin.dispose()
    return {
        "events": events,
        "rounds": rounds,
        "events_per_s": rates,
        "median_events_per_s": {k: round(statistics.median(v)) for k, v in rates.items()},
        "apply_roles_s": [round(s, 3) for s in grant_s],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an admin URL of an existing PostgreSQL server")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with postgres(args.database_url) as url:
        result = run(url, args.events, args.rounds)
    medians = result["median_events_per_s"]
    print(f"{'loaded as':<16}{'median events/s':>16}  per round")
    for who, rates in result["events_per_s"].items():
        print(f"{who:<16}{medians[who]:>16,}  {', '.join(f'{r:,}' for r in rates)}")
    print(f"apply_roles (3 roles, every table): {', '.join(f'{s:.2f}s' for s in result['apply_roles_s'])}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "db_roles",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
