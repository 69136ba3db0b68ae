"""Extraction into real Kafka: every send confirmed, cursor after the ack, nothing lost or doubled on a kill."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from listsource import ListConnector, rows
from pipeline_setup import pipeline_params

from connectors.base import RetriableSourceError
from regsync.bookkeeping.state import StateStore
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.stages.extract import run_extract
from schemas.events import RegistrationEvent, RejectedRecord

AS_OF = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
HERE = Path(__file__).parent


@pytest.fixture
def pipeline(stack, uid, database_url, as_components):
    return pipeline_params(stack, database_url, Topics(prefix=f"t{uid}."), login=as_components)


def _raw_events(p) -> list:
    codecs = bus.load_codecs(p["registry_url"], p["topics"])
    records = list(bus.scan(p["bootstrap"], p["topics"].raw, {}))
    return [(r, RegistrationEvent.from_avro(codecs.raw.decode(r.value))) for r in records]


def test_extract_publishes_confirms_and_commits(pipeline):
    data = rows(23)
    summary = run_extract(ListConnector(data), as_of=AS_OF, batch_size=5, **pipeline)
    assert (summary.read, summary.published, summary.recovered) == (23, 23, 0)

    published = _raw_events(pipeline)
    assert len(published) == 23
    assert {e.lineage.source_record_id for _, e in published} == {r["id"] for r in data}
    for record, event in published:
        assert record.key == event.institution.uscc.encode()
        assert record.timestamp == int(AS_OF.timestamp() * 1000)  # pushed-at, from the as-of clock
        assert bus.header(record, bus.HEADER_EVENT_ID) == event.event_id
        assert bus.header(record, bus.HEADER_SOURCE) == "listsource"

    store = StateStore(pipeline["database_url"])
    saved = store.load("listsource")
    runs = store.runs("listsource")
    store.dispose()
    assert saved.state["value"] == max(r["ts"] for r in data)
    assert sum(saved.raw_offsets.values()) == 23
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["published"] == 23

    # A second run publishes nothing; rows arriving later at the same cursor value are still taken.
    again = run_extract(ListConnector(data), as_of=AS_OF, batch_size=5, **pipeline)
    assert again.published == 0
    last_ts = max(r["ts"] for r in data)
    late = [{**rows(1)[0], "id": "R99999", "ts": last_ts, "uscc": data[0]["uscc"]}]
    third = run_extract(ListConnector(data + late), as_of=AS_OF, batch_size=5, **pipeline)
    assert third.published == 1
    assert len(_raw_events(pipeline)) == 24


class _FailsAfter(ListConnector):
    """Yields ``good`` batches, then the source fails (issue 12: the next batch is read ahead)."""

    def __init__(self, data, good: int) -> None:
        super().__init__(data)
        self.good = good

    def batches(self, state, ctx):
        for number, batch in enumerate(super().batches(state, ctx), start=1):
            if number > self.good:
                raise RetriableSourceError("listsource: HTTP 503 on the next page")
            yield batch


def test_a_source_failing_mid_run_still_commits_the_batch_already_sent(pipeline):
    """The batch in flight while the next one is read is acknowledged and committed before the error."""
    data = rows(20)
    with pytest.raises(RetriableSourceError):
        run_extract(_FailsAfter(data, good=2), as_of=AS_OF, batch_size=4, **pipeline)
    store = StateStore(pipeline["database_url"])
    saved = store.load("listsource")
    runs = store.runs("listsource")
    store.dispose()
    assert sum(saved.raw_offsets.values()) == 8  # both batches, the second committed on the way out
    assert runs[0]["status"] == "failed" and runs[0]["published"] == 8
    assert len(_raw_events(pipeline)) == 8

    again = run_extract(ListConnector(data), as_of=AS_OF, batch_size=4, **pipeline)
    assert (again.published, again.recovered) == (12, 0)  # nothing re-read, nothing lost
    ids = Counter(e.event_id for _, e in _raw_events(pipeline))
    assert len(ids) == 20 and max(ids.values()) == 1


def _script(pipeline, n: int = 20) -> str:
    return textwrap.dedent(
        f"""
        import sys
        from datetime import datetime, timezone
        from listsource import ListConnector, rows
        from regsync.stages.extract import run_extract
        from regsync.kafka.topics import Topics
        run_extract(
            ListConnector(rows({n})),
            bootstrap={pipeline["bootstrap"]!r},
            registry_url={pipeline["registry_url"]!r},
            database_url={pipeline["database_url"]!r},
            topics=Topics(prefix={pipeline["topics"].prefix!r}),
            as_of=datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc),
            batch_size=4,
        )
        """
    )


def _run(script: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("REGSYNC_CRASH_AT", None)
    if crash_at:
        env["REGSYNC_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["extract.after_ack:2", "extract.after_commit:3"])
def test_sigkill_between_ack_and_commit_loses_and_doubles_nothing(pipeline, crash_at):
    script = _script(pipeline)
    env = {**os.environ, "PYTHONPATH": str(HERE), "REGSYNC_CRASH_AT": crash_at}
    killed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert killed.returncode == -9, killed.stderr

    before = _raw_events(pipeline)
    assert 0 < len(before) < 20  # it did publish, and it did not finish

    env.pop("REGSYNC_CRASH_AT")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr

    after = _raw_events(pipeline)
    ids = Counter(e.event_id for _, e in after)
    assert len(ids) == 20, "every row published"
    assert max(ids.values()) == 1, f"duplicated: {[i for i, c in ids.items() if c > 1]}"
    store = StateStore(pipeline["database_url"])
    runs = store.runs("listsource")
    store.dispose()
    assert [r["status"] for r in runs] == ["succeeded", "running"]  # the killed run stays visible
    if crash_at.startswith("extract.after_ack"):
        assert runs[0]["recovered"] == 4  # the acked-but-uncommitted batch was found, not re-sent


@pytest.mark.slow
def test_two_kills_in_a_row_then_a_clean_run_publish_each_event_once(pipeline):
    """Issue 13 item 1: what the recovery scan found must survive the recovering run being killed too."""
    script = _script(pipeline)
    first = _run(script, "extract.after_ack:2")  # batches 1-2 on the topic, only batch 1 committed
    assert first.returncode == -9, first.stderr
    second = _run(script, "extract.after_ack:1")  # recovers batch 2, killed before committing it
    assert second.returncode == -9, second.stderr
    third = _run(script)
    assert third.returncode == 0, third.stderr

    ids = Counter(e.event_id for _, e in _raw_events(pipeline))
    assert len(ids) == 20, "every row published"
    assert max(ids.values()) == 1, f"duplicated: {sorted(i for i, c in ids.items() if c > 1)}"


def _dlq(p) -> list:
    codecs = bus.load_codecs(p["registry_url"], p["topics"])
    return [
        (r, RejectedRecord.from_avro(codecs.rejected.decode(r.value)))
        for r in bus.scan(p["bootstrap"], p["topics"].rejected, {})
    ]


def test_an_event_over_one_megabyte_goes_to_the_dlq_truncated_and_the_run_goes_on(pipeline):
    """Issue 13 item 4: MessageSizeTooLargeError on every rerun, before the size was checked."""
    data = rows(6)
    data[2]["name"] = "清远超长托育园" + "托" * 400_000  # ≈ 1.2 MB of UTF-8 in one event
    data[4]["name"] = "清远托育园 441802198601011234 13812345678" + "托" * 400_000
    summary = run_extract(ListConnector(data), as_of=AS_OF, batch_size=4, **pipeline)
    assert (summary.published, summary.invalid) == (4, 2)
    assert {e.lineage.source_record_id for _, e in _raw_events(pipeline)} == {
        "R00000",
        "R00001",
        "R00003",
        "R00005",
    }
    rejected = {rec.decode_error.split(":")[1].split()[-1]: (r, rec) for r, rec in _dlq(pipeline)}
    assert set(rejected) == {"R00002", "R00004"}
    for record, rec in rejected.values():
        assert len(record.value) < 200_000  # a truncated copy, not the event
        assert "bytes is over the 1,000,000-byte limit" in rec.decode_error
        assert "raw row" in rec.decode_error and "bytes, first" in rec.decode_error
        assert b"441802198601011234" not in rec.raw_value and b"13812345678" not in rec.raw_value
    again = run_extract(ListConnector(data), as_of=AS_OF, batch_size=4, **pipeline)
    assert (again.published, again.invalid) == (0, 0)
