"""The monthly load's reading side in a process of its own: scan, select, decode, make the rows.

Why a process (issue 12): in a thread beside the store (:class:`regsync.stages.load.ReadAhead`),
the reading — kafka-python's record parsing, the Avro decode, the history documents and their
binary ``COPY`` rows, ≈ 40 µs of CPU an event — and the thread that drives PostgreSQL took turns on
one interpreter lock. Each time the store's thread woke from a wait on the server it queued for the
lock, and the server sat idle meanwhile. In a process of its own the reading runs on the other
core, and the store's process only waits on the server and on the pipe.

What crosses the pipe (pickled batches): each record's position, its Avro value, its
``institution_events`` row and that row's binary ``COPY`` encoding (the row then travels without
its document, which the encoding holds). The store's process decodes the value again only if it
reads the record itself (the few institutions the Python fold handles). At the end comes the
selection's low-water offsets, or the error that stopped the reading, rebuilt on this side as the
same class with the same fields (:func:`portable`), so a late record or a month gap is the same
error in the same place as before.

Lifetime: the reading process dies with the process that started it — its pipe breaks at its next
read or write, and on Linux ``PR_SET_PDEATHSIG`` kills it at once, even in the middle of a call to a
broker or registry that does not answer. Closing the reader kills it, and a reader that dies —
kill -9, out of memory — is an error in the store's process, whose transaction then rolls back:
nothing is stored, as for any failed load. ``run_load(read_in_process=False)`` reads in a thread of
the load's own process instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.stages.load_selection import MonthGapError, Selection
from schemas.errors import RetriableError
from sink.loader import PositionedRecord, RowMaker

__all__ = [
    "ProcessReader",
    "ReaderPool",
    "ReaderProcessError",
    "ReaderSpec",
    "child_main",
    "portable",
    "rebuilt",
]

#: Records per pickled message: large enough that pickling is a small share, small enough that
#: a few messages in flight stay a few MiB.
BATCH = 500


@dataclass(frozen=True)
class ReaderSpec:
    """Everything a reading process needs: it is a fresh interpreter (``python -c``), sharing nothing."""

    bootstrap: str
    registry_url: str
    topics: Topics
    component: str
    month: str
    tz: str
    start: Mapping[int, int]
    ends: Mapping[int, int]
    loaded: Mapping[str, Mapping[int, tuple[int, int]]]
    allow_gap: bool
    binary: bool


class ReaderProcessError(RetriableError):
    """The reading process ended without handing over the whole month (killed, out of memory)."""


def portable(exc: BaseException) -> tuple[Any, ...]:
    """``exc`` as picklable parts: its class, ``args``, attributes and where it was raised.

    Why not pickle the exception: Python pickles an exception as ``cls(*args)``, and the project's
    errors take other arguments than their message (``LateRecordError(month, late_month, …)``),
    so they would fail to come back. The class travels by name; its state as a dict.
    """
    where = "".join(traceback.format_exception(exc))
    state = dict(getattr(exc, "__dict__", {}))
    try:
        pickle.dumps((type(exc), exc.args, state))
    except Exception:  # an unpicklable attribute: say what it was, as a plain error
        return (RuntimeError, (f"{type(exc).__name__}: {exc}",), {}, where)
    return (type(exc), exc.args, state, where)


def rebuilt(parts: tuple[Any, ...]) -> BaseException:
    """The exception :func:`portable` took apart, with a note saying it came from the reader."""
    cls, args, state, where = parts
    exc: BaseException = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    exc.add_note(f"raised in the load's reading process:\n{where}")
    return exc


class _Undecoded(Mapping[str, Any]):
    """A record's Avro mapping, decoded from its value the first time something reads it."""

    __slots__ = ("_decode", "_record", "_value")

    def __init__(self, value: bytes, decode: Callable[[bytes], dict[str, Any]]) -> None:
        self._value, self._decode = value, decode
        self._record: dict[str, Any] | None = None

    def _mapping(self) -> dict[str, Any]:
        if self._record is None:
            self._record = self._decode(self._value)
        return self._record

    def __getitem__(self, key: str) -> Any:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


