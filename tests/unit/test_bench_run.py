"""The bench's argument helpers (nothing is started here)."""

from __future__ import annotations

import pytest

from bench.run import parse_events, pipelined_labels

SCENARIOS = {"100k": 100_000, "1m": 1_000_000}


def test_pipelined_runs_the_smallest_scenario_by_default():
    assert pipelined_labels("smallest", SCENARIOS) == ["100k"]
    assert pipelined_labels("smallest", {"20k": 20_000}) == ["20k"]


def test_pipelined_none_or_named_scenarios():
    assert pipelined_labels("none", SCENARIOS) == []
    assert pipelined_labels("1M, 100k", SCENARIOS) == ["1m", "100k"]
    with pytest.raises(SystemExit):
        pipelined_labels("300k", SCENARIOS)


def test_scenario_sizes():
    assert parse_events("all") == SCENARIOS
    assert parse_events("20k") == {"20k": 20_000}
