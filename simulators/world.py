"""A seeded, reproducible world of childcare institutions and their registrar activity.

The five registrar simulators render this one timeline into their own systems (a 编制 database, a
民政 HTTP API, 市场监管 exchange files, a 行政审批 database, a 教育 feed), so the same institution can
surface at two registrars and every fault is known in advance. Each source record version carries its
ground truth (expected event type, childcare or not, injected faults), which the simulators write beside
their data and the tests reconcile against.

Time: every record has an ``event_date`` (the registrar's 核准日期) and a ``surfaced_at`` instant (when
it appears in the source system). A simulator shows only what has surfaced by the pipeline's "as of"
clock, so months can be replayed in order; a *late* record surfaces after its registration month.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from schemas import divisions, uscc
from schemas.events import EventType, Registrar

# Counties the default world covers: 清远 (Guangdong, 市场监管/民政 register) and 济南 (Shandong, where
# 行政审批服务局 took over registration). 莱城区 371202 was abolished (→ 莱芜区 370116) in 2018.
DEFAULT_PREFECTURES = ("441800", "370100")
SHENPI_PROVINCES = ("37",)
ABOLISHED_COUNTIES = {"371202": ("莱芜市", "莱城区")}
DEV_ZONES = {"370100": "济南高新技术产业开发区", "441800": "清远高新技术产业开发区"}


class Fault(StrEnum):
    """Injected faults; the quality gate must catch each (issue 5 maps them to rule ids)."""

    BAD_CHECK_DIGIT = "bad_check_digit"
    MISSING_NAME = "missing_name"
    MISSING_ADDRESS = "missing_address"
    UNKNOWN_DIVISION = "unknown_division"
    ABOLISHED_DIVISION = "abolished_division"
    PREFIX_MISMATCH = "prefix_mismatch"
    FUTURE_DATE = "future_date"
    BAD_LEGAL_REP_ID = "bad_legal_rep_id"
    LATE = "late"
    DUPLICATE_REGISTRAR = "duplicate_registrar"
    LOOKALIKE = "lookalike"


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Share of institutions (or of records, for LATE) receiving each fault. Documented defaults."""

    bad_check_digit: float = 0.02
    missing_name: float = 0.01
    missing_address: float = 0.01
    unknown_division: float = 0.02
    abolished_division: float = 0.03
    prefix_mismatch: float = 0.01
    future_date: float = 0.01
    bad_legal_rep_id: float = 0.02
    late: float = 0.08
    duplicate_registrar: float = 0.03
    lookalike: float = 0.15


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """What to generate. ``months`` are the registration months replayed, oldest first."""

    seed: int = 20260101
    months: tuple[str, ...] = ("2026-01", "2026-02", "2026-03")
    institutions_per_month: int = 40
    prefectures: tuple[str, ...] = DEFAULT_PREFECTURES
    faults: FaultRates = field(default_factory=FaultRates)


