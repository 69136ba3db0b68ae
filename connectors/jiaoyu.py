"""教育 connector: the 托班 feed (append-only JSON Lines, format in :mod:`simulators.jiaoyu_feed`).

Every line is an event on an already registered entity: a kindergarten opened 托班, so every line is
emitted as CHILDCARE_CLASS_ADDED (no childcare filter: the feed holds nothing else), with the 托班
places as capacity.

State: ``{"cursor": HighWatermark over the zero-padded ``seq``, "offset": bytes consumed, "identity": …}``.
The sequence number is the truth (a line is taken only if its ``seq`` is past the watermark); the
byte offset only saves re-reading the file from the start, and is dropped when the file is another
one (device, inode or first line changed: rotated) or got shorter (rewritten) — identity, not size,
so a rotated feed longer than the old offset is still read whole. A new line whose ``seq`` is not past the watermark breaks the feed's promise
and goes to the DLQ rather than vanish. A last line without its newline is a writer caught mid-append: it is left
for the next run, never parsed. A whole line that is not valid JSON, or lacks ``seq``/``record_id``/
``approved_date``, goes to ``Batch.invalid``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from connectors.base import (
    Batch,
    Connector,
    ConnectorSpec,
    ExtractContext,
    HighWatermark,
    InvalidRecord,
    UnusableRecord,
    guarded,
    parse_date,
)
from schemas import events as ev

SPEC: Final = ConnectorSpec(
    name="jiaoyu",
    registrar=ev.Registrar.JIAOYU,
    source_system="jiaoyu-feed",
    key="record_id+version",
    cursor_field="seq",
    description="教育部门 托班 feed (JSON Lines, append-only, sequence-numbered)",
    surfaced_field="reported_at",
)
EXTRACTED_BY: Final = "connectors.jiaoyu@0.1.0"
SERVICE_FORMS: Final = {form.label_zh: form for form in ev.ServiceForm}
OWNERSHIP: Final = {
    "公办": ev.ProfitNature.NON_PROFIT,
    "民办非营利": ev.ProfitNature.NON_PROFIT,
    "民办营利": ev.ProfitNature.FOR_PROFIT,
}
LEGAL_FORMS: Final = {  # by the USCC's registrar and category characters
    "12": ev.LegalForm.PUBLIC_INSTITUTION,
    "52": ev.LegalForm.PRIVATE_NON_ENTERPRISE,
    "91": ev.LegalForm.ENTERPRISE,
    "92": ev.LegalForm.INDIVIDUAL_BUSINESS,
}


_SKIP: Final = object()
_LATER: Final = object()
_HEAD_BYTES: Final = 4096


def _reported_after(line: Mapping[str, Any], ctx: ExtractContext) -> bool:
    """The end bound: a line ``reported_at`` after the run's as-of is not this run's (unparsable: it is)."""
    try:
        reported = datetime.fromisoformat(str(line.get("reported_at")))
    except ValueError:
        return False
    return reported.tzinfo is not None and reported > ctx.extracted_at


def _identity(feed: Path) -> dict[str, Any]:
    """Which file this is: device, inode and a hash of its first line (or first 4 KiB).

    Size says nothing when a rotated feed is longer than the old offset; the inode changes when a
    new file is moved into place, and the head hash catches a copy over the old inode.
    """
    info = feed.stat()
    with feed.open("rb") as handle:
        head = handle.read(_HEAD_BYTES).split(b"\n", 1)[0]
    return {"dev": info.st_dev, "ino": info.st_ino, "head": hashlib.sha256(head).hexdigest()[:16]}


def cursor_of(seq: int) -> str:
    """``seq`` as a cursor value that sorts as text (HighWatermark compares strings)."""
    return f"{seq:012d}"


class JiaoyuConnector(Connector):
    """Reads the 托班 feed file from the last offset, in ``seq`` order."""

    spec = SPEC

    def __init__(self, feed: Path) -> None:
        self.feed = Path(feed)

    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        """Whole lines after the saved offset whose ``seq`` is new, ``ctx.batch_size`` at a time."""
        mark = HighWatermark.from_state(state.get("cursor"))
        offset = int(state.get("offset", 0))
        if not self.feed.exists():
            return
        identity = _identity(self.feed)
        saved = state.get("identity")
        rescan = self.feed.stat().st_size < offset or (saved is not None and saved != identity)
        if rescan:
            offset = 0  # another file (rotated) or rewritten: read it whole, the seq watermark filters
        batch = Batch()
        with self.feed.open("rb") as handle:
            handle.seek(offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # torn tail: the writer has not finished this line
                offset += len(raw)
                if not raw.strip():
                    continue
                out = guarded(
                    f"{SPEC.source_system} byte {offset - len(raw)}",
                    f"{self.feed.name}@{offset - len(raw)}",
                    raw,
                    partial(self._line, raw, mark, rescan, ctx),
                )
                if out is _LATER:  # reported after the as-of: this line and the rest wait for the next run
                    offset -= len(raw)
                    break
                if out is _SKIP:
                    continue
                batch.read += 1
                if isinstance(out, InvalidRecord):
                    batch.invalid.append(out)
                else:
                    event, key, reported = out
                    batch.events.append(event)
                    self.note_surfaced(batch, event.event_id, reported)
                    batch.cursor_values.append(event.lineage.cursor_value or "")
                    mark = mark.advance(event.lineage.cursor_value or "", key)
                if len(batch.events) + len(batch.invalid) >= ctx.batch_size:
                    batch.state = {"cursor": mark.to_state(), "offset": offset, "identity": identity}
                    yield batch
                    batch = Batch()
        if batch.read or offset != state.get("offset", 0) or saved != identity:
            batch.state = {"cursor": mark.to_state(), "offset": offset, "identity": identity}
            yield batch

    def _line(
        self, raw: bytes, mark: HighWatermark, rescan: bool, ctx: ExtractContext
    ) -> tuple[ev.RegistrationEvent, str, Any] | object:
        """The event of one feed line, its tie key and ``reported_at``, or ``_SKIP`` for a line taken before."""
        line = json.loads(raw)
        if not isinstance(line, dict):
            raise UnusableRecord(f"a JSON {type(line).__name__}, not an object")
        if _reported_after(line, ctx):
            return _LATER
        seq, key = int(line["seq"]), f"{line['record_id']}:{line['version']}"
        if not mark.admits(cursor_of(seq), key):
            if rescan or key in mark.ties:
                return _SKIP  # taken before the file was rewritten, or sent twice
            raise ValueError(f"seq {seq} is not after the cursor {mark.value} (out of order)")
        return self._event(line, ctx), key, line.get("reported_at")

    def _event(self, line: Mapping[str, Any], ctx: ExtractContext) -> ev.RegistrationEvent:
        """The CHILDCARE_CLASS_ADDED event of one feed line (ValueError/KeyError when unusable)."""
        event_date = parse_date(line["approved_date"])
        if event_date is None:
            raise ValueError("approved_date empty")
        uscc = str(line.get("uscc") or "")
        address, division = str(line.get("address") or ""), str(line.get("division_code") or "")
        county, resolution = self.resolve_county(address, division)
        places = line.get("tuoban_places")
        forms = tuple(SERVICE_FORMS[f] for f in line.get("service_forms") or () if f in SERVICE_FORMS)
        rep = str(line.get("legal_rep_name") or "")
        institution = ev.Institution(
            uscc=uscc,
            name=str(line.get("kindergarten_name") or ""),
            legal_form=LEGAL_FORMS.get(uscc[:2], ev.LegalForm.OTHER),
            profit_nature=OWNERSHIP.get(str(line.get("ownership")), ev.ProfitNature.UNKNOWN),
            address=address,
            business_scope=str(line.get("scope") or ""),
            status=ev.InstitutionStatus.ACTIVE,
            county_code=county,
            county_resolution=resolution,
            legal_representative=ev.LegalRepresentative(rep) if rep else None,
            service_forms=forms or None,
            capacity=int(places) if places is not None else None,
        )
        return ev.RegistrationEvent.build(
            event_type=ev.EventType.CHILDCARE_CLASS_ADDED,
            registrar=SPEC.registrar,
            event_date=event_date,
            extracted_at=ctx.extracted_at,
            institution=institution,
            lineage=ev.Lineage(
                SPEC.source_system,
                str(line["record_id"]),
                str(line["version"]),
                EXTRACTED_BY,
                cursor_of(int(line["seq"])),
            ),
        )