class ProcessReader:
    """One reading process: start it early, :meth:`start` it once, then take its :meth:`message` s.

    The child starts when this is made, and imports what it needs (≈ 0.7 s) while the caller
    still checks and looks up where the month lies; :meth:`start` then hands it the
    :class:`ReaderSpec`. ``low_water`` is :attr:`regsync.stages.load.Selection.low_water` of the
    child's selection, set by its ``end`` message. :class:`ReaderPool` reads one or more as one.
    """

    def __init__(self) -> None:
        self.spec: ReaderSpec | None = None
        self.low_water: dict[int, int] | None = None
        self._decode: Callable[[bytes], dict[str, Any]] | None = None
        # A plain child interpreter, not multiprocessing's spawn: spawn runs the parent's main
        # script again in the child, and under Airflow that is the ``airflow`` command itself
        # (which failed there, configuring Airflow without its settings). One socket pair carries
        # the spec one way and the batches the other, framed by multiprocessing's Connection.
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child holds the only other end: its death is our end of file
        self._pipe = Connection(ours.detach())

    @property
    def pid(self) -> int:
        """The reading process's id."""
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        """Its exit code once it has ended (negative: the signal that ended it), else None."""
        return self._process.poll()

    def start(self, spec: ReaderSpec) -> None:
        """Hand the child its spec; its messages then come through :meth:`message`."""
        if self.spec is not None:
            raise RuntimeError("a ProcessReader reads one month once")
        self.spec = spec
        self._pipe.send(spec)

    @property
    def pipe(self) -> Connection:
        """Our end of the socket pair (what :func:`multiprocessing.connection.wait` waits on)."""
        return self._pipe

    def message(self) -> tuple[str, Any]:
        """The child's next message: ``("records", batch)``, ``("end", low_water)`` or ``("error", parts)``.

        An end also sets :attr:`low_water`; a child gone without its end is :class:`ReaderProcessError`.
        """
        try:
            kind, payload = pickle.loads(self._pipe.recv_bytes())
        except (EOFError, OSError):  # OSError: it died in the middle of a message
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            raise ReaderProcessError(
                f"the load's reading process ended before the month did (exit code {self.exit_code})",
                hint="run the load again; nothing of this run was stored",
            ) from None
        if kind == "end":
            self.low_water = payload
        return kind, payload

    def positioned(self, batch: list[tuple[Any, ...]]) -> Iterator[PositionedRecord]:
        """A ``records`` message's records, each decoded here only if something reads it."""
        for partition, offset, timestamp_ms, value, row, encoded in batch:
            yield PositionedRecord(
                partition, offset, timestamp_ms, _Undecoded(value, self._decoded), row, encoded
            )

    def _decoded(self, value: bytes) -> dict[str, Any]:
        """``value`` decoded with the valid topic's codec, fetched the first time it is needed here."""
        if self._decode is None:
            assert self.spec is not None
            self._decode = bus.load_codecs(self.spec.registry_url, self.spec.topics).valid.decode
        return self._decode(value)

    def close(self) -> None:
        """Stop the child (if it still runs) and wait for it; idempotent, and safe from any thread.

        The pipe stays open (the thread reading it gets its end of file); the generator
        :meth:`ReaderPool.read` returned closes it.
        """
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)


