"""The load's reading process without services: errors that cross the pipe, lazy records, lifetime.

The processes here are real (spawned interpreters); Kafka and the registry are not needed: the
lifetime tests give the reader an address that accepts connections and never answers.
"""

from __future__ import annotations

import pickle
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from multiprocessing.connection import Connection

import psutil
import pytest

from regsync.stages.load import LateRecordError, MonthGapError
from regsync.stages.load_reader import ProcessReader, ReaderProcessError, _Undecoded, portable, rebuilt
from schemas.codec import TruncatedPayloadError


def _across(exc: BaseException) -> BaseException:
    """What the store's process gets when the reader raised ``exc``: through pickle, as the pipe does."""
    try:
        raise exc
    except BaseException as raised:
        return rebuilt(pickle.loads(pickle.dumps(portable(raised))))


def test_the_projects_errors_cross_the_pipe_as_themselves():
    late = _across(LateRecordError("2026-02", "2026-01", 3, 27, datetime(2026, 2, 1, tzinfo=UTC)))
    assert type(late) is LateRecordError and late.late_month == "2026-01"
    assert "offset=27" in str(late) and late.hint and "--replace" in late.hint
    assert "raised in the load's reading process" in late.__notes__[0]
    assert "LateRecordError" in late.__notes__[0]  # the child's traceback, for whoever debugs it
    gap = _across(MonthGapError("2026-03", ["2026-01", "2026-02"]))
    assert type(gap) is MonthGapError and gap.gaps == ["2026-01", "2026-02"]
    codec = _across(TruncatedPayloadError("Avro body ends early", schema_id=7))
    assert type(codec) is TruncatedPayloadError and codec.schema_id == 7
    with pytest.raises(TruncatedPayloadError):  # and it raises like any other
        raise codec


def test_an_error_that_cannot_cross_becomes_a_plain_one_that_says_what_it_was():
    class Odd(Exception):
        def __init__(self) -> None:
            super().__init__("odd")
            self.lock = threading.Lock()  # not picklable

    got = _across(Odd())
    assert type(got) is RuntimeError and str(got) == "Odd: odd"


def test_a_record_is_decoded_only_when_read_and_then_once():
    calls = []

    def decode(value: bytes) -> dict:
        calls.append(value)
        return {"event_id": value.decode(), "n": 1}

    record = _Undecoded(b"e-1", decode)
    assert calls == []
    assert record["event_id"] == "e-1" and dict(record) == {"event_id": "e-1", "n": 1} and len(record) == 2
    assert calls == [b"e-1"]


def test_a_reader_never_given_a_month_ends_quietly_when_closed():
    reader = ProcessReader()
    reader._pipe.close()  # the store's process went on without reading (a no-op month)
    reader._process.wait(timeout=30)
    assert reader.exit_code == 0
    reader.close()


def test_a_reader_that_dies_in_the_middle_of_a_message_is_a_reader_error():
    """Killed while writing a batch, a reader leaves half a frame: that is the reader's death (as an
    end of file between messages is), not an OSError out of multiprocessing."""
    reader = ProcessReader()
    reader._pipe.close()  # the real child ends quietly; this test speaks for it below
    ours, theirs = socket.socketpair()
    reader._pipe = Connection(ours.detach())
    theirs.sendall(struct.pack("!i", 1000) + b"only ten b")  # a frame of 1,000 bytes, cut short
    theirs.close()
    with pytest.raises(ReaderProcessError, match="ended before the month did"):
        reader.message()
    reader.close()


@pytest.fixture
def silent_address():
    """A TCP address that accepts connections and never says anything."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_the_reader_dies_at_once_with_the_load_even_mid_call(silent_address):
    """The reader is stuck in a call to a registry that never answers (10 s timeout) when its parent
    is killed; it must go at once (PR_SET_PDEATHSIG), not when the call times out."""
    script = textwrap.dedent(
        f"""
        import time
        from regsync.kafka.topics import Topics
        from regsync.stages.load_reader import ProcessReader, ReaderSpec
        reader = ProcessReader()
        reader.start(ReaderSpec(
            bootstrap={silent_address!r}, registry_url="http://{silent_address}", topics=Topics(prefix="x."),
            component="loader", month="2025-03", tz="Asia/Shanghai", start={{0: 0}}, ends={{0: 10}},
            loaded={{}}, allow_gap=True, binary=False,
        ))
        print(reader.pid, flush=True)
        time.sleep(120)  # waits to be killed
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running()
        parent.kill()
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs([child], timeout=3)
        assert not alive, "the reader outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_the_reader_does_not_run_the_parents_main_script_again(tmp_path):
    """Under Airflow the load's process runs the ``airflow`` script; multiprocessing's spawn ran
    that script again in the reader (and failed, configuring Airflow without its settings). The
    reader must start from its own entry point whatever script started its parent."""
    runs = tmp_path / "runs"
    script = tmp_path / "main_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            with open({str(runs)!r}, "a") as out:  # every run of this file's top level leaves a line
                out.write("ran\\n")
            from regsync.stages.load_reader import ProcessReader
            if __name__ == "__main__":
                reader = ProcessReader()
                reader._pipe.close()
                reader._process.wait(timeout=30)
                print(reader.exit_code)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "0", done.stderr
    assert runs.read_text().splitlines() == ["ran"]


@pytest.mark.parametrize(("cores", "readers"), [(None, 1), (1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)])
def test_a_load_reads_with_half_the_cores_from_one_to_four(monkeypatch, cores, readers):
    from regsync.stages import load

    monkeypatch.setattr(load.os, "cpu_count", lambda: cores)
    assert load.default_read_processes() == readers
