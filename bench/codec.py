"""Encode and decode rates of the canonical registration event in the Confluent wire format.

``python -m bench.codec [--events 50000] [--repeat 5]``. One core, no I/O: fastavro over the parsed
v1 contract, header included. The event is the fully populated one whose bytes the codec's golden
test pins (every optional field set, a change list and a warning), so the rates are a lower bound
for the events connectors actually produce. Prints a table; writes ``bench/results/codec-latest.json``.

Four paths are timed, because the pipeline uses both ends: the codec alone (Avro dict ↔ bytes), and
with the typed model (``RegistrationEvent.to_avro()`` before encoding, ``from_avro`` after decoding).
The best of ``--repeat`` runs is kept: the slower runs measure the machine's other tenants.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import RegistrationEvent
from schemas.examples import canonical_event

RESULTS = Path(__file__).parent / "results"
TARGET = 100_000  # events/s per core, each direction (issue 3)


def _rate(fn: Callable[[], Any], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return n / best


def measure(events: int, repeat: int) -> dict[str, Any]:
    """Rates of the four paths over ``events`` copies of the canonical event."""
    contract = get_contract(REGISTRATION_EVENT).version(1)
    codec = AvroCodec(contract.schema_str, 7)
    event = canonical_event()
    record = event.to_avro()
    payload = codec.encode(record)
    assert RegistrationEvent.from_avro(codec.decode(payload)) == event  # the paths are real round trips
    records = [record] * events
    models = [event] * events
    payloads = [payload] * events
    rates = {
        "encode": _rate(lambda: [codec.encode(r) for r in records], events, repeat),
        "decode": _rate(lambda: [codec.decode(p) for p in payloads], events, repeat),
        "encode_model": _rate(lambda: [codec.encode(m.to_avro()) for m in models], events, repeat),
        "decode_model": _rate(
            lambda: [RegistrationEvent.from_avro(codec.decode(p)) for p in payloads], events, repeat
        ),
    }
    return {"payload_bytes": len(payload), "events": events, "repeat": repeat, "rates": rates}


def main() -> None:
    """Measure, print, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures = measure(args.events, args.repeat)
    print(f"canonical RegistrationEvent v1, {figures['payload_bytes']} bytes framed; target ≥ {TARGET:,}/s")
    print(f"{'path':<14}{'events/s':>12}  vs target")
    for path, rate in figures["rates"].items():
        print(f"{path:<14}{rate:>12,.0f}  {rate / TARGET:5.2f}×")
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "versions": {"fastavro": fastavro.__version__},
        **figures,
    }
    (RESULTS / "codec-latest.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