class ReaderPool:
    """Several reading processes, each over its share of the partitions, read as one.

    Why: reading takes about as much CPU an event as the store's process and PostgreSQL together
    (issue 12: ≈ 50–60 µs against ≈ 15 + 36), so with more cores one reader becomes the load's
    bottleneck (:func:`regsync.stages.load.default_read_processes` says how many). Partitions are dealt
    out round-robin; records reach the load in arrival order, each partition's in offset order —
    all the load asks for (its fold is per institution, and an institution is one key, so one
    partition). The ``start`` and ``ends`` of each child's spec hold its partitions only.

    Errors: the first error other than a month gap stops the read at once. A gap is the selection's
    own error raised at the end of its scan; the pool hands on nothing more after one, lets the
    other children finish their scans and raises one :class:`MonthGapError` naming every gap.
    """

    def __init__(self, readers: list[ProcessReader]) -> None:
        if not readers:
            raise ValueError("a ReaderPool needs at least one reader")
        self.readers = readers
        self.low_water: dict[int, int] | None = None

    def read(self, spec: ReaderSpec) -> Generator[PositionedRecord, None, None]:
        """The selected records of ``spec``; raises what stopped a child."""
        partitions = sorted(spec.ends)
        shares = [partitions[i :: len(self.readers)] for i in range(len(self.readers))]
        working = [(reader, share) for reader, share in zip(self.readers, shares, strict=True) if share]
        for reader in self.readers[len(working) :]:
            reader.close()  # more readers than partitions
        for reader, share in working:
            reader.start(
                replace(
                    spec,
                    start={p: o for p, o in spec.start.items() if p in share},
                    ends={p: spec.ends[p] for p in share},
                )
            )
        return self._records([reader for reader, _ in working], spec.month)

    def _records(self, readers: list[ProcessReader], month: str) -> Generator[PositionedRecord, None, None]:
        live = {reader.pipe: reader for reader in readers}
        gaps: list[MonthGapError] = []
        try:
            while live:
                for pipe in wait(list(live)):
                    reader = live[pipe]  # type: ignore[index]  # wait() returns what it was given
                    kind, payload = reader.message()
                    if kind == "records":
                        if not gaps:  # after a gap the load is refused anyway: hand on nothing more
                            yield from reader.positioned(payload)
                        continue
                    del live[pipe]  # type: ignore[arg-type]
                    if kind == "error":
                        exc = rebuilt(payload)
                        if not isinstance(exc, MonthGapError):
                            raise exc
                        gaps.append(exc)
            if gaps:
                raise MonthGapError(month, sorted({gap for exc in gaps for gap in exc.gaps}))
            low_water: dict[int, int] = {}
            for reader in readers:
                low_water.update(reader.low_water or {})
            self.low_water = low_water
        finally:
            self.close()
            for reader in self.readers:  # the idle ones' too (more readers than partitions)
                reader.pipe.close()

    def close(self) -> None:
        """Stop every child that still runs and wait for them; idempotent, safe from any thread."""
        for reader in self.readers:
            reader.close()


_CHILD = "import sys; from regsync.stages.load_reader import child_main; child_main(sys.argv[1:])"


def child_main(argv: list[str]) -> None:
    """The reading process's entry: ``argv`` is its end of the socket pair and its parent's id."""
    fd, parent = int(argv[0]), int(argv[1])
    _read_month(Connection(fd), parent)


def _read_month(pipe: Connection, parent: int) -> None:
    """The child: import, wait for the spec, then scan, select, decode and make rows.

    It sends batches, then the low-water or the error; a parent that closes without a spec ends it quietly.
    """
    _die_with(parent)

    def send(message: tuple[str, Any]) -> None:
        pipe.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    try:
        spec: ReaderSpec = pipe.recv()
    except EOFError:
        return
    try:
        selection = Selection(spec.month, spec.tz, spec.loaded, spec.ends, allow_gap=spec.allow_gap)
        maker = RowMaker(spec.month, spec.topics.valid, spec.tz, binary=spec.binary)
        scan = bus.scan(
            spec.bootstrap, spec.topics.valid, dict(spec.start), dict(spec.ends), component=spec.component
        )
        decode = bus.load_codecs(spec.registry_url, spec.topics).valid.decode
        batch: list[tuple[Any, ...]] = []
        with contextlib.closing(scan):
            for record in selection.select(scan):
                rec = maker.prepare(record.partition, record.offset, record.timestamp, decode(record.value))
                row = rec.row
                if rec.encoded is not None and row is not None:
                    row = (*row[:-1], None)  # the encoding holds the document: send it once
                batch.append((rec.partition, rec.offset, rec.timestamp_ms, record.value, row, rec.encoded))
                if len(batch) >= BATCH:
                    send(("records", batch))
                    batch = []
        if batch:
            send(("records", batch))
        send(("end", selection.low_water))
    except BaseException as exc:  # handed over and raised on the other side
        with contextlib.suppress(OSError):
            send(("error", portable(exc)))
    finally:
        pipe.close()


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), and check it is alive now.

    Python offers no portable way (multiprocessing's ``daemon`` only helps when the parent exits
    normally); on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` is one call through the C library.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # died before the line above took effect
        os._exit(1)
