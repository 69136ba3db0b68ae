"""The gate's record rules alone (no Kafka): events/s of ``evaluate_many`` on realistic events.

Events come from the simulated world (:mod:`simulators.world`: several prefectures, faults injected,
every institution its own address), built the way a connector builds them (IDs and phones masked,
county from the address or the stated premises code, extraction time = when the record surfaced).
Judged twice: with empty caches (a gate that just started, or a province backfill where nothing
repeats) and warm (the same events again). Reports events per CPU second and per wall second.
Target (``quality.record_checks``): more than 10,000 events/s on one core. Timed both on the typed
model (``evaluate_many``) and on the decoded mappings the gate judges (``evaluate_many_avro``).

Then the gate's whole pure path, :func:`regsync.stages.gate.judge_records` — decode, judge, encode
the valid or the DLQ record, build the headers; everything the gate does per batch except the Kafka
calls — in batches of 2,000 (the gate's ``max_poll_records``), A/B in the same run: the baseline
encodes ``to_avro`` dicts with codecs whose schema strings are not interned (the path before
issue 12), the current one ``to_wire`` dicts with interned codecs (same bytes: see
``tests/unit/test_wire_identity.py``). The two alternate round by round, best of ``--repeat``.

This is the measurement ``tests/unit/test_record_checks.py`` used to print. Run:
``.venv/bin/python -m bench.gate_rules [--events 50000] [--repeat 3]``; writes
``bench/results/gate_rules.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from connectors.base import Connector, legal_representative  # noqa: E402
from quality import record_checks  # noqa: E402
from quality.record_checks import evaluate_many, evaluate_many_avro  # noqa: E402
from regsync.kafka.bus import Codecs  # noqa: E402  (isort: bench wiring, after the layers it times)
from regsync.kafka.topics import Topics  # noqa: E402
from regsync.stages import gate  # noqa: E402
from schemas import codec as codec_module  # noqa: E402
from schemas.codec import AvroCodec  # noqa: E402
from schemas.contracts import REGISTRATION_EVENT, REJECTED_RECORD, get_contract  # noqa: E402
from schemas.events import (  # noqa: E402
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    Lineage,
    ProfitNature,
    RegistrationEvent,
    RejectedRecord,
    ServiceForm,
)
from simulators.world import SourceRecord, WorldConfig, build_world  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gate_rules.json"
TARGET = 10_000
_ENTITY = {
    "12": (LegalForm.PUBLIC_INSTITUTION, ProfitNature.NON_PROFIT),
    "52": (LegalForm.PRIVATE_NON_ENTERPRISE, ProfitNature.NON_PROFIT),
    "91": (LegalForm.ENTERPRISE, ProfitNature.FOR_PROFIT),
    "92": (LegalForm.INDIVIDUAL_BUSINESS, ProfitNature.FOR_PROFIT),
}


def to_event(record: SourceRecord) -> RegistrationEvent:
    """One world record as a connector would publish it on ``registrations.raw``."""
    snap = record.snapshot
    county, resolution = Connector.resolve_county(snap.address, snap.stated_division)
    form, nature = _ENTITY.get(snap.uscc[:2], (LegalForm.OTHER, ProfitNature.UNKNOWN))
    rep = snap.legal_rep
    moves = (EventType.MOVED_IN, EventType.MOVED_OUT)
    return RegistrationEvent.build(
        event_type=record.event_type,
        registrar=record.registrar,
        event_date=record.event_date,
        extracted_at=record.surfaced_at,
        institution=Institution(
            uscc=snap.uscc,
            name=snap.name,
            legal_form=form,
            profit_nature=nature,
            address=snap.address,
            business_scope=snap.scope,
            status=InstitutionStatus(snap.status),
            county_code=county,
            county_resolution=resolution,
            legal_representative=legal_representative(
                rep.name, rep.id_number, rep.phone, record.surfaced_at.date()
            ),
            registered_capital=Decimal(snap.capital_wan),
            service_forms=tuple(ServiceForm(f) for f in snap.service_forms) or None,
            capacity=snap.capacity,
        ),
        lineage=Lineage(record.registrar.value.lower(), record.record_id, str(record.version), "bench"),
        changed_fields=tuple(FieldChange(f, old, new) for f, old, new in record.changed),
        jurisdiction=JurisdictionMove(record.moved_from, record.moved_to)
        if record.event_type in moves
        else None,
    )


BATCH = 2_000


class _Consumed(NamedTuple):
    """The fields of a consumed Kafka record that the gate's pure path reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int
    headers: list[tuple[str, bytes]]


def _codecs(*, baseline: bool) -> Codecs:
    def make(name: str) -> AvroCodec:
        schema = get_contract(name).latest.schema_str
        if baseline:  # the codec before issue 12: schema strings as json.loads made them
            with mock.patch.object(codec_module, "_interned", lambda node: node):
                return AvroCodec(schema, 1)
        return AvroCodec(schema, 1)

    return Codecs(
        raw=make(REGISTRATION_EVENT), valid=make(REGISTRATION_EVENT), rejected=make(REJECTED_RECORD)
    )


