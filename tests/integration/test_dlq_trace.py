"""DLQ listing and replay with its audit trail, and `trace` across topics and the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from listsource import FaultyListConnector, rows
from pipeline_setup import pipeline_params

from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.stages import dlq
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate
from regsync.stages.load import run_load
from regsync.stages.trace import trace

AS_OF = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)


@pytest.fixture
def judged(stack, uid, database_url, as_components):
    topics = Topics(prefix=f"t{uid}.")
    p = pipeline_params(stack, database_url, topics, as_components)
    run_extract(FaultyListConnector(rows(40)), as_of=AS_OF, batch_size=10, **p)
    run_gate(**p, until_idle=True)
    return p


def test_dlq_list_filters_and_replay_is_audited(judged):
    p = judged
    found = list(
        dlq.entries(p["bootstrap"], p["registry_url"], p["topics"], dlq.DlqFilter(rule_id="USCC_CHECK_DIGIT"))
    )
    assert len(found) == 8
    assert all("USCC_CHECK_DIGIT" in e.rule_ids and e.replayable for e in found)
    assert all(e.source == "listsource" for e in found)

    flt = dlq.DlqFilter(rule_id="REQUIRED_FIELD")
    dry = dlq.replay(**p, flt=flt, as_of=AS_OF, dry_run=True, who="auditor-test", reason="check")
    assert (dry["matched"], dry["replayed"]) == (6, 0)
    raw_before = len(list(bus.scan(p["bootstrap"], p["topics"].raw, {})))

    done = dlq.replay(**p, flt=flt, as_of=AS_OF, dry_run=False, who="auditor-test", reason="rules fixed")
    assert done["replayed"] == 6
    raw = list(bus.scan(p["bootstrap"], p["topics"].raw, {}))
    assert len(raw) == raw_before + 6
    replays = [r for r in raw if bus.header(r, "regsync.replay_of")]
    assert len(replays) == 6
    assert all(bus.header(r, "regsync.replay_id") == done["replay_id"] for r in replays)

    counts = run_gate(**p, until_idle=True)
    assert counts.consumed == 6  # only the replayed records were judged again
    assert counts.rejected == 6  # still without a name: rejected again, with reasons

    log = dlq.replay_log(p["database_url"])
    assert [(e["who"], e["dry_run"], e["replayed"]) for e in log] == [
        ("auditor-test", False, 6),
        ("auditor-test", True, 0),
    ]
    assert log[0]["reason"] == "rules fixed"


def test_trace_follows_one_institution_to_the_store(judged):
    p = judged
    run_load(**p, month="2026-01", as_of=datetime(2026, 2, 1, 1, tzinfo=UTC))
    good = rows(40)[1]["uscc"]  # row 1: neither broken check digit nor missing name
    found = trace(**p, uscc=good)
    stages = [h.stage for h in found.hops]
    for stage in ("source", "raw", "gate: valid", "extract run", "store: event", "load manifest"):
        assert stage in stages, stages
    assert found.store_row is not None
    assert found.store_row["uscc"] == good

    bad = rows(40)[5]["uscc"]
    bad = bad[:-1] + ("0" if bad[-1] != "0" else "1")  # FaultyListConnector broke row 5's check digit
    rejected = trace(**p, uscc=bad)
    assert "gate: rejected" in [h.stage for h in rejected.hops]
    assert any("USCC_CHECK_DIGIT" in h.what for h in rejected.hops)
