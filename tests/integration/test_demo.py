"""The README's main command, end to end on its own stack, leaving nothing running."""

from __future__ import annotations

import psutil
import pytest
from kafka_auth import secure_wanted

from regsync.demo import run_demo
from regsync.settings import StackSettings
from regsync.stack.launcher import Stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        secure_wanted(),
        reason="regsync demo starts a plain stack of its own (run_demo has no --secure); it runs in the plain suite",
    ),
]


def test_demo_runs_end_to_end_and_stops_its_stack(tmp_path):
    root = tmp_path / "demo"
    lines: list[str] = []
    summary = run_demo(root=root, months=("2026-01", "2026-02"), per_month=15, say=lines.append)

    published = sum(summary.extracted.values())
    assert published > 0
    assert summary.judged == published
    assert summary.valid + summary.rejected == summary.judged
    assert set(summary.loaded) == {"2026-01", "2026-02"}
    assert sum(summary.loaded.values()) > 0
    for month, report in summary.reports.items():
        html = report.read_text(encoding="utf-8")
        assert month in html
        assert "extracted = valid + rejected" in html
    assert all(summary.packages[m] > 0 for m in summary.loaded)
    assert (root / "output" / "packages" / "2026-01").is_dir()
    leftover = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(root) in part for part in (p.info["cmdline"] or []))
    ]
    assert leftover == []
    stack = Stack(StackSettings(state_dir=root / "stack"))
    assert [st.name for st in stack.status() if st.running] == []