@dataclass(frozen=True, slots=True)
class LegalRep:
    """Legal representative as the source holds it (full ID: simulators are source systems)."""

    name: str
    id_number: str
    phone: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The institution's registered facts after one change."""

    uscc: str
    name: str
    address: str
    stated_division: str
    scope: str
    legal_rep: LegalRep
    capital_wan: str
    status: str  # ACTIVE | DEREGISTERED | REVOKED | MOVED_OUT
    service_forms: tuple[str, ...] = ()
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One version of one record in one registrar's system, with its ground truth."""

    registrar: Registrar
    record_id: str
    version: int
    event_type: EventType
    event_date: date
    surfaced_at: datetime
    snapshot: Snapshot
    county_code: str | None  # the true county (None when the data cannot be routed)
    childcare: bool
    faults: tuple[Fault, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()  # (field, old, new) for CHANGED
    moved_from: str | None = None
    moved_to: str | None = None
    entity_key: str = ""  # the same real institution across registrars

    def truth(self) -> dict[str, object]:
        """The ground-truth line the simulators write beside their data."""
        from schemas.events import make_event_id

        return {
            "registrar": self.registrar.value,
            "record_id": self.record_id,
            "version": self.version,
            "event_id": make_event_id(self.registrar.value, self.record_id, str(self.version)),
            "event_type": self.event_type.value,
            "event_date": self.event_date.isoformat(),
            "surfaced_at": self.surfaced_at.isoformat(),
            "uscc": self.snapshot.uscc,
            "county_code": self.county_code,
            "childcare": self.childcare,
            "faults": [f.value for f in self.faults],
            "entity_key": self.entity_key,
        }


@dataclass(frozen=True, slots=True)
class World:
    """The full timeline; simulators filter it by registrar and by the as-of clock."""

    config: WorldConfig
    records: tuple[SourceRecord, ...]

    def for_registrar(self, registrar: Registrar) -> list[SourceRecord]:
        """One system's records in surfacing order."""
        return sorted(
            (r for r in self.records if r.registrar is registrar),
            key=lambda r: (r.surfaced_at, r.record_id, r.version),
        )

    def surfaced(self, registrar: Registrar, as_of: datetime) -> list[SourceRecord]:
        """What that system holds at the as-of instant."""
        return [r for r in self.for_registrar(registrar) if r.surfaced_at <= as_of]


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢宋唐许韩冯邓曹彭曾"
GIVEN = "伟芳娜敏静丽强磊洋艳勇军杰娟涛明超秀霞平刚桂英华玉兰萍红梅琳晨悦欣怡"
BRANDS = (
    "阳光",
    "小太阳",
    "贝贝",
    "童心",
    "爱心",
    "启航",
    "悦成长",
    "小橙子",
    "禾苗",
    "星星",
    "乐育",
    "暖暖",
)
STREETS = ("育才路", "建设路", "人民路", "解放路", "文昌街", "和平路", "新华路", "朝阳路", "花园街", "学府路")
CHILDCARE_SCOPES = (
    "托育服务；婴幼儿照护服务（3岁以下）",
    "托育服务；婴幼儿早期发展指导",
    "3岁以下婴幼儿照护服务；全日托、半日托、计时托",
    "托育服务（不含餐饮）；家庭教育咨询",
)
FAMILY_SCOPE = "家庭托育服务"
KINDERGARTEN_SCOPE = "学前教育"
LOOKALIKE_SCOPES = (
    "学生托管服务；午托、晚托",
    "残疾人托养服务",
    "早期教育咨询；亲子活动策划",
    "课后托管服务",
)
FILLER_SCOPES = (
    "餐饮服务",
    "日用百货销售",
    "软件开发",
    "货物进出口",
    "道路货物运输",
    "建筑装饰工程",
    "美容服务",
)


def resident_id(rng: random.Random, county: str, born: date) -> str:
    """A valid GB 11643 resident ID (weights 2^(17-i) mod 11; check = (12 - Σ mod 11) mod 11)."""
    body = f"{county}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    total = sum(int(ch) * (2 ** (17 - i) % 11) for i, ch in enumerate(body))
    check = (12 - total % 11) % 11
    return body + ("X" if check == 10 else str(check))


class _Builder:
    """Draws institutions and their change sequences from one seeded RNG."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.counties = {
            pref: [c for c in divisions.children(pref) if divisions.is_county_level(c.code)]
            for pref in config.prefectures
        }
        self.records: list[SourceRecord] = []
        self.serial = 0

    # helpers ----------------------------------------------------------------------------------
    def _p(self, rate: float) -> bool:
        return self.rng.random() < rate

    def _person(self, county: str) -> LegalRep:
        rng = self.rng
        born = date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        phone = f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"
        return LegalRep(name, resident_id(rng, county, born), phone)

    def _address(self, pref: str, county_name: str) -> str:
        prov = divisions.parent(pref)
        pref_div = divisions.lookup(pref)
        assert prov is not None
        assert pref_div is not None
        return (
            f"{prov.name}{pref_div.name}{county_name}{self.rng.choice(STREETS)}{self.rng.randint(1, 300)}号"
        )

    def _instant(self, day: date, lag_days: int) -> datetime:
        """A working-hours instant ``lag_days`` after ``day`` (Asia/Shanghai office hours, in UTC)."""
        moment = datetime.combine(day + timedelta(days=lag_days), time(1, 0), tzinfo=UTC)
        return moment + timedelta(minutes=self.rng.randint(0, 8 * 60))

    # institutions -----------------------------------------------------------------------------
    def build(self) -> World:
        for month in self.config.months:
            year, mon = (int(x) for x in month.split("-"))
            for _ in range(self.config.institutions_per_month):
                day = date(year, mon, self.rng.randint(1, 28))
                self._institution(day)
        self.records.sort(key=lambda r: (r.surfaced_at, r.registrar.value, r.record_id, r.version))
        return World(self.config, tuple(self.records))

    def _choose_registrar(self, pref: str) -> tuple[Registrar, str, str]:
        """(registrar, USCC registrar char, category) by where the institution is and what it is."""
        shenpi = pref[:2] in SHENPI_PROVINCES
        roll = self.rng.random()
        if roll < 0.15:
            return Registrar.BIANZHI, "1", "2"
        if roll < 0.40:
            return (Registrar.SHENPI if shenpi else Registrar.MINZHENG), "5", "2"
        if roll < 0.55:
            return (Registrar.SHENPI if shenpi else Registrar.SHICHANG), "9", "2"
        return (Registrar.SHENPI if shenpi else Registrar.SHICHANG), "9", "1"

    def _institution(self, day: date) -> None:
        rng, rates = self.rng, self.config.faults
        pref = rng.choice(self.config.prefectures)
        county = rng.choice(self.counties[pref])
        registrar, reg_char, category = self._choose_registrar(pref)
        self.serial += 1
        entity_key = f"E{self.serial:06d}"
        faults: list[Fault] = []
        brand = rng.choice(BRANDS)
        short = county.name.rstrip("区县市")
        if reg_char == "1":
            name = f"{short}{brand}公办托育中心"
        elif reg_char == "5":
            name = f"{short}{brand}托育园"
        elif category == "2":
            name = f"{short}{brand}家庭托育点"
        else:
            name = f"{pref_name(pref)}{brand}托育服务有限公司"
        scope = FAMILY_SCOPE if category == "2" and reg_char == "9" else rng.choice(CHILDCARE_SCOPES)
        code = uscc.random_uscc(rng, registrar=reg_char, category=category, division6=pref)
        if self._p(rates.prefix_mismatch) and registrar is not Registrar.SHENPI:
            # e.g. a 民政 record carrying an enterprise code: registrar/prefix inconsistency.
            wrong = "9" if reg_char != "9" else "5"
            code = uscc.random_uscc(
                rng, registrar=wrong, category="1" if wrong == "9" else "2", division6=pref
            )
            faults.append(Fault.PREFIX_MISMATCH)
        if self._p(rates.bad_check_digit):
            last = code[-1]
            code = code[:-1] + next(ch for ch in uscc.ALPHABET if ch != last)
            faults.append(Fault.BAD_CHECK_DIGIT)
        address = self._address(pref, county.name)
        stated = county.code
        true_county: str | None = county.code
        if self._p(rates.abolished_division) and pref == "370100":
            old_pref, old_county = ABOLISHED_COUNTIES["371202"]
            address = f"山东省{old_pref}{old_county}{rng.choice(STREETS)}{rng.randint(1, 300)}号"
            stated, true_county = "371202", "370116"
            faults.append(Fault.ABOLISHED_DIVISION)
        elif self._p(rates.unknown_division):
            address = f"{DEV_ZONES[pref]}{rng.choice(STREETS)}{rng.randint(1, 300)}号"
            stated, true_county = pref[:4] + "71", None  # a 开发区 code not in GB/T 2260
            faults.append(Fault.UNKNOWN_DIVISION)
        if self._p(rates.missing_name):
            name = ""
            faults.append(Fault.MISSING_NAME)
        elif self._p(rates.missing_address):
            address = ""
            faults.append(Fault.MISSING_ADDRESS)
        rep = self._person(county.code)
        if self._p(rates.bad_legal_rep_id):
            rep = replace(rep, id_number=rep.id_number[:-1] + ("0" if rep.id_number[-1] != "0" else "1"))
            faults.append(Fault.BAD_LEGAL_REP_ID)
        forms = tuple(sorted(rng.sample(["FULL_DAY", "HALF_DAY", "HOURLY", "TEMPORARY"], rng.randint(1, 3))))
        capacity = 5 if category == "2" and reg_char == "9" else rng.choice((20, 40, 60, 80, 120))
        snap = Snapshot(
            uscc=code,
            name=name,
            address=address,
            stated_division=stated,
            scope=scope,
            legal_rep=rep,
            capital_wan=f"{rng.choice((3, 10, 30, 50, 100, 200))}.00",
            status="ACTIVE",
            service_forms=forms,
            capacity=capacity,
        )
        record_id = f"{registrar.value[:2]}{self.serial:07d}"
        event_date = day
        if self._p(rates.future_date):
            event_date = day + timedelta(days=400)
            faults.append(Fault.FUTURE_DATE)
        late = self._p(rates.late)
        lag = rng.randint(32, 50) if late else rng.randint(0, 3)
        common = {"entity_key": entity_key, "county_code": true_county, "childcare": True}
        first = SourceRecord(
            registrar=registrar,
            record_id=record_id,
            version=1,
            event_type=EventType.ESTABLISHED,
            event_date=event_date,
            surfaced_at=self._instant(day, lag),
            snapshot=snap,
            faults=(*faults, Fault.LATE) if late else tuple(faults),
            **common,
        )
        self.records.append(first)
        self._lifecycle(first, common)
        if self._p(rates.duplicate_registrar) and registrar is Registrar.SHENPI and reg_char == "9":
            # The province-wide 市场监管 exchange also carries this 行政审批 registration.
            self.records.append(
                replace(
                    first,
                    registrar=Registrar.SHICHANG,
                    record_id=f"SC{self.serial:07d}",
                    surfaced_at=first.surfaced_at + timedelta(days=1),
                    faults=(*first.faults, Fault.DUPLICATE_REGISTRAR),
                )
            )
        if reg_char in "15" and self._p(0.1):
            # A kindergarten run by this body opens a 托班: the 教育 feed reports it.
            kg = replace(snap, name=f"{short}{brand}幼儿园", scope=f"{KINDERGARTEN_SCOPE}；托班")
            self.records.append(
                SourceRecord(
                    registrar=Registrar.JIAOYU,
                    record_id=f"JY{self.serial:07d}",
                    version=1,
                    event_type=EventType.CHILDCARE_CLASS_ADDED,
                    event_date=day + timedelta(days=20),
                    surfaced_at=self._instant(day + timedelta(days=20), rng.randint(0, 5)),
                    snapshot=kg,
                    entity_key=entity_key,
                    county_code=true_county,
                    childcare=True,
                )
            )

    def _lifecycle(self, first: SourceRecord, common: dict[str, object]) -> None:
        """Later versions of the same source record: 变更, then maybe 注销/吊销 or 迁出 → 迁入."""
        rng = self.rng
        prev = first
        months_left = 3
        for version in range(2, 5):
            roll = rng.random()
            if roll > 0.35 or months_left <= 0:
                return
            gap = rng.randint(10, 40)
            day = prev.event_date + timedelta(days=gap)
            surfaced = prev.surfaced_at + timedelta(days=gap, minutes=rng.randint(1, 600))
            snap = prev.snapshot
            kind = rng.random()
            if kind < 0.5:
                new_rep = self._person((prev.county_code or "110101")[:6])
                snap = replace(snap, legal_rep=new_rep)
                rec = replace(
                    prev,
                    version=version,
                    event_type=EventType.CHANGED,
                    event_date=day,
                    surfaced_at=surfaced,
                    snapshot=snap,
                    faults=(),
                    changed=(("legal_representative.name", prev.snapshot.legal_rep.name, new_rep.name),),
                )
            elif kind < 0.65:
                snap = replace(snap, status="DEREGISTERED")
                rec = replace(
                    prev,
                    version=version,
                    event_type=EventType.DEREGISTERED,
                    event_date=day,
                    surfaced_at=surfaced,
                    snapshot=snap,
                    faults=(),
                    changed=(),
                )
            elif kind < 0.75:
                snap = replace(snap, status="REVOKED")
                rec = replace(
                    prev,
                    version=version,
                    event_type=EventType.REVOKED,
                    event_date=day,
                    surfaced_at=surfaced,
                    snapshot=snap,
                    faults=(),
                    changed=(),
                )
            elif prev.county_code and prev.registrar in (Registrar.SHICHANG, Registrar.SHENPI):
                pref = prev.county_code[:4] + "00"
                options = [c for c in self.counties.get(pref, []) if c.code != prev.county_code]
                if not options:
                    return
                dest = rng.choice(options)
                out = replace(
                    prev,
                    version=version,
                    event_type=EventType.MOVED_OUT,
                    event_date=day,
                    surfaced_at=surfaced,
                    snapshot=replace(snap, status="MOVED_OUT"),
                    faults=(),
                    changed=(),
                    moved_from=prev.county_code,
                    moved_to=dest.code,
                )
                self.records.append(out)
                new_addr = self._address(pref, dest.name)
                rec = replace(
                    out,
                    version=version + 1,
                    event_type=EventType.MOVED_IN,
                    surfaced_at=surfaced + timedelta(hours=2),
                    snapshot=replace(snap, status="ACTIVE", address=new_addr, stated_division=dest.code),
                    county_code=dest.code,
                )
                self.records.append(rec)
                return
            else:
                return
            self.records.append(rec)
            prev = rec
            if rec.event_type in (EventType.DEREGISTERED, EventType.REVOKED):
                return
            months_left -= 1


def pref_name(pref: str) -> str:
    """Short prefecture name for enterprise names (清远, 济南)."""
    div = divisions.lookup(pref)
    return div.name.rstrip("市") if div else ""


def build_world(config: WorldConfig | None = None) -> World:
    """The deterministic world for ``config`` (same seed, same world)."""
    return _Builder(config or WorldConfig()).build()


def filler_rows(rng: random.Random, count: int, day: date, pref: str = "441800") -> Iterator[dict[str, str]]:
    """Non-childcare market entities (and look-alikes) that fill a 市场监管 daily file.

    Cheap on purpose: the province backfill benchmark asks for millions of these.
    """
    counties = [c.code for c in divisions.children(pref)]
    for i in range(count):
        look = rng.random() < 0.02
        scope = rng.choice(LOOKALIKE_SCOPES) if look else rng.choice(FILLER_SCOPES)
        yield {
            "uscc": uscc.random_uscc(rng, registrar="9", category=rng.choice("12"), division6=pref),
            "name": f"{pref_name(pref)}{rng.choice(BRANDS)}{i % 997}商贸有限公司",
            "scope": scope,
            "county": rng.choice(counties),
            "lookalike": "1" if look else "0",
            "day": day.isoformat(),
        }


def lookalike_records(
    world: World, registrar: Registrar, variants: tuple[tuple[str, str, str], ...], prefix: str
) -> list[SourceRecord]:
    """Non-childcare look-alikes (托养, 托管, 早教…) that a registrar holds beside its childcare records.

    Registrar systems that are mostly childcare still hold near misses, and the connectors' childcare
    filter must prove itself on them. For a ``faults.lookalike`` share of the registrar's first
    versions, one look-alike surfaces 1–20 minutes later in the same place (so it often shares a
    cursor value with a real record). ``variants`` are (name suffix, scope, USCC registrar+category
    such as ``"12"``). Drawn from a separate RNG seeded by the world's seed and the registrar, so the
    world itself is unchanged; record ids are ``prefix`` + a serial; ground truth says not childcare.
    """
    rng = random.Random(f"{world.config.seed}:{registrar.value}:lookalike")
    out: list[SourceRecord] = []
    for base in world.for_registrar(registrar):
        if base.version != 1 or rng.random() >= world.config.faults.lookalike:
            continue
        suffix, scope, kind = rng.choice(variants)
        div = divisions.lookup(base.county_code or base.snapshot.stated_division)
        region = base.snapshot.legal_rep.id_number[:6]
        born = date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
        rep = LegalRep(
            rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
            resident_id(rng, region, born),
            f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}",
        )
        snap = replace(
            base.snapshot,
            uscc=uscc.random_uscc(
                rng, registrar=kind[0], category=kind[1], division6=base.snapshot.uscc[2:8]
            ),
            name=f"{div.name.rstrip('区县市') if div else ''}{suffix}",
            scope=scope,
            legal_rep=rep,
            service_forms=(),
            capacity=None,
        )
        out.append(
            SourceRecord(
                registrar=registrar,
                record_id=f"{prefix}{len(out) + 1:07d}",
                version=1,
                event_type=EventType.ESTABLISHED,
                event_date=base.surfaced_at.date(),
                surfaced_at=base.surfaced_at + timedelta(minutes=rng.randint(1, 20)),
                snapshot=snap,
                county_code=base.county_code,
                childcare=False,
                faults=(Fault.LOOKALIKE,),
                entity_key=f"{base.entity_key}-L",
            )
        )
    return out
