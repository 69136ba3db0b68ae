"""Encode and decode rates of the canonical registration event in the Confluent wire format.

``python -m bench.codec [--events 50000] [--repeat 5] [--callgrind 2000]``. One core, no I/O:
fastavro over the parsed v1 contract, header included. The event is the fully populated one whose
bytes the codec's golden test pins (every optional field set, a change list and a warning), so the
rates are a lower bound for the events connectors actually produce. Prints a table; writes
``bench/results/codec-latest.json``.

Paths timed, because the pipeline uses both ends: the codec alone (Avro dict ↔ bytes) and with the
typed model (``to_wire()``/``to_avro()`` before encoding, ``from_avro`` after decoding). Each is
also timed on a *baseline* codec built the way the codec was before issue 12 (schema strings not
interned, fastavro's public ``schemaless_writer``/``schemaless_reader``, plain ``to_avro`` dicts
whose unions fastavro must try branch by branch), and ``*_public_api`` on the codec as it was
before it called fastavro's compiled core directly, in the same run, so the A/B does not depend on
what else the machine was doing. Batches: ``decode_many``/``encode_many`` in batches of 1, 100,
500 and 2,000, and ``decode_array_N``, an experiment kept here because it did not earn its place
in the codec: N bodies concatenated into one Avro array (count + items + 0) read by one fastavro
call. Rates are per CPU second
(``time.process_time``, best of ``--repeat``): the machine is shared, and CPU time is what a busy
neighbour disturbs least. ``--callgrind N`` also counts instructions per event under valgrind
(repeatable under load; slow, so N is small).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import fastavro

from schemas import codec as codec_module
from schemas.codec import HEADER_SIZE, AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import RegistrationEvent
from schemas.examples import canonical_event
from sink.synthetic import synthetic_month

RESULTS = Path(__file__).parent / "results"
TARGET = 60_000  # events/s per core, each direction (issue 12)


BATCH_SIZES = (1, 100, 500, 2000)


def _baseline_codec(schema: str, schema_id: int) -> AvroCodec:
    """The codec as it was before issue 12: schema strings as ``json.loads`` made them, and
    fastavro's public calls."""
    with (
        mock.patch.object(codec_module, "_interned", lambda node: node),
        mock.patch.object(codec_module, "_CORE", None),
    ):
        return AvroCodec(schema, schema_id)


def _public_api_codec(schema: str, schema_id: int) -> AvroCodec:
    """The codec before it called fastavro's compiled core directly (interned, public calls)."""
    with mock.patch.object(codec_module, "_CORE", None):
        return AvroCodec(schema, schema_id)


def _zigzag(value: int) -> bytes:
    """Avro's long encoding (zig-zag varint) — three lines, so not worth a dependency."""
    value, out = (value << 1) ^ (value >> 63), bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _array_decoder(schema: dict[str, Any]) -> Callable[[list[bytes]], list[Any]]:
    """The batch-as-one-Avro-array experiment: N bodies → count + bodies + 0 → one fastavro read."""
    array = {"type": "array", "items": schema}

    def decode(batch: list[bytes]) -> list[Any]:
        body = b"".join([_zigzag(len(batch)), *[p[HEADER_SIZE:] for p in batch], b"\x00"])
        stream = io.BytesIO(body)
        records: list[Any] = fastavro.schemaless_reader(stream, array, None)
        if stream.tell() != len(body):  # the only whole-batch check it has (see bench/README.md)
            raise ValueError("array read did not end at the end of the batch")
        return records

    return decode


def _drain(results: Iterable[Any]) -> None:
    """Consume ``results`` keeping none of them alive.

    Why: the paths first returned lists of every result, so a decode path held 50,000 decoded
    events at once and the collector traversed them again and again: 38 % of the timed decode of
    the golden event (39,231 → 62,955 decodes per CPU s once drained, 2026-12-05) and 40 % of the
    typical one (46,440 → 77,151). The pipeline keeps one poll's batch (500–2,000 records) at a
    time, which the batch paths still model. Encodes make bytes, which the collector does not track.
    """
    deque(results, maxlen=0)


