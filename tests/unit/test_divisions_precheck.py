"""The county-scoped old-name pre-check (``may_name_historically``) changes no gate verdict.

The reference is the path without any pre-check: ``_historical_address`` given the full resolution
(the unscoped old-name check this replaced had no false negatives either, so this is also the path
before the scoped pre-check). The new path
is ``_historical_address`` without a resolution, as the gate's hot path calls it. Both must give the
same violations for the county the resolver picks and for the county a record states.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import pytest

from bench.routing import load_corpus
from connectors.base import Connector
from quality import record_checks
from schemas import divisions
from schemas.divisions import Level, may_name_historically, resolve_address
from simulators.world import WorldConfig, build_world

_STREET = "人民路1号"


def _hist_entries() -> dict[str, list[divisions._Entry]]:
    return {
        name: [e for e in entries if e.kind == divisions._KIND_HIST]
        for name, entries in divisions._tables().variants.items()
        if any(e.kind == divisions._KIND_HIST for e in entries)
    }


def _names_by_code() -> dict[str, list[str]]:
    """Every name a code has had (current name first), for writing the parents as they were."""
    found: dict[str, list[str]] = defaultdict(list)
    for div in divisions.all_divisions():
        found[div.code].append(div.name)
    for name, entries in _hist_entries().items():
        for e in entries:
            found[e.code].append(name)
    return found


def _addresses_for(name: str, entry: divisions._Entry, names: dict[str, list[str]]) -> Iterator[str]:
    """An old name written alone, under today's parents, under the parents it had, and as a parent."""
    yield name + _STREET
    yield "原" + name + _STREET
    yield name + name + _STREET  # the same unit named twice: the context repeats the old code
    target = divisions.lookup(entry.target) if entry.target else None
    if target is not None:
        prov, pref = divisions._ancestors(target)
        if pref is not None and pref.code != target.code:
            yield pref.name + name + _STREET
        yield (
            "".join(d.name for d in (prov, pref) if d is not None and d.code != target.code) + name + _STREET
        )
    old_pref = entry.code[:4] + "00"
    old_prov = entry.code[:2] + "0000"
    for parent in names.get(old_pref, [])[:4] if entry.level is Level.COUNTY else []:
        yield parent + name + _STREET
        yield names.get(old_prov, [""])[0] + parent + name + _STREET
    if entry.level is Level.PREFECTURE:  # 莱芜市 + a county (current or old) under it
        below = [d.name for d in divisions.children(entry.target)][:3] if target is not None else []
        below += [
            n for code, ns in names.items() if code[:4] == entry.code[:4] and code != entry.code for n in ns
        ][:4]
        for county in below:
            yield name + county + _STREET
            yield names.get(old_prov, [""])[0] + name + county + _STREET


def _counties(address: str, stated: Iterable[str | None]) -> set[str]:
    picked = resolve_address(address).county_code
    return {c for c in (picked, *stated) if c}


def _same_verdict(address: str, county: str) -> bool:
    reference = record_checks._historical_address(address, county, resolve_address(address))
    scoped = record_checks._historical_address(address, county)
    assert scoped == reference, (address, county, reference, scoped)
    return bool(reference)


def test_every_historical_name_same_verdict_as_the_full_resolver():
    names = _names_by_code()
    checked = flagged = 0
    for name, entries in _hist_entries().items():
        for entry in entries:
            for address in dict.fromkeys(_addresses_for(name, entry, names)):
                for county in _counties(address, (entry.target,)):
                    checked += 1
                    flagged += _same_verdict(address, county)
    # The sweep exercises both outcomes at scale (2,892 old names; most have a mapped county reading).
    assert checked > 10_000
    assert flagged > 2_000


def test_address_corpus_same_verdict():
    flagged = 0
    for case in load_corpus():
        for county in _counties(case.address, (case.expected if case.expected.isdigit() else None,)):
            flagged += _same_verdict(case.address, county)
    assert flagged >= 3


@pytest.fixture(scope="module")
def world_records():
    months = tuple(f"2025-{m:02d}" for m in range(1, 7))
    return build_world(WorldConfig(seed=11, months=months, institutions_per_month=300)).records


def test_world_events_same_verdict(world_records):
    flagged = 0
    for record in world_records:
        snap = record.snapshot
        county, _ = Connector.resolve_county(snap.address, snap.stated_division)
        stated = divisions.check_code(snap.stated_division).county_code if snap.stated_division else None
        for c in _counties(snap.address, (county, stated)):
            flagged += _same_verdict(snap.address, c)
    assert len(world_records) > 1_000


def test_scoped_to_the_county():
    address = "山东省莱芜市莱城区凤城街道1号"
    county = resolve_address(address).county_code
    assert county is not None
    assert may_name_historically(address, county)
    assert record_checks._historical_address(address, county)
    assert not may_name_historically(address, "110101")  # 东城区: no old name of it in the text
    assert not may_name_historically("山东省济南市历下区泉城路1号", "370102")
    assert not may_name_historically("", county)
    assert not may_name_historically(None, county)


def test_full_width_text_is_normalized_like_the_resolver():
    address = "山东省莱芜市莱城区凤城街道１号"
    county = resolve_address(address).county_code
    assert county is not None and may_name_historically(address, county)
