"""County routing over the address corpus (tests/unit/data/addresses.tsv), and the two address classes
that used to fail: a prefecture written without 市 fused with a county whose name begins with 市, and an
address naming two counties (a boundary)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.routing import AMBIGUOUS, UNKNOWN, load_corpus, outcome
from schemas import divisions as dv
from schemas.divisions import Confidence, Level

CORPUS = load_corpus()


def test_corpus_is_wide_and_its_expectations_are_real_divisions():
    classes = {c.klass for c in CORPUS}
    assert {
        "full",
        "suffix_dropped",
        "abolished",
        "development_zone",
        "fused_prefecture",
        "boundary",
    } <= classes
    for prefecture in ("371500", "371300", "441800"):  # every county of the seeds' cities, several forms
        for county in dv.children(prefecture):
            forms = [c for c in CORPUS if c.expected == county.code]
            assert len(forms) >= 5, county
    for case in CORPUS:
        if case.expected not in (AMBIGUOUS, UNKNOWN):
            assert dv.is_routing_unit(case.expected), case


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: f"{c.klass}:{c.address}")
def test_corpus_address_routes_as_expected(case):
    result = dv.resolve_address(case.address)
    assert outcome(result) == case.expected, (result.reason, result.matched, result.notes)
    if case.expected == AMBIGUOUS:
        assert result.confidence is Confidence.UNRESOLVED
        assert len(result.candidates) >= 2


# ------------------------------------------------------------------------- 1. fused 市 (济南 + 市中区)


@pytest.mark.parametrize(
    ("address", "county"),
    [
        ("济南市中区经十路100号", "370103"),
        ("山东省济南市中区舜耕路", "370103"),
        ("枣庄市中区光明路", "370402"),
        ("青岛市南区香港中路", "370202"),
        ("山东省青岛市北区辽宁路", "370203"),
        ("四川省乐山市中区", "511102"),
    ],
)
def test_prefecture_without_shi_fused_with_a_county_starting_with_shi(address, county):
    r = dv.resolve_address(address)
    assert r.county_code == county
    assert r.reason is None
    assert r.prefecture.code == county[:4] + "00"
    assert "prefecture_suffix_fused" in r.notes  # the auditor sees the text was split the other way
    assert r.matched[-1] in ("市中区", "市南区", "市北区")


def test_fused_old_name_maps_forward():
    r = dv.resolve_address("泸州市中区")  # 市中区 510502 renamed 江阳区 in 1995
    assert r.county_code == "510502"
    assert r.county.name == "江阳区"
    assert "historical_name" in r.notes


@pytest.mark.parametrize(
    "address", ["济南市中心医院旁", "青岛市南京路", "济南市中山公园", "济南市中", "济南市中区域内"]
)
def test_words_starting_with_shi_after_a_prefecture_are_not_counties(address):
    r = dv.resolve_address(address)
    assert r.county is None
    assert r.reason != "ambiguous"


def test_shi_written_twice_is_the_plain_reading():
    r = dv.resolve_address("济南市市中区经十路")
    assert r.county_code == "370103"
    assert r.confidence is Confidence.HIGH
    assert "prefecture_suffix_fused" not in r.notes


def test_both_readings_naming_a_county_is_ambiguous(monkeypatch):
    # No real prefecture has both 市X区 and X区 (checked over the vendored data), so add a 中区 to 济南
    # and check the resolver then refuses to choose.
    tables = dv._tables()
    variants = dict(tables.variants)
    fake = dv._Entry("370199", Level.COUNTY, dv._KIND_FULL, "370199", True)
    variants["中区"] = [fake]
    by_code = {**tables.by_code, "370199": dv.Division("370199", "中区", Level.COUNTY, "370100")}
    patched = dataclasses.replace(
        tables,
        variants=variants,
        by_code=by_code,
        prefixes=tables.prefixes | {"中", "中区"},
    )
    monkeypatch.setattr(dv, "_tables", lambda: patched)
    r = dv.resolve_address("济南市中区经十路")
    assert r.county is None
    assert r.reason == "ambiguous"
    assert {c.code for c in r.candidates} == {"370199", "370103"}
    assert "prefecture_suffix_fused" in r.notes
    assert r.confidence is Confidence.UNRESOLVED


# ---------------------------------------------------------------------------- 2. two counties named


@pytest.mark.parametrize(
    ("address", "codes"),
    [
        ("临沂市兰山区与罗庄区交界处", {"371302", "371311"}),
        ("山东省临沂市兰山区与河东区交界", {"371302", "371312"}),  # 河东区 is in 临沂, not 天津
        ("聊城市东昌府区和茌平区之间的308国道旁", {"371502", "371503"}),
        ("清远市清城区与清新区交界处", {"441802", "441803"}),
        ("广东省清远市清城区与佛山市三水区交界", {"441802", "440607"}),
        ("临沂市兰山区、罗庄区交界", {"371302", "371311"}),
        ("北京市朝阳区与海淀区交界处", {"110105", "110108"}),
        ("清远市清城区与清新交界", {"441802", "441803"}),
        ("济南市中区与槐荫区交界", {"370103", "370104"}),
    ],
)
def test_address_naming_two_counties_is_ambiguous(address, codes):
    r = dv.resolve_address(address)
    assert r.county is None
    assert r.reason == "ambiguous"
    assert r.confidence is Confidence.UNRESOLVED
    assert {c.code for c in r.candidates} == codes
    assert "two_counties" in r.notes


def test_boundary_candidates_keep_their_order_and_shared_prefecture():
    r = dv.resolve_address("聊城市东昌府区与茌平区交界")
    assert [c.code for c in r.candidates] == ["371502", "371503"]
    assert r.prefecture.code == "371500"
    assert "boundary" in r.notes


def test_premises_stated_before_the_boundary_resolve_with_less_confidence():
    r = dv.resolve_address("临沂市兰山区通达路8号（兰山区与罗庄区交界处）")
    assert r.county_code == "371302"
    assert r.confidence is Confidence.MEDIUM  # would be HIGH without the second county
    assert "other_county_named" in r.notes
    assert dv.resolve_address("临沂市兰山区通达路8号").confidence is Confidence.HIGH


@pytest.mark.parametrize(
    "address", ["清远市清城区清新路1号", "临沂市兰山区罗庄路8号", "北京市海淀区和平路1号"]
)
def test_streets_named_after_another_county_are_not_a_second_county(address):
    r = dv.resolve_address(address)
    assert r.is_resolved
    assert r.confidence is Confidence.HIGH
    assert "other_county_named" not in r.notes


def test_a_stated_code_settles_a_boundary_address():
    r = dv.resolve_address("临沂市兰山区与罗庄区交界处", stated_code="371311")
    assert r.county_code == "371311"
    assert r.source == "stated_code"
    assert r.address_county is None


@pytest.mark.parametrize(
    "case",
    [c for c in CORPUS if c.klass == "development_zone" and c.expected == UNKNOWN],
    ids=lambda c: c.address,
)
def test_development_zones_stay_at_their_prefecture_with_the_zone_named(case):
    r = dv.resolve_address(case.address)
    assert r.reason == "development_zone"
    assert r.development_zone
    assert r.prefecture is not None
    assert r.prefecture.code[:2] in ("37", "44")


def test_a_county_mentioned_later_without_a_joiner_lowers_confidence():
    r = dv.resolve_address("北京市丰台区东城区分店")  # a branch named after another district
    assert r.county_code == "110106"
    assert r.confidence is Confidence.LOW  # below the gate's threshold: a person checks
    assert "other_county_named" in r.notes


@pytest.mark.parametrize(
    ("address", "county"),
    [
        ("安徽省六安市金安区郊区", "341502"),  # 郊区 is also 铜陵's district, and an ordinary word
        ("山西省阳泉市矿区老城区", "140303"),  # 城区 is 阳泉's district too
        ("山东省聊城市东昌府区古楼街道莘县路", "371502"),
        ("济南市莱芜区凤城街道（原莱芜市莱城区）", "370116"),  # the same place under its old name
    ],
)
def test_ordinary_words_and_old_names_are_not_a_second_county(address, county):
    r = dv.resolve_address(address)
    assert r.county_code == county
    assert r.confidence is Confidence.HIGH
    assert "other_county_named" not in r.notes
