r"""市场监管 exchange files: the daily change files an exchange front-end machine (前置机) drops.

The market register holds every market entity, so the province exchange sends *all* of a day's changes
and the childcare slice is small. This simulator renders the world's 市场监管 records into such files,
mixed with :func:`simulators.world.filler_rows` (ordinary companies and look-alikes: 托管/托养/早教).

File format (the contract ``connectors.shichang`` reads):

* ``inbox/SCJG_YYYYMMDD.csv``: every change *exchanged* on that day (a record surfaces in the file of its
  ``surfaced_at`` day, Beijing time; its 核准日期 may be older). Encoded GB18030 — what 前置机 labelled
  "GBK" actually emit, since rare name characters such as 䶮 exist only in GB18030 — with ``\\r\\n`` line
  ends, one header line, then one record per line: a field never holds a line break (the exchange
  replaces them with spaces), so the marker's row count is also the line count.
* The header is in Chinese (default) or in pinyin initials (``header="pinyin"``, as older exchange
  tables name columns), see :data:`COLUMNS`. Change type codes: 01 设立, 02 变更, 03 注销, 04 吊销,
  05 迁入, 06 迁出; a 02 row names its item (变更事项: 经营范围, 法定代表人, 注册资本…) with the old and
  new content, so a scope change that adds or removes 托育 is decidable from the row alone.
* ``SCJG_YYYYMMDD.csv.ok``: the completion marker, written after the data file, ASCII ``key=value``
  lines: ``file``, ``rows`` (data rows, header excluded), ``sha256`` (of the data file's bytes),
  ``encoding``, ``created``. A data file without a marker, or whose bytes do not hash to the marker's
  value, is still being transferred.

Quirks, at seeded per-day rates (:class:`FileQuirks`, one at most per day): a *late* file (delivered
3–6 days after its date instead of the next morning), a *resent* file (the same bytes again a day later
as ``SCJG_YYYYMMDD_resend.csv``), a *truncated* file (first delivered cut mid-row, half the time with
no marker, half with the final marker whose checksum cannot match; completed a day later). Ground truth
of a file's records is written when the complete file is visible, each line also naming its ``file``.

The world has no scope changes, so :func:`scope_change_records` adds 市场监管 enterprises whose 变更 adds
托育 (an 早教 look-alike becoming childcare) and one whose 变更 removes it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from schemas import divisions, uscc
from schemas.events import EventType, Registrar, make_event_id
from simulators.base import Simulator
from simulators.world import (
    BRANDS,
    CHILDCARE_SCOPES,
    SHENPI_PROVINCES,
    STREETS,
    Fault,
    LegalRep,
    Snapshot,
    SourceRecord,
    World,
    filler_rows,
    pref_name,
    resident_id,
)

# The exchange's format, as the registrar publishes it: declared here, not imported from the
# connector, so a connector drifting from the format is caught by the tests that read these files.
ENCODING = "gb18030"
MARKER_SUFFIX = ".ok"
_COLUMN_TABLE = """
record_id  记录编号            JLBH        version      版本号              BBH
uscc       统一社会信用代码    TYSHXYDM    name         主体名称            ZTMC
entity_type 主体类型           ZTLX        address      住所                ZS
division   住所行政区划代码    ZSXZQHDM    scope        经营范围            JYFW
industry   行业代码            HYDM        rep_name     法定代表人          FDDBR
rep_id     法定代表人证件号码  FDDBRZJHM   rep_phone    联系电话            LXDH
capital    注册资本（万元）    ZCZB        change_code  变更类型代码        BGLXDM
change_item 变更事项           BGSX        before       变更前内容          BGQNR
after      变更后内容          BGHNR       moved_from   迁出地行政区划代码  QCDXZQHDM
moved_to   迁入地行政区划代码  QRDXZQHDM   approved     核准日期            HZRQ
"""
COLUMNS = {key: (zh, py) for key, zh, py in zip(*[iter(_COLUMN_TABLE.split())] * 3, strict=True)}
"""The exchange's columns in file order: key → (Chinese header, pinyin-initials header)."""

BEIJING = timezone(timedelta(hours=8), "CST")
INBOX = "inbox"