def _batched(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def paths(events: int) -> dict[str, Callable[[], Any]]:
    """Every timed path over ``events`` copies of the canonical event, baseline and current."""
    schema = get_contract(REGISTRATION_EVENT).version(1).schema_str
    new, old = AvroCodec(schema, 7), _baseline_codec(schema, 7)
    public = _public_api_codec(schema, 7)
    event = canonical_event()
    payload = new.encode(event.to_wire())
    # The paths are real round trips, and every codec writes the same bytes.
    assert RegistrationEvent.from_avro(new.decode(payload)) == event
    assert old.encode(event.to_avro()) == payload == public.encode(event.to_wire())
    as_array = _array_decoder(new.schema)
    assert as_array([payload, payload]) == [new.decode(payload)] * 2
    records, wires = [event.to_avro()] * events, [event.to_wire()] * events
    models, payloads = [event] * events, [payload] * events
    timed: dict[str, Callable[[], Any]] = {
        "encode": lambda: _drain(new.encode(w) for w in wires),
        "encode_public_api": lambda: _drain(public.encode(w) for w in wires),
        "encode_baseline": lambda: _drain(old.encode(r) for r in records),
        "decode": lambda: _drain(new.decode(p) for p in payloads),
        "decode_public_api": lambda: _drain(public.decode(p) for p in payloads),
        "decode_baseline": lambda: _drain(old.decode(p) for p in payloads),
        "encode_model": lambda: _drain(new.encode(m.to_wire()) for m in models),
        "encode_model_baseline": lambda: _drain(old.encode(m.to_avro()) for m in models),
        "decode_model": lambda: _drain(RegistrationEvent.from_avro(new.decode(p)) for p in payloads),
        "decode_model_baseline": lambda: _drain(RegistrationEvent.from_avro(old.decode(p)) for p in payloads),
        "encode_plain_dict": lambda: _drain(new.encode(r) for r in records),  # interning alone, no hints
    }
    # The typical event: the mix of the synthetic month the pipeline benchmark loads (mostly
    # optional fields left empty, no change list), the events as connectors mostly send them;
    # ``events`` different events, not copies, so no cache sees the same bytes twice.
    mix = [r.event for r in synthetic_month(events, partitions=6, seed=7)]
    mix_wires = [e.to_wire() for e in mix]
    mix_payloads = [new.encode(w) for w in mix_wires]
    assert [RegistrationEvent.from_avro(new.decode(p)) for p in mix_payloads[:50]] == mix[:50]
    timed["encode_typical"] = lambda: _drain(new.encode(w) for w in mix_wires)
    timed["decode_typical"] = lambda: _drain(new.decode(p) for p in mix_payloads)
    for size in BATCH_SIZES:
        wire_batches, payload_batches = _batched(wires, size), _batched(payloads, size)
        timed[f"encode_many_{size}"] = lambda b=wire_batches: _drain(new.encode_many(batch) for batch in b)
        timed[f"decode_many_{size}"] = lambda b=payload_batches: _drain(new.decode_many(batch) for batch in b)
        timed[f"decode_array_{size}"] = lambda b=payload_batches: _drain(as_array(batch) for batch in b)
    return timed


def measure(events: int, repeat: int) -> dict[str, Any]:
    """CPU rates of every path, best of ``repeat`` rounds; each round runs every path once, so
    baseline and current see the same moments of the machine."""
    timed = paths(events)
    best = dict.fromkeys(timed, float("inf"))
    for _ in range(repeat):
        for name, fn in timed.items():
            began = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - began)
    rates = {name: events / seconds for name, seconds in best.items()}
    payload = AvroCodec(get_contract(REGISTRATION_EVENT).version(1).schema_str, 7).encode(
        canonical_event().to_wire()
    )
    typical = [
        AvroCodec(get_contract(REGISTRATION_EVENT).version(1).schema_str, 7).encode(r.event.to_wire())
        for r in synthetic_month(min(events, 10_000), partitions=6, seed=7)
    ]
    return {
        "payload_bytes": len(payload),
        "typical_payload_bytes": round(sum(map(len, typical)) / len(typical), 1),
        "events": events,
        "repeat": repeat,
        "rates": rates,
    }


_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _instructions(path: str, events: int) -> int:
    """Instructions (callgrind ``Ir``) of one run of ``path`` over ``events`` events, setup included."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/out",
                sys.executable,
                "-m",
                "bench.codec",
                "--only",
                path,
                "--events",
                str(events),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
            # String hashes are randomised per process, and with them every dict and set probe
            # fastavro makes: one seed for every run, or the Ir of one path moves by ~10 %.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count for {path}: {done.stderr[-500:]}")
    return int(found.group(1))


def instructions_per_event(events: int) -> dict[str, int]:
    """Ir per event of each path: (run of ``events`` − run of 0 events) ÷ ``events``.

    The batch paths only at 500 per batch: two valgrind runs per path are slow on a shared machine.
    """
    counts = {}
    for path in paths(1):
        if path[-1].isdigit() and not path.endswith("_500"):
            continue
        counts[path] = round((_instructions(path, events) - _instructions(path, 0)) / events)
    return counts


def main() -> None:
    """Measure, print, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--callgrind", type=int, default=0, metavar="N", help="also count Ir/event over N events"
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one path once: what --callgrind runs
    args = parser.parse_args()
    if args.only:
        paths(args.events)[args.only]()
        return
    figures = measure(args.events, args.repeat)
    if args.callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("--callgrind needs valgrind on PATH")
        figures["instructions_per_event"] = instructions_per_event(args.callgrind)
    ir = figures.get("instructions_per_event", {})
    print(
        f"canonical RegistrationEvent v1, {figures['payload_bytes']} bytes framed (every field set; "
        f"*_typical: the synthetic month, {figures['typical_payload_bytes']} bytes on average); "
        f"target ≥ {TARGET:,}/s"
    )
    print(f"{'path':<24}{'events/CPU s':>14}  vs target{'Ir/event':>12}")
    for path, rate in figures["rates"].items():
        count = f"{ir[path]:,}" if path in ir else ""
        print(f"{path:<24}{rate:>14,.0f}  {rate / TARGET:5.2f}×{count:>14}")
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "versions": {"fastavro": fastavro.__version__},
        "target_per_cpu_s": TARGET,
        **figures,
    }
    (RESULTS / "codec-latest.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