def pure_path(events: list[RegistrationEvent], repeat: int) -> dict[str, Any]:
    """events per CPU second of ``judge_records`` over ``events`` as raw records, baseline vs current."""
    topics = Topics()
    codecs = {"current": _codecs(baseline=False), "baseline": _codecs(baseline=True)}
    raw = codecs["current"].raw
    records = [
        _Consumed(topics.raw, i % 6, i, e.kafka_key, raw.encode(e.to_wire()), e.kafka_timestamp_ms, [])
        for i, e in enumerate(events)
    ]
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    config = record_checks.GateConfig()

    def run(which: str, *, cold: bool) -> tuple[float, float]:
        counts = gate.GateCounts()
        if cold:
            record_checks.clear_caches()  # a gate that just started: nothing resolved yet
        wall, cpu = time.perf_counter(), time.process_time()
        if which == "baseline":
            with (
                mock.patch.object(RegistrationEvent, "to_wire", RegistrationEvent.to_avro),
                mock.patch.object(RejectedRecord, "to_wire", RejectedRecord.to_avro),
            ):
                for batch in batches:
                    gate.judge_records(batch, codecs[which], config, topics, "bench", counts)
        else:
            for batch in batches:
                gate.judge_records(batch, codecs[which], config, topics, "bench", counts)
        assert counts.valid + counts.rejected == len(records)
        return time.process_time() - cpu, time.perf_counter() - wall

    runs = [(which, cold) for which in codecs for cold in (True, False)]  # warm runs right after a cold one
    best = dict.fromkeys(runs, (float("inf"), float("inf")))
    for _ in range(repeat):
        for which, cold in runs:
            cpu, wall = run(which, cold=cold)
            best[which, cold] = (min(best[which, cold][0], cpu), min(best[which, cold][1], wall))
    n = len(records)
    return {
        f"{which}_{'cold' if cold else 'warm'}": {
            "events_per_cpu_s": round(n / cpu),
            "events_per_s": round(n / wall),
        }
        for (which, cold), (cpu, wall) in best.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    months = tuple(f"2025-{m:02d}" for m in range(1, 13))
    per_month = max(1, args.events * 2 // (3 * len(months)))  # ~1.5 events per institution
    began = time.perf_counter()
    world = build_world(WorldConfig(seed=11, months=months, institutions_per_month=per_month))
    events = [to_event(r) for r in world.records[: args.events]]
    build_s = time.perf_counter() - began

    def run() -> tuple[float, float, list[Any]]:
        wall, cpu = time.perf_counter(), time.process_time()
        verdicts = evaluate_many(events)
        return time.perf_counter() - wall, time.process_time() - cpu, verdicts

    record_checks.clear_caches()
    cold_wall, cold_cpu, verdicts = run()
    warm_wall, warm_cpu, _ = run()
    n = len(events)
    raw = _codecs(baseline=False).raw
    mappings = [raw.decode(raw.encode(e.to_wire())) for e in events]

    def run_mapping() -> float:
        cpu = time.process_time()
        judged = evaluate_many_avro(mappings)
        spent = time.process_time() - cpu
        assert [v.rule_ids for v in judged] == [v.rule_ids for v in verdicts]  # same findings
        return spent

    record_checks.clear_caches()
    map_cold_cpu = run_mapping()
    map_warm_cpu = run_mapping()
    rules = Counter(v.rule_id for verdict in verdicts for v in verdict.violations)
    result: dict[str, Any] = {
        "benchmark": "gate_rules",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": n,
        "world_build_s": round(build_s, 2),
        "distinct_county_address": len({(e.institution.county_code, e.institution.address) for e in events}),
        "rejected": sum(not v.accepted for v in verdicts),
        "cold_events_per_cpu_s": round(n / cold_cpu),
        "cold_events_per_s": round(n / cold_wall),
        "warm_events_per_cpu_s": round(n / warm_cpu),
        "warm_events_per_s": round(n / warm_wall),
        "target_events_per_s": TARGET,
        "meets_target": n / cold_cpu >= TARGET,
        "mapping_cold_events_per_cpu_s": round(n / map_cold_cpu),
        "mapping_warm_events_per_cpu_s": round(n / map_warm_cpu),
        "findings_by_rule": dict(rules.most_common()),
    }
    paths = pure_path(events, args.repeat)
    result["pure_path"] = paths
    print(
        f"gate rules on {n:,} world events ({result['distinct_county_address']:,} distinct county/address "
        f"pairs, {result['rejected']:,} rejected): cold caches {result['cold_events_per_cpu_s']:,} events/s CPU "
        f"({result['cold_events_per_s']:,} wall), warm {result['warm_events_per_cpu_s']:,} events/s CPU "
        f"({result['warm_events_per_s']:,} wall); target ≥ {TARGET:,}: {'met' if result['meets_target'] else 'MISSED'}"
    )
    print(
        f"gate rules on the decoded mappings (evaluate_many_avro, what the gate runs): cold "
        f"{result['mapping_cold_events_per_cpu_s']:,} events/s CPU, warm {result['mapping_warm_events_per_cpu_s']:,}"
    )
    for key, figures in paths.items():
        print(
            f"gate pure path (decode → judge → encode, batches of {BATCH:,}), {key}: "
            f"{figures['events_per_cpu_s']:,} events/s CPU ({figures['events_per_s']:,} wall)"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