CHANGE_CODE = {
    EventType.ESTABLISHED: "01",
    EventType.CHANGED: "02",
    EventType.SCOPE_ADDED_CHILDCARE: "02",
    EventType.SCOPE_REMOVED_CHILDCARE: "02",
    EventType.DEREGISTERED: "03",
    EventType.REVOKED: "04",
    EventType.MOVED_IN: "05",
    EventType.MOVED_OUT: "06",
}
CHANGE_ITEM = {"legal_representative.name": "法定代表人", "business_scope": "经营范围"}
FILLER_INDUSTRY = {
    "餐饮服务": "6210",
    "日用百货销售": "5211",
    "软件开发": "6511",
    "货物进出口": "5181",
    "道路货物运输": "5430",
    "建筑装饰工程": "5011",
    "美容服务": "8070",
}
LOOKALIKE_INDUSTRY = "8399"


@dataclass(frozen=True, slots=True)
class FileQuirks:
    """Per-day rates of delivery quirks (at most one per day) and the filler mix. Documented defaults."""

    late: float = 0.06
    resend: float = 0.06
    truncated: float = 0.06
    late_days: tuple[int, int] = (3, 6)
    filler_per_childcare: int = 50
    filler_min: int = 50  # rows of a day with no 市场监管 childcare record: every day has a file
    header: Literal["zh", "pinyin"] = "zh"


@dataclass(frozen=True, slots=True)
class DayPlan:
    """How one day's file is delivered."""

    day: date
    delivered_at: datetime
    quirk: Literal["late", "resend", "truncated"] | None
    marker_with_truncation: bool = False

    @property
    def name(self) -> str:
        """The data file's name."""
        return f"SCJG_{self.day:%Y%m%d}.csv"

    @property
    def followup_at(self) -> datetime:
        """When a resend arrives or a truncated file is completed."""
        return self.delivered_at + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BulkFile:
    """A file written by :func:`write_bulk_day`."""

    path: Path
    rows: int
    childcare_rows: int
    sha256: str
    bytes: int


def exchange_instant(day: date, days_after: int = 1) -> datetime:
    """02:00 Beijing time ``days_after`` days after ``day``: when the 前置机 produces the day's file."""
    return datetime.combine(day + timedelta(days=days_after), time(2, 0), tzinfo=BEIJING)


def header(style: Literal["zh", "pinyin"] = "zh") -> list[str]:
    """The header line's fields."""
    return [zh if style == "zh" else py for zh, py in COLUMNS.values()]


def marker_text(name: str, rows: int, sha256: str, created: datetime) -> str:
    """The completion marker's content."""
    return f"file={name}\nrows={rows}\nsha256={sha256}\nencoding=GB18030\ncreated={created.isoformat()}\n"


def render(rows: Iterable[Sequence[str]]) -> str:
    r"""CSV text of ``rows`` (``\r\n`` line ends), line breaks inside fields flattened to spaces."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow([f.replace("\r", " ").replace("\n", " ") for f in row])
    return buf.getvalue()


def as_row(**fields: str) -> list[str]:
    """A file row from column keys of :data:`COLUMNS` (missing ones empty)."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)}")
    return [fields.get(key, "") for key in COLUMNS]


def write_day_file(
    path: Path, rows: Sequence[Sequence[str]], created: datetime, style: Literal["zh", "pinyin"] = "zh"
) -> str:
    """Write a complete data file and then its marker; returns the sha256 (for tests and tools)."""
    data = render([header(style), *rows]).encode(ENCODING)
    digest = hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    path.with_name(path.name + MARKER_SUFFIX).write_text(
        marker_text(path.name, len(rows), digest, created), encoding="ascii"
    )
    return digest


