"""教育 connector: the 托班 feed (append-only JSON Lines, format in :mod:`simulators.jiaoyu_feed`).

Every line is an event on an already registered entity: a kindergarten opened 托班, so every line is
emitted as CHILDCARE_CLASS_ADDED (no childcare filter: the feed holds nothing else), with the 托班
places as capacity.

State: ``{"cursor": HighWatermark state over the zero-padded ``seq``, "offset": bytes consumed}``.
The sequence number is the truth (a line is taken only if its ``seq`` is past the watermark); the
byte offset only saves re-reading the file from the start, and is dropped if the file got shorter
(rotated or rewritten). A new line whose ``seq`` is not past the watermark breaks the feed's promise
and goes to the DLQ rather than vanish. A last line without its newline is a writer caught mid-append: it is left
for the next run, never parsed. A whole line that is not valid JSON, or lacks ``seq``/``record_id``/
``approved_date``, goes to ``Batch.invalid``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from connectors.base import (
    Batch,
    Connector,
    ConnectorSpec,
    ExtractContext,
    HighWatermark,
    InvalidRecord,
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
        rescan = self.feed.stat().st_size < offset
        if rescan:
            offset = 0  # the file was rotated or rewritten: rescan, the seq watermark filters
        batch = Batch()
        with self.feed.open("rb") as handle:
            handle.seek(offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # torn tail: the writer has not finished this line
                offset += len(raw)
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    seq, key = int(line["seq"]), f"{line['record_id']}:{line['version']}"
                    if not mark.admits(cursor_of(seq), key):
                        if rescan or key in mark.ties:
                            continue  # taken before the file was rewritten, or sent twice
                        raise ValueError(f"seq {seq} is not after the cursor {mark.value} (out of order)")
                    batch.events.append(self._event(line, ctx))
                    batch.cursor_values.append(cursor_of(seq))
                    mark = mark.advance(cursor_of(seq), key)
                    batch.read += 1
                except (ValueError, KeyError, TypeError) as exc:
                    batch.read += 1
                    reason = f"{SPEC.source_system} byte {offset - len(raw)}: {type(exc).__name__}: {exc}"
                    batch.invalid.append(InvalidRecord(f"{self.feed.name}@{offset - len(raw)}", raw, reason))
                if len(batch.events) + len(batch.invalid) >= ctx.batch_size:
                    batch.state = {"cursor": mark.to_state(), "offset": offset}
                    yield batch
                    batch = Batch()
        if batch.read or offset != state.get("offset", 0):
            batch.state = {"cursor": mark.to_state(), "offset": offset}
            yield batch

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
