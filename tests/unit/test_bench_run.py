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


def test_flame_puts_py_spy_in_front_with_threads_and_the_svg():
    from pathlib import Path

    from bench.run import flame_command

    command = flame_command(Path("/tmp/x/extract-100k.svg"))
    assert Path(command[0]).name == "py-spy" and command[1] == "record"
    assert command[command.index("--output") + 1] == "/tmp/x/extract-100k.svg"
    assert "--threads" in command and command[-1] == "--"


def test_extract_ratio_by_cpu_is_net_of_the_source_cpu():
    from bench.run import StageResult, _summarise

    def stage(name: str, events: int, seconds: float, **figures: float) -> StageResult:
        return StageResult(name, events, seconds, seconds, 90.0, seconds, {}, dict(figures))

    stages = {
        "extract": stage("extract", 1000, 10.0, source_seconds=5.0, timed_cpu_s=8.0, source_cpu_s=4.0),
        "gate": stage("gate", 1000, 10.0, loop_cpu_s=9.0),
        "load": stage("load", 1000, 10.0),
        "raw_produce": stage("raw_produce", 1000, 1.0, timed_cpu_s=2.0),
        "raw_consume": stage("raw_consume", 1000, 1.0),
        "copy": stage("copy", 1000, 1.0),
    }
    ratios = _summarise("t", 1000, stages, 30.0, profiled=False)["ratios"]
    assert ratios["extract_vs_raw_produce"] == 0.2  # 1000/5 s net against 1000/1 s
    assert ratios["extract_vs_raw_produce_by_cpu"] == 0.5  # 2 ms against (8 - 4) ms of CPU per event


def test_retitle_drops_the_command_line_with_its_urls(tmp_path):
    from bench.run import retitle

    svg = tmp_path / "extract-100k.svg"
    svg.write_text(
        '<svg><text id="title" x="50%">py-spy record -- python -m bench.stages '
        '{"database_url": "postgresql://u:secret@127.0.0.1:5432/x"}</text><text>frame</text></svg>',
        encoding="utf-8",
    )
    retitle(svg, "extract, 100,000 events")
    text = svg.read_text(encoding="utf-8")
    assert "secret" not in text and "127.0.0.1" not in text
    assert "(extract, 100,000 events)</text><text>frame</text>" in text


def test_gate_workers_are_reported_beside_the_one_process_gate_not_instead():
    from bench.run import StageResult, _summarise, table

    def stage(name: str, events: int, seconds: float, cpu: float = 1.0, **figures: float) -> StageResult:
        return StageResult(name, events, seconds, seconds, 90.0, cpu, {}, dict(figures))

    stages = {
        "extract": stage("extract", 1000, 10.0, source_seconds=5.0, timed_cpu_s=8.0, source_cpu_s=4.0),
        "gate": stage("gate", 1000, 4.0, cpu=3.0, loop_cpu_s=2.0, valid=1000, rejected=0),
        "load": stage("load", 1000, 10.0),
        "raw_produce": stage("raw_produce", 1000, 1.0, timed_cpu_s=2.0),
        "raw_consume": stage("raw_consume", 1000, 1.0),
        "copy": stage("copy", 1000, 1.0),
        "gate_workers": stage("gate_workers", 1000, 2.5, cpu=5.0, loop_cpu_s=2.4, workers=2),
    }
    summary = _summarise("t", 1000, stages, 30.0, profiled=False)
    ratios = summary["ratios"]
    # transport: 1000 produced in 1 s and consumed in 1 s = 500/s through both
    assert ratios["gate_vs_produce_plus_consume"] == 0.5  # 250/s
    assert ratios["gate_workers_vs_produce_plus_consume"] == 0.8  # 400/s
    assert ratios["gate_workers_over_one_process"] == 1.6
    assert summary["gate_workers"] == 2
    assert summary["gate_cpu"] == {
        "one_process": {"cpu_us_per_event": 3000, "loop_cpu_us_per_event": 2000},
        "workers": {"workers": 2, "cpu_us_per_event": 5000, "loop_cpu_us_per_event": 2400},
    }
    printed = table([summary])
    assert "gate_workers" in printed and "N workers" in printed and "(N: t 2)" in printed


def test_without_workers_the_summary_says_one_process():
    from bench.run import StageResult, _summarise, table

    def stage(name: str, **figures: float) -> StageResult:
        return StageResult(name, 1000, 1.0, 1.0, 90.0, 1.0, {}, dict(figures))

    stages = {
        "extract": stage("extract", source_seconds=0.5, timed_cpu_s=1.0, source_cpu_s=0.5),
        "gate": stage("gate", loop_cpu_s=0.5),
        **{name: stage(name, timed_cpu_s=1.0) for name in ("load", "raw_produce", "raw_consume", "copy")},
    }
    summary = _summarise("t", 1000, stages, 3.0, profiled=False)
    assert summary["gate_workers"] == 1 and "gate_workers_vs_produce_plus_consume" not in summary["ratios"]
    assert "workers" not in summary["gate_cpu"]
    table([summary])  # prints "-" in the workers column


def test_the_loads_cpu_floor_spreads_its_and_its_services_cpu_over_the_cores(monkeypatch):
    from bench.run import StageResult, _summarise, table

    def stage(
        name: str, seconds: float = 1.0, cpu: float = 1.0, services=None, **figures: float
    ) -> StageResult:
        return StageResult(name, 1000, seconds, seconds, 90.0, cpu, services or {}, dict(figures))

    monkeypatch.setattr("bench.run.os.cpu_count", lambda: 2)
    stages = {
        "extract": stage("extract", source_seconds=0.5, timed_cpu_s=1.0, source_cpu_s=0.5),
        "gate": stage("gate", loop_cpu_s=0.5),
        # 6 s of the load's own CPU in its timed section (9 s with its start-up) and 2 s of services'
        "load": stage("load", 5.0, cpu=9.0, services={"postgres": 1.5, "kafka": 0.5}, timed_cpu_s=6.0),
        "raw_produce": stage("raw_produce", timed_cpu_s=1.0),
        "raw_consume": stage("raw_consume"),
        "copy": stage("copy", 0.5, cpu=0.25, services={"postgres": 0.75}),
    }
    summary = _summarise("t", 1000, stages, 3.0, profiled=False)
    assert summary["load_cpu_floor"] == {
        "cores": 2,
        "client_cpu_us_per_event": 6000.0,
        "services_cpu_us_per_event": 2000.0,
        "copy_cpu_us_per_event": 1000.0,
        "floor_s": 4.0,  # (6 + 2) / 2
        "seconds": 5.0,
    }
    # at the floor: 1000 / 4 s = 250/s against COPY's 2000/s
    assert summary["ratios"]["load_vs_copy_at_cpu_floor"] == 0.125
    assert "4.0 s against 5.0 s run, 0.12 × COPY" in table([summary])