def record_row(rec: SourceRecord) -> list[str]:
    """One world record version as a file row."""
    snap = rec.snapshot
    item = before = after = ""
    if rec.changed:
        field, before, after = rec.changed[0]
        item = CHANGE_ITEM.get(field, field)
    moved = rec.event_type in (EventType.MOVED_IN, EventType.MOVED_OUT)
    return as_row(
        record_id=rec.record_id,
        version=str(rec.version),
        uscc=snap.uscc,
        name=snap.name,
        entity_type="个体工商户" if snap.uscc[1:2] == "2" else "企业",
        address=snap.address,
        division=snap.stated_division,
        scope=snap.scope,
        industry="8020" if "托育" in snap.scope else "",
        rep_name=snap.legal_rep.name,
        rep_id=snap.legal_rep.id_number,
        rep_phone=snap.legal_rep.phone,
        capital=snap.capital_wan,
        change_code=CHANGE_CODE[rec.event_type],
        change_item=item,
        before=before,
        after=after,
        moved_from=(rec.moved_from or "") if moved else "",
        moved_to=(rec.moved_to or "") if moved else "",
        approved=rec.event_date.isoformat(),
    )


class _FillerFactory:
    """Turns :func:`filler_rows` dicts into file rows (and their ground truth), cheaply."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"{seed}:shichang:people")
        self.people = [
            LegalRep(
                rng.choice("王李张刘陈杨黄赵吴周") + rng.choice("伟芳娜敏静丽强磊洋艳"),
                resident_id(
                    rng, "441802", date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
                ),
                f"13{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}",
            )
            for _ in range(64)
        ]
        self.places: dict[str, str] = {}

    def place(self, county: str) -> str:
        if county not in self.places:
            div = divisions.lookup(county)
            pref = divisions.lookup(county[:4] + "00")
            prov = divisions.lookup(county[:2] + "0000")
            self.places[county] = "".join(d.name for d in (prov, pref, div) if d is not None)
        return self.places[county]

    def rows(
        self, rng: random.Random, count: int, day: date, pref: str, ids: Iterator[str]
    ) -> Iterator[tuple[list[str], dict[str, Any]]]:
        for filler in filler_rows(rng, count, day, pref):
            rec_id = next(ids)
            roll = rng.random()
            code, etype = ("01", EventType.ESTABLISHED) if roll < 0.7 else ("02", EventType.CHANGED)
            if roll > 0.95:
                code, etype = "03", EventType.DEREGISTERED
            rep = self.people[rng.randrange(len(self.people))]
            look = filler["lookalike"] == "1"
            change = ("注册资本", "50.00", "100.00") if code == "02" else ("", "", "")
            row = as_row(
                record_id=rec_id,
                version="1",
                uscc=filler["uscc"],
                name=filler["name"],
                entity_type="个体工商户" if filler["uscc"][1] == "2" else "企业",
                address=f"{self.place(filler['county'])}{STREETS[rng.randrange(len(STREETS))]}{rng.randint(1, 300)}号",
                division=filler["county"],
                scope=filler["scope"],
                industry=LOOKALIKE_INDUSTRY if look else FILLER_INDUSTRY.get(filler["scope"], ""),
                rep_name=rep.name,
                rep_id=rep.id_number,
                rep_phone=rep.phone,
                capital="100.00",
                change_code=code,
                change_item=change[0],
                before=change[1],
                after=change[2],
                approved=day.isoformat(),
            )
            truth = {
                "registrar": Registrar.SHICHANG.value,
                "record_id": rec_id,
                "version": 1,
                "event_id": make_event_id(Registrar.SHICHANG.value, rec_id, "1"),
                "event_type": etype.value,
                "event_date": day.isoformat(),
                "uscc": filler["uscc"],
                "county_code": filler["county"],
                "childcare": False,
                "faults": [Fault.LOOKALIKE.value] if look else [],
                "entity_key": "",
            }
            yield row, truth


def scope_change_records(world: World) -> tuple[SourceRecord, ...]:
    """市场监管 enterprises whose scope gains 托育, and one whose scope loses it.

    Per month, an 早教 company (a look-alike, not childcare) later adds 托育服务 to its scope
    (→ SCOPE_ADDED_CHILDCARE). Once, a 托育 company drops 托育 (→ SCOPE_REMOVED_CHILDCARE, which the
    health department must hear of although the new scope is not childcare) and then changes its legal
    representative (not childcare any more: not emitted). That representative's name uses 䶮, a
    character outside GBK, so decoding as GB18030 is exercised.
    """
    cfg = world.config
    rng = random.Random(f"{cfg.seed}:shichang:scope")
    prefs = [p for p in cfg.prefectures if p[:2] not in SHENPI_PROVINCES] or list(cfg.prefectures)
    out: list[SourceRecord] = []

    def company(serial: int, scope: str, kind: str, day: date) -> SourceRecord:
        pref = rng.choice(prefs)
        county = rng.choice([c for c in divisions.children(pref) if divisions.is_county_level(c.code)])
        prov, pref_div = divisions.parent(pref), divisions.lookup(pref)
        place = "".join(d.name for d in (prov, pref_div, county) if d is not None)
        address = f"{place}{rng.choice(STREETS)}{rng.randint(1, 300)}号"
        born = date(rng.randint(1970, 1995), rng.randint(1, 12), rng.randint(1, 28))
        rep = LegalRep(
            "刘䶮" if kind == "remove" else "陈晓", resident_id(rng, county.code, born), "13912345678"
        )
        snap = Snapshot(
            uscc=uscc.random_uscc(rng, registrar="9", category="1", division6=pref),
            name=f"{pref_name(pref)}{rng.choice(BRANDS)}{'教育咨询' if kind == 'add' else '儿童发展'}有限公司",
            address=address,
            stated_division=county.code,
            scope=scope,
            legal_rep=rep,
            capital_wan="50.00",
            status="ACTIVE",
        )
        moment = datetime.combine(day, time(2, 0), tzinfo=BEIJING) + timedelta(minutes=rng.randint(0, 480))
        return SourceRecord(
            registrar=Registrar.SHICHANG,
            record_id=f"SCS{serial:06d}",
            version=1,
            event_type=EventType.ESTABLISHED,
            event_date=day,
            surfaced_at=moment,
            snapshot=snap,
            county_code=county.code,
            childcare=kind == "remove",
            faults=(Fault.LOOKALIKE,) if kind == "add" else (),
            entity_key=f"S{serial:06d}",
        )

    def change(
        prev: SourceRecord, etype: EventType, field: str, new: str, gap: int, cc: bool
    ) -> SourceRecord:
        snap = prev.snapshot
        old = snap.scope if field == "business_scope" else snap.legal_rep.name
        if field == "business_scope":
            snap = replace(snap, scope=new)
        else:
            snap = replace(snap, legal_rep=replace(snap.legal_rep, name=new))
        return replace(
            prev,
            version=prev.version + 1,
            event_type=etype,
            event_date=prev.event_date + timedelta(days=gap),
            surfaced_at=prev.surfaced_at + timedelta(days=gap, minutes=rng.randint(1, 300)),
            snapshot=snap,
            childcare=cc,
            faults=(),
            changed=((field, old, new),),
        )

    early = "早期教育咨询；亲子活动策划"
    for i, month in enumerate(cfg.months):
        year, mon = (int(x) for x in month.split("-"))
        first = company(i + 1, early, "add", date(year, mon, rng.randint(1, 10)))
        added = f"托育服务；{early}"
        out += [first, change(first, EventType.SCOPE_ADDED_CHILDCARE, "business_scope", added, 12, True)]
    year, mon = (int(x) for x in cfg.months[0].split("-"))
    held = company(900, f"{CHILDCARE_SCOPES[0]}；儿童玩具销售", "remove", date(year, mon, 3))
    dropped = change(
        held, EventType.SCOPE_REMOVED_CHILDCARE, "business_scope", "儿童玩具销售；儿童用品销售", 30, True
    )
    later = change(dropped, EventType.CHANGED, "legal_representative.name", "陈晓", 25, False)
    return (*out, held, dropped, later)


class ShichangFiles(Simulator):
    """A drop folder fed by the 市场监管 exchange, one file per day, with delivery quirks."""

    registrar = Registrar.SHICHANG

    def __init__(self, world: World, root: Path, quirks: FileQuirks | None = None) -> None:
        super().__init__(World(world.config, (*world.records, *scope_change_records(world))), root)
        self.quirks = quirks or FileQuirks()
        self.inbox = self.root / INBOX
        self.inbox.mkdir(exist_ok=True)
        year, mon = (int(x) for x in world.config.months[0].split("-"))
        self.start = date(year, mon, 1)
        self.pref = next((p for p in world.config.prefectures if p[:2] not in SHENPI_PROVINCES), "441800")
        self.by_day: dict[date, list[SourceRecord]] = {}
        for rec in self.world.for_registrar(self.registrar):
            self.by_day.setdefault(rec.surfaced_at.astimezone(BEIJING).date(), []).append(rec)
        self.delivered: set[date] = set()
        self.incomplete: dict[date, tuple[bytes, list[dict[str, Any]]]] = {}  # waiting to be completed
        self.resends: dict[date, bytes] = {}
        self._filler = _FillerFactory(world.config.seed)

    def plan(self, day: date) -> DayPlan:
        """The day's delivery, drawn from an RNG of its own so it never depends on call order."""
        rng = random.Random(f"{self.world.config.seed}:shichang:plan:{day.isoformat()}")
        q = self.quirks
        roll = rng.random()
        if roll < q.late:
            return DayPlan(day, exchange_instant(day, rng.randint(*q.late_days)), "late")
        if roll < q.late + q.resend:
            return DayPlan(day, exchange_instant(day), "resend")
        if roll < q.late + q.resend + q.truncated:
            return DayPlan(day, exchange_instant(day), "truncated", rng.random() < 0.5)
        return DayPlan(day, exchange_instant(day), None)

    def publish_until(self, as_of: datetime) -> int:
        """Deliver every day file due by ``as_of``, then due resends and completions."""
        shown = 0
        day = self.start
        last = as_of.astimezone(BEIJING).date()
        while day <= last:
            plan = self.plan(day)
            if day not in self.delivered and plan.delivered_at <= as_of:
                shown += self._deliver(plan)
            day += timedelta(days=1)
        for done in sorted(self.incomplete):
            plan = self.plan(done)
            if plan.followup_at <= as_of:
                data, truth = self.incomplete.pop(done)
                self._put(plan.name, data, plan.followup_at)
                shown += self._shown(truth)
        for sent in sorted(self.resends):
            plan = self.plan(sent)
            if plan.followup_at <= as_of:
                self._put(plan.name.replace(".csv", "_resend.csv"), self.resends.pop(sent), plan.followup_at)
        return shown

    def _write(self, records: list[SourceRecord], as_of: datetime) -> None:
        """Files are delivered whole days at a time, by :meth:`publish_until`; this hook is not used."""
        raise NotImplementedError("ShichangFiles delivers day files in publish_until")

    def day_content(self, day: date) -> tuple[bytes, list[dict[str, Any]]]:
        """The day file's bytes and the ground truth of its rows (deterministic per day)."""
        name = f"SCJG_{day:%Y%m%d}.csv"
        records = self.by_day.get(day, [])
        rng = random.Random(f"{self.world.config.seed}:shichang:fill:{day.isoformat()}")
        count = max(self.quirks.filler_min, self.quirks.filler_per_childcare * len(records))
        ids = (f"SCF{day:%Y%m%d}{i:06d}" for i in range(count))
        rows: list[list[str]] = []
        truth: list[dict[str, Any]] = []
        for row, line in self._filler.rows(rng, count, day, self.pref, ids):
            rows.append(row)
            truth.append({**line, "surfaced_at": exchange_instant(day, 0).isoformat(), "file": name})
        for rec in records:
            at = rng.randint(0, len(rows))
            rows.insert(at, record_row(rec))
            truth.insert(at, {**rec.truth(), "file": name})
        data = render([header(self.quirks.header), *rows]).encode(ENCODING)
        return data, truth

    def _deliver(self, plan: DayPlan) -> int:
        data, truth = self.day_content(plan.day)
        self.delivered.add(plan.day)
        if plan.quirk == "truncated":
            cut = len(data) // 2 + 1  # mid-row, possibly mid-character
            (self.inbox / plan.name).write_bytes(data[:cut])
            if plan.marker_with_truncation:
                self._marker(plan.name, data, plan.delivered_at)
            self.incomplete[plan.day] = (data, truth)
            return 0
        self._put(plan.name, data, plan.delivered_at)
        if plan.quirk == "resend":
            self.resends[plan.day] = data
        return self._shown(truth)

    def _put(self, name: str, data: bytes, created: datetime) -> None:
        (self.inbox / name).write_bytes(data)
        self._marker(name, data, created)

    def _marker(self, name: str, data: bytes, created: datetime) -> None:
        rows = data.count(b"\n") - 1
        text = marker_text(name, rows, hashlib.sha256(data).hexdigest(), created.astimezone(BEIJING))
        (self.inbox / (name + MARKER_SUFFIX)).write_text(text, encoding="ascii")

    def _shown(self, truth: list[dict[str, Any]]) -> int:
        """Append the truth of a now complete file; returns how many world record versions it showed."""
        self._append_truth(truth)
        world = [t for t in truth if not t["record_id"].startswith("SCF")]
        self.published.update((t["record_id"], t["version"]) for t in world)
        return len(world)

    @property
    def location(self) -> Path:
        """The drop folder a reader is pointed at (``REGSYNC_SOURCES__SHICHANG_DROP_DIR``)."""
        return self.inbox


