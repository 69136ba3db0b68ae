"""市场监管 connector: the childcare slice of the exchange's day files (format: :mod:`simulators.shichang_files`).

* State is a **ledger of files taken** (name → sha256): a date watermark would lose a file delivered
  late. Bytes already taken under another name (a ``_resend``) go to ``duplicates``, skipped. ``current``
  is the file being read and the rows the batch covers: a batch's state is exactly what it emitted.
* A file is read only when **complete**: marker present, sha256 and row count as the marker says; else it
  waits. A complete file breaking the format is left unread and fails the run after the other files.
* **gb18030**, not gbk: the superset "GBK" exchanges really emit (rare name characters such as 䶮 are
  only there and make the gbk codec fail), and CPython decodes it faster.
* **Pre-filter**: a line without any of :data:`CANDIDATE_MARKS` (which every childcare keyword contains)
  is skipped unsplit; one record per line is checked against the marker first. The scope-alone verdict
  is cached (scope wording repeats); a strong include there decides, as ``classify`` would.
* A 02 变更 of 经营范围 is judged on old and new scope: SCOPE_ADDED_ or SCOPE_REMOVED_CHILDCARE (passed
  although the new scope is not childcare).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Final

from connectors.base import (
    Batch,
    Connector,
    ConnectorSpec,
    ExtractContext,
    FatalSourceError,
    InvalidRecord,
    guarded,
    legal_representative,
    parse_date,
)
from connectors.shichang_format import (
    CANDIDATE_MARKS,
    CHANGE_CODES,
    CHANGE_FIELDS,
    COLUMNS,
    ENCODING,
    FILE_NAME,
    LEGAL_FORMS,
    MARKER_SUFFIX,
    created_after,
    due,
    is_candidate,
    read_marker,
    record_id_of,
    row_for_dlq,
    row_is_childcare,
    scope_verdict,
    suspect,
)
from schemas import events as ev
from schemas.masking import mask_text

__all__ = [  # the format's names stay importable from here
    "CANDIDATE_MARKS",
    "COLUMNS",
    "ENCODING",
    "MARKER_SUFFIX",
    "SPEC",
    "ShichangConnector",
    "is_candidate",
    "row_is_childcare",
]

SPEC: Final = ConnectorSpec(
    name="shichang",
    registrar=ev.Registrar.SHICHANG,
    source_system="shichang-files",
    key="记录编号+版本号",
    cursor_field="ledger of files taken (name → sha256) + row offset in the current file",
    description="市场监管 exchange day files (GB18030 CSV + .ok marker), childcare rows only",
)
EXTRACTED_BY: Final = "connectors.shichang@0.1.0"
DEFAULT_MARKER_GRACE: Final = timedelta(hours=48)
"""How long a day file may wait for a correct ``.ok`` marker after it was due before the run fails."""
_ALIASES: Final = {alias: key for key, names in COLUMNS.items() for alias in names}
_STILL_ARRIVING: Final = ("no_marker", "marker_invalid", "checksum_mismatch", "after_as_of")
_SCOPE_EVENT: Final = {True: ev.EventType.SCOPE_ADDED_CHILDCARE, False: ev.EventType.SCOPE_REMOVED_CHILDCARE}


@dataclass(slots=True)
class ScanReport:
    """What the last :meth:`ShichangConnector.batches` run saw, for logs and tests."""

    taken: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # skipped name → name first taken
    waiting: dict[str, str] = field(default_factory=dict)  # name → why it is not read yet
    rows_scanned: int = 0


@dataclass(frozen=True, slots=True)
class _Complete:
    path: Path
    sha256: str
    rows: int
    names: list[str]


class ShichangConnector(Connector):
    """Reads a 市场监管 drop folder; state: ``{"files": {name: sha}, "duplicates": {…}, "current": …}``."""

    spec = SPEC

    def __init__(self, inbox: Path, marker_grace: timedelta = DEFAULT_MARKER_GRACE) -> None:
        self.inbox = Path(inbox)
        self.marker_grace = marker_grace
        self.report = ScanReport()

    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        """Take every complete, new file in date order (a resumed file first), in batches."""
        files: dict[str, str] = dict(state.get("files", {}))
        dups: dict[str, str] = dict(state.get("duplicates", {}))
        current: dict[str, Any] = dict(state.get("current") or {})
        self.report = report = ScanReport()
        batch, dirty = Batch(), False

        def snapshot(cur: dict[str, Any] | None = None) -> dict[str, Any]:
            return {"files": dict(files), "duplicates": dict(dups), **({"current": cur} if cur else {})}

        for path in self._new_files(files, dups, current.get("file")):
            found = self._complete(path)
            if not isinstance(found, str) and created_after(path, ctx.extracted_at):
                found = "after_as_of"  # the end bound: produced after this run's as-of, the next run's
            if isinstance(found, str):
                report.waiting[path.name] = found
                continue
            first = {sha: name for name, sha in files.items()}.get(found.sha256, path.name)
            if first != path.name:
                dups[path.name], report.duplicates[path.name] = found.sha256, first
                batch.state, dirty = snapshot(), True
                continue
            resume = current.get("file") == path.name and current.get("sha256") == found.sha256
            done = start = int(current.get("rows", 0)) if resume else 0
            for row_no, out in self._scan(found, done, ctx):
                if isinstance(out, InvalidRecord):
                    batch.invalid.append(out)
                else:
                    batch.events.append(out)
                    batch.cursor_values.append(out.lineage.cursor_value or "")
                if len(batch.events) + len(batch.invalid) >= ctx.batch_size:
                    batch.read += row_no - done
                    done = row_no
                    yield _sealed(batch, snapshot({"file": path.name, "sha256": found.sha256, "rows": done}))
                    batch, dirty = Batch(), False
            batch.read += found.rows - done
            report.rows_scanned += found.rows - start
            files[path.name] = found.sha256
            report.taken.append(path.name)
            batch.state, dirty = snapshot(), True
        waiting = {n: why for n, why in report.waiting.items() if why in _STILL_ARRIVING}
        if dirty or batch.events or batch.invalid or waiting:
            batch.notes.update(waiting)  # told in the run summary, never a silent exit 0
            yield _sealed(batch, snapshot())
        if broken := {n: why for n, why in report.waiting.items() if why not in _STILL_ARRIVING}:
            raise FatalSourceError(f"{SPEC.source_system}: complete files break the format: {broken}")
        if overdue := {n: why for n, why in waiting.items() if due(n) + self.marker_grace < ctx.extracted_at}:
            raise FatalSourceError(
                f"{SPEC.source_system}: files still incomplete {self.marker_grace} after they were due: {overdue}",
                hint="ask the exchange to re-deliver them with their .ok markers",
            )

    def _new_files(self, files: Mapping[str, str], dups: Mapping[str, str], resume: str | None) -> list[Path]:
        """Data files not yet handled (a name re-issued with other bytes counts as new), oldest first."""
        found = []
        for path in self.inbox.glob("SCJG_*.csv"):
            if not FILE_NAME.match(path.name):
                continue
            known = files.get(path.name) or dups.get(path.name)
            if known is not None and read_marker(path).get("sha256") == known:
                continue
            found.append((path.name != resume, path.name, path))
        return [path for *_, path in sorted(found)]  # the name sorts by date: SCJG_YYYYMMDD…

    @staticmethod
    def _complete(path: Path) -> _Complete | str:
        """The file's checksum, rows and header when its marker vouches for it, else why it waits."""
        marker = read_marker(path)
        if not marker:
            return "no_marker"
        if marker.get("file", path.name) != path.name or not marker.get("rows", "").isdigit():
            return "marker_invalid"
        digest, lines, last = hashlib.sha256(), 0, b"\n"
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        if digest.hexdigest() != marker.get("sha256"):
            return "checksum_mismatch"
        rows = lines - (last == b"\n")  # the header line is not a row
        if rows != int(marker["rows"]):
            return "row_count_mismatch"
        with path.open(encoding=ENCODING, errors="replace", newline="\n") as handle:
            names = [h.strip() for h in next(csv.reader([handle.readline()]))]
        missing = sorted(set(COLUMNS) - {_ALIASES.get(h) for h in names})
        return f"missing_columns {missing}" if missing else _Complete(path, digest.hexdigest(), rows, names)

    def _scan(self, file: _Complete, skip: int, ctx: ExtractContext) -> Iterator[tuple[int, Any]]:
        r"""(row number, event or InvalidRecord) of the childcare rows after row ``skip``.

        ``newline="\n"``: lines split where the marker check counted ``\n``; a stray ``\r`` shifts nothing.
        """
        cols = {_ALIASES[h]: i for i, h in enumerate(file.names) if h in _ALIASES}
        with file.path.open(encoding=ENCODING, errors="replace", newline="\n") as handle:
            handle.readline()
            for row_no, line in enumerate(islice(handle, skip, None), skip + 1):
                if is_candidate(line) or suspect(line, len(file.names)):
                    cursor = f"{file.path.name}:{row_no:09d}"  # sorts as read
                    out = guarded(
                        f"{SPEC.source_system} {cursor}",
                        cursor,
                        line,
                        partial(self._event_of_line, line, cols, len(file.names), cursor, ctx),
                    )
                    if isinstance(out, InvalidRecord):  # only now: parsing for the DLQ costs
                        data = row_for_dlq(file.names, line)
                        out = InvalidRecord.of(record_id_of(data, cursor), data, out.reason)
                    if out is not None:
                        yield row_no, out

    def _event_of_line(
        self, line: str, cols: dict[str, int], width: int, cursor: str, ctx: ExtractContext
    ) -> ev.RegistrationEvent | None:
        """The line parsed as one CSV row, then :meth:`_event` (a bad quote is a bad row, not a bad run)."""
        return self._event(next(csv.reader([line])), cols, width, cursor, ctx)

    def _event(
        self, row: list[str], cols: dict[str, int], width: int, cursor: str, ctx: ExtractContext
    ) -> ev.RegistrationEvent | None:
        """The row's event, None when it is not childcare; ValueError when it cannot be read."""
        if len(row) != width:
            raise ValueError(f"expected {width} fields, found {len(row)}")
        if "\ufffd" in "".join(row):  # before the childcare test: a corrupted keyword decides nothing
            raise ValueError("bytes that are not GB18030")
        get = {key: row[i].strip() for key, i in cols.items()}.__getitem__
        scope, name, code, item = get("scope"), get("name"), get("change_code"), get("change_item")
        care = row_is_childcare(scope, name, get("industry"))
        scope_change = code == "02" and item == "经营范围"
        if not (care or scope_change):
            return None
        if code not in CHANGE_CODES:
            raise ValueError(f"unknown change type code {code!r}")
        event_type, status = CHANGE_CODES[code]
        if scope_change:
            now = scope_verdict(get("after") or scope).is_childcare
            if scope_verdict(get("before")).is_childcare != now:
                event_type, care = _SCOPE_EVENT[now], True
        if not care:
            return None
        record_id, version, event_date = get("record_id"), get("version"), parse_date(get("approved"))
        if not record_id or not version.isdigit() or event_date is None:
            raise ValueError(f"record id {record_id!r}, version {version!r} or 核准日期 missing")
        rep = legal_representative(get("rep_name"), get("rep_id"), get("rep_phone"), ctx.extracted_at.date())
        capital = get("capital")
        county, resolution = self.resolve_county(get("address"), get("division"))
        institution = ev.Institution(
            uscc=get("uscc"),
            name=name,
            legal_form=LEGAL_FORMS.get(get("entity_type"), ev.LegalForm.OTHER),
            profit_nature=ev.ProfitNature.FOR_PROFIT,
            address=get("address"),
            business_scope=scope,
            status=status,
            county_code=county,
            county_resolution=resolution,
            legal_representative=rep,
            registered_capital=Decimal(capital) if capital else None,
        )
        change = ev.FieldChange(
            CHANGE_FIELDS.get(item, item), mask_text(get("before")), mask_text(get("after"))
        )
        moved = ev.JurisdictionMove(get("moved_from") or None, get("moved_to") or None)
        return ev.RegistrationEvent.build(
            event_type=event_type,
            registrar=SPEC.registrar,
            event_date=event_date,
            extracted_at=ctx.extracted_at,
            institution=institution,
            lineage=ev.Lineage(SPEC.source_system, record_id, str(int(version)), EXTRACTED_BY, cursor),
            changed_fields=(change,) if code == "02" and item else (),
            jurisdiction=moved if code in ("05", "06") else None,
        )


def _sealed(batch: Batch, state: dict[str, Any]) -> Batch:
    batch.state = state
    batch.not_childcare = batch.read - len(batch.events) - len(batch.invalid)
    return batch
