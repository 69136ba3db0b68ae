"""教育 feed: kindergartens opening 托班, as an append-only JSON Lines file with a sequence number.

The education department does not register entities; it reports that an already registered
kindergarten (a 事业单位 ``12…``, a 民办非企业单位 ``52…`` or an enterprise ``91…``) opened 托班 (classes
for 2–3 year-olds). Each report is one line of ``feed/tuoban_feed.jsonl`` (UTF-8), appended in
publishing order with ``seq`` increasing by one — the cursor a consumer keeps:

``{"seq": 7, "record_id": "JY0000007", "version": 1, "uscc": "12441800…", "kindergarten_name": "佛冈小太阳幼儿园",
"ownership": "公办", "address": "广东省清远市佛冈县…", "division_code": "441821", "scope": "学前教育；托班",
"tuoban_classes": 4, "tuoban_places": 80, "service_forms": ["全日托"], "legal_rep_name": "王娟",
"approved_date": "2026-01-24", "reported_at": "2026-01-29T02:33:00+00:00"}``

``ownership`` is 公办 (``1…`` codes), 民办非营利 (``5…``) or 民办营利 (``9…``). Places are the capacity;
classes are places / 20 rounded up (a 托大班 holds at most 20 children).

Quirk: a *torn tail*. With probability ``torn_rate`` per publish call the last line is written only
partly (cut mid-character, no newline), as a writer caught mid-append leaves it; the rest arrives on the
next call. A consumer must not read a line without its newline. Ground truth of a record is written
once its line is whole.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.events import Registrar
from simulators.base import Simulator
from simulators.world import SourceRecord, World

FEED = Path("feed") / "tuoban_feed.jsonl"
SERVICE_FORM_ZH = {"FULL_DAY": "全日托", "HALF_DAY": "半日托", "HOURLY": "计时托", "TEMPORARY": "临时托"}
OWNERSHIP = {"1": "公办", "5": "民办非营利", "9": "民办营利"}


def feed_line(seq: int, rec: SourceRecord) -> dict[str, Any]:
    """One world record version as the feed states it."""
    snap = rec.snapshot
    places = snap.capacity or 0
    return {
        "seq": seq,
        "record_id": rec.record_id,
        "version": rec.version,
        "uscc": snap.uscc,
        "kindergarten_name": snap.name,
        "ownership": OWNERSHIP.get(snap.uscc[:1], "其他"),
        "address": snap.address,
        "division_code": snap.stated_division,
        "scope": snap.scope,
        "tuoban_classes": max(1, math.ceil(places / 20)),
        "tuoban_places": places,
        "service_forms": [SERVICE_FORM_ZH[f] for f in snap.service_forms],
        "legal_rep_name": snap.legal_rep.name,
        "approved_date": rec.event_date.isoformat(),
        "reported_at": rec.surfaced_at.isoformat(),
    }


class JiaoyuFeed(Simulator):
    """The 教育 department's 托班 feed file."""

    registrar = Registrar.JIAOYU

    def __init__(self, world: World, root: Path, torn_rate: float = 0.3) -> None:
        super().__init__(world, root)
        self.feed = self.root / FEED
        self.feed.parent.mkdir(parents=True, exist_ok=True)
        self.feed.touch()
        self.torn_rate = torn_rate
        self.seq = 0
        self.rng = random.Random(f"{world.config.seed}:jiaoyu:torn")
        self.torn: tuple[bytes, SourceRecord] | None = None  # the rest of a half-written line

    def publish_until(self, as_of: datetime) -> int:
        """Finish a torn line first, then append what surfaced by ``as_of``; returns lines made whole."""
        whole: list[SourceRecord] = []
        if self.torn is not None:
            rest, rec = self.torn
            self.torn = None
            with self.feed.open("ab") as handle:
                handle.write(rest)
            whole.append(rec)
        new = self.pending(as_of)
        if new:
            self._write(new, as_of)
            self.published.update((r.record_id, r.version) for r in new)
            whole += new[:-1] if self.torn is not None else new
        self._append_truth(r.truth() for r in whole)
        return len(whole)

    def _write(self, records: list[SourceRecord], as_of: datetime) -> None:
        """Append one line per record; maybe leave the last one torn (see the module docstring)."""
        lines = []
        for rec in records:
            self.seq += 1
            lines.append((json.dumps(feed_line(self.seq, rec), ensure_ascii=False) + "\n").encode("utf-8"))
        if self.rng.random() < self.torn_rate:
            cut = len(lines[-1]) // 2 + 1  # mid-line, often inside a 3-byte UTF-8 character
            self.torn = (lines[-1][cut:], records[-1])
            lines[-1] = lines[-1][:cut]
        with self.feed.open("ab") as handle:
            handle.write(b"".join(lines))

    @property
    def location(self) -> Path:
        """The feed file a reader is pointed at (``REGSYNC_SOURCES__JIAOYU_FEED``)."""
        return self.feed