def write_bulk_day(
    folder: Path,
    day: date,
    rows: int,
    *,
    filler_per_childcare: int = 50,
    seed: int = 20260101,
    style: Literal["zh", "pinyin"] = "zh",
    name: str | None = None,
) -> BulkFile:
    """Write a big day file (and marker) fast, for the scan benchmark and the crash-resume test.

    Rows are rendered once into a pool of 10,000 filler rows and 997 childcare rows and then repeated
    under unique record ids, so writing costs little more than the bytes: about 1–2 s per million rows.
    Childcare rows are ``SCB…`` records (one per ``filler_per_childcare`` filler rows); no ground truth.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:shichang:bulk:{day.isoformat()}")
    factory = _FillerFactory(seed)
    pref = "441800"
    ids = (f"X{i}" for i in range(10**9))
    tails = [_tail(row) for row, _ in factory.rows(rng, 10_000, day, pref, ids)]
    counties = [c for c in divisions.children(pref) if divisions.is_county_level(c.code)]
    care: list[bytes] = []
    for i in range(997):
        county = rng.choice(counties)
        rep = factory.people[i % len(factory.people)]
        row = as_row(
            version="1",
            uscc=uscc.random_uscc(rng, registrar="9", category=rng.choice("12"), division6=pref),
            name=f"{county.name.rstrip('区县市')}{rng.choice(BRANDS)}{i}托育服务有限公司",
            entity_type="企业",
            address=f"{factory.place(county.code)}{rng.choice(STREETS)}{rng.randint(1, 300)}号",
            division=county.code,
            scope=rng.choice(CHILDCARE_SCOPES),
            industry="8020",
            rep_name=rep.name,
            rep_id=rep.id_number,
            rep_phone=rep.phone,
            capital="30.00",
            change_code="01",
            approved=day.isoformat(),
        )
        care.append(_tail(row))
    path = folder / (name or f"SCJG_{day:%Y%m%d}.csv")
    digest = hashlib.sha256()
    stamp = f"{day:%Y%m%d}"
    every = filler_per_childcare + 1
    childcare = 0
    with path.open("wb") as out:
        head = render([header(style)]).encode(ENCODING)
        chunk: list[bytes] = [head]
        for i in range(rows):
            if i % every == filler_per_childcare:
                chunk.append(b"SCB%s%09d" % (stamp.encode(), i) + care[childcare % len(care)])
                childcare += 1
            else:
                chunk.append(b"SCF%s%09d" % (stamp.encode(), i) + tails[i % len(tails)])
            if len(chunk) >= 20_000:
                _flush(out, chunk, digest)
        _flush(out, chunk, digest)
    path.with_name(path.name + MARKER_SUFFIX).write_text(
        marker_text(path.name, rows, digest.hexdigest(), exchange_instant(day)), encoding="ascii"
    )
    return BulkFile(path, rows, childcare, digest.hexdigest(), path.stat().st_size)


def _tail(row: list[str]) -> bytes:
    r"""A row rendered without its record id (the first column), encoded: ``,1,9144…\r\n``."""
    if next(iter(COLUMNS)) != "record_id":
        raise RuntimeError("write_bulk_day prefixes record ids: 记录编号 must stay the first column")
    return render([["", *row[1:]]]).encode(ENCODING)


def _flush(out: io.BufferedWriter, chunk: list[bytes], digest: Any) -> None:
    data = b"".join(chunk)
    digest.update(data)
    out.write(data)
    chunk.clear()
