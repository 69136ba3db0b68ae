"""County routing accuracy by address class, and the time one address takes to resolve.

Why: routing errors send an institution to the wrong county health bureau, and they cluster by how an
address is written (prefecture fused with a county starting with 市, two counties at a boundary,
abolished names, development zones). Accuracy per class shows which writing still fails; the timing
shows what resolution costs per record at the gate.

The corpus is ``tests/unit/data/addresses.tsv`` (class, address, expected, note); ``expected`` is a
county code, ``AMBIGUOUS`` (the resolver must answer reason ``ambiguous``) or ``UNKNOWN`` (no county,
any other reason). Run: ``.venv/bin/python -m bench.routing [--misses] [--repeat 20]``; writes
``bench/results/routing.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from schemas import divisions  # noqa: E402
from schemas.divisions import AddressResolution  # noqa: E402

CORPUS = ROOT / "tests" / "unit" / "data" / "addresses.tsv"
RESULTS = ROOT / "bench" / "results" / "routing.json"
AMBIGUOUS, UNKNOWN = "AMBIGUOUS", "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Case:
    """One corpus row."""

    klass: str
    address: str
    expected: str
    note: str


def load_corpus(path: Path = CORPUS) -> list[Case]:
    """The corpus rows; ``#`` lines are comments, the first other line is the header."""
    with path.open(encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    return [Case(r["class"], r["address"], r["expected"], r.get("note") or "") for r in reader]


def outcome(result: AddressResolution) -> str:
    """The resolution in the corpus's vocabulary: a county code, ``AMBIGUOUS`` or ``UNKNOWN``."""
    if result.county_code is not None:
        return result.county_code
    return AMBIGUOUS if result.reason == "ambiguous" else UNKNOWN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed resolutions per address")
    parser.add_argument("--misses", action="store_true", help="list every address resolved wrongly")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/routing.json")
    args = parser.parse_args(argv)

    cases = load_corpus()
    started = time.perf_counter()
    divisions.resolve_address("北京市")  # build the indexes once, outside the timings
    load_s = time.perf_counter() - started

    by_class: dict[str, list[bool]] = defaultdict(list)
    misses: list[tuple[Case, str, AddressResolution]] = []
    per_address_us: list[float] = []
    for case in cases:
        result = divisions.resolve_address(case.address)
        got = outcome(result)
        by_class[case.klass].append(got == case.expected)
        if got != case.expected:
            misses.append((case, got, result))
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            divisions.resolve_address(case.address)
        per_address_us.append((time.perf_counter() - t0) / args.repeat * 1e6)

    rows = []
    print(f"{'class':<18} {'n':>4} {'correct':>8} {'accuracy':>9}")
    for klass in sorted(by_class):
        hits = by_class[klass]
        rows.append({"class": klass, "n": len(hits), "correct": sum(hits), "accuracy": sum(hits) / len(hits)})
        print(f"{klass:<18} {len(hits):>4} {sum(hits):>8} {sum(hits) / len(hits):>9.1%}")
    total = sum(r["correct"] for r in rows)
    print(f"{'all':<18} {len(cases):>4} {total:>8} {total / len(cases):>9.1%}")
    quantiles = statistics.quantiles(per_address_us, n=100)
    timing = {
        "index_build_s": round(load_s, 3),
        "mean_us": round(statistics.fmean(per_address_us), 1),
        "p50_us": round(statistics.median(per_address_us), 1),
        "p95_us": round(quantiles[94], 1),
        "max_us": round(max(per_address_us), 1),
    }
    print(
        f"per address: mean {timing['mean_us']} µs, p50 {timing['p50_us']} µs, p95 {timing['p95_us']} µs, "
        f"max {timing['max_us']} µs (index build {timing['index_build_s']} s, once per process)"
    )
    if args.misses:
        for case, got, result in misses:
            print(
                f"  MISS [{case.klass}] {case.address}: expected {case.expected}, got {got} "
                f"(reason {result.reason}, matched {'/'.join(result.matched)}, notes {','.join(result.notes)})"
            )
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "corpus": str(CORPUS.relative_to(ROOT)),
                    "classes": rows,
                    "total": {"n": len(cases), "correct": total, "accuracy": total / len(cases)},
                    "timing": timing,
                    "misses": [
                        {"class": c.klass, "address": c.address, "expected": c.expected, "got": g}
                        for c, g, _ in misses
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
