"""What TLS + SASL cost the stages: extract and gate on a plain and a ``--secure`` stack, one run.

``python -m bench.secure --events 20000 --rounds 2`` starts (or reuses) two local stacks side by
side, a plain one and a secure one, and runs extract then gate on each, alternating plain/secure
per round (A/B/A/B) so a neighbour's load on a shared machine hits both modes alike. On the secure
stack every stage logs in as its own principal (the stack's ``client.env``), as a deployment would.
Each stage runs in its own process (:func:`bench.run.run_stage`). Results: a table on stdout and
``bench/results/secure-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from bench.run import AS_OF, MONTH, RESULTS, run_stage  # noqa: E402
from regsync.settings import StackSettings, get_settings  # noqa: E402
from regsync.stack.launcher import Endpoints, Stack  # noqa: E402

STAGES = ("extract", "gate")


def client_env(endpoints: Endpoints) -> dict[str, str]:
    """The secure stack's ``client.env`` (one principal per component); {} for a plain stack."""
    if endpoints.kafka_secrets_dir is None:
        return {}
    lines = (Path(endpoints.kafka_secrets_dir) / "client.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (for this process's clients and the stage processes) for a while."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def prepare(endpoints: Endpoints, label: str) -> dict[str, Any]:
    """A run's own topics, subjects and database (the caller has the mode's environment set)."""
    import sqlalchemy as sa

    from regsync.kafka import bus
    from regsync.kafka.topics import Topics, ensure_topics

    uid = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"bench{label}{uid}.", partitions=6)
    ensure_topics(endpoints.bootstrap_servers, topics)
    bus.register_schemas(endpoints.registry_url, topics)
    if endpoints.kafka_secrets_dir is not None:
        from kafka import KafkaAdminClient

        from regsync.stack import kafka_acls

        admin = KafkaAdminClient(**bus.security("admin"), bootstrap_servers=endpoints.bootstrap_servers)
        try:
            kafka_acls.apply(admin, kafka_acls.grants(topics.prefix))
        finally:
            admin.close()
    assert endpoints.database_url is not None
    name = f"bench_{label}_{uid}"
    engine = sa.create_engine(endpoints.database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return {
        "bootstrap": endpoints.bootstrap_servers,
        "registry_url": endpoints.registry_url,
        "database_url": endpoints.database_url.rsplit("/", 1)[0] + f"/{name}",
        "prefix": topics.prefix,
        "partitions": topics.partitions,
        "month": MONTH,
        "as_of": AS_OF,
        "seed": 7,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="synthetic events per run")
    parser.add_argument("--rounds", type=int, default=2, help="plain/secure pairs, alternated")
    parser.add_argument("--plain-state-dir", type=Path, help="reuse (or start) the plain stack here")
    parser.add_argument("--secure-state-dir", type=Path, help="reuse (or start) the secure stack here")
    args = parser.parse_args(argv)

    throwaway = Path(tempfile.mkdtemp(prefix="regsync-bench-secure-"))
    stacks = {
        "plain": Stack(StackSettings(state_dir=args.plain_state_dir or throwaway / "plain")),
        "secure": Stack(StackSettings(state_dir=args.secure_state_dir or throwaway / "secure", secure=True)),
    }
    started_here = [
        m for m, d in (("plain", args.plain_state_dir), ("secure", args.secure_state_dir)) if d is None
    ]
    rows: list[dict[str, Any]] = []
    try:
        endpoints = {mode: stack.up() for mode, stack in stacks.items()}
        if endpoints["plain"].kafka_secrets_dir is not None:
            raise SystemExit(f"{stacks['plain'].state_dir} was started secure; give a plain state folder")
        workdir = throwaway / "work"
        workdir.mkdir(exist_ok=True)
        for round_ in range(args.rounds):
            for mode in ("plain", "secure") if round_ % 2 == 0 else ("secure", "plain"):
                with environment(client_env(endpoints[mode])):
                    cfg = {**prepare(endpoints[mode], mode), "events": args.events}
                    print(f"round {round_ + 1} {mode}", flush=True)
                    for stage in STAGES:
                        label = f"{mode}{round_}"
                        result = run_stage(stacks[mode], {**cfg, "stage": stage, "label": label}, workdir)
                        rows.append(
                            {"round": round_ + 1, "mode": mode, "rate": result.rate, **asdict(result)}
                        )
    finally:
        for mode in started_here:
            stacks[mode].down(purge=True)
    summary = {
        stage: {
            mode: median(r["rate"] for r in rows if r["stage"] == stage and r["mode"] == mode)
            for mode in ("plain", "secure")
        }
        for stage in STAGES
    }
    print(f"\n{'stage':<8} {'plain/s':>10} {'secure/s':>10} {'secure/plain':>13}  (medians of {args.rounds})")
    for stage, rates in summary.items():
        print(
            f"{stage:<8} {rates['plain']:>10,.0f} {rates['secure']:>10,.0f} {rates['secure'] / rates['plain']:>12.0%}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"secure-{stamp}.json"
    payload = {"events": args.events, "rounds": args.rounds, "median_rate": summary, "runs": rows}
    out.write_text(json.dumps(payload, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
