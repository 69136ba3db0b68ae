import pytest

from schemas.childcare import EXCLUDE_TERMS, INCLUDE_TERMS, Term, classify

# (scope, name, industry code, expected is_childcare, expected rule, includes ⊇, excludes ⊇, negated ⊇)
CASES = [
    # Registrations that are childcare.
    (
        "托育服务；婴幼儿照护服务（3岁以下）",
        None,
        None,
        True,
        "include",
        {"托育", "婴幼儿照护"},
        set(),
        set(),
    ),
    ("家庭托育服务", None, None, True, "include", {"家庭托育"}, set(), set()),
    ("学前教育；托班", None, "8310", True, "include", {"托班"}, set(), set()),
    ("托儿所服务", None, None, True, "include", {"托儿所"}, set(), set()),
    ("为３岁以下婴幼儿提供照料服务", None, None, True, "include", {"3岁以下婴幼儿"}, set(), set()),
    ("三岁以下婴幼儿照料", None, None, True, "include", {"3岁以下婴幼儿"}, set(), set()),
    ("0～3岁婴幼儿发展指导", None, None, True, "include", {"3岁以下婴幼儿"}, set(), set()),
    ("开设乳儿班、托小班、托大班", None, None, True, "include", {"乳儿班", "托小班", "托大班"}, set(), set()),
    ("早教、托育服务", None, None, True, "include", {"托育"}, {"早教"}, set()),
    ("托育服务；课后托管", None, None, True, "include", {"托育"}, {"课后托管"}, set()),
    ("学前教育；托班；课后托管", None, None, True, "include", {"托班"}, {"课后托管"}, set()),
    ("非营利性托育机构", None, None, True, "include", {"托育机构"}, set(), set()),
    ("餐饮服务", "阳光托育园有限公司", None, True, "include", {"托育园"}, set(), set()),
    (None, None, "O8020", True, "industry", {"行业8020 托儿所服务"}, set(), set()),
    (
        "全日托、半日托、计时托服务",
        None,
        None,
        True,
        "weak_include",
        {"全日托", "半日托", "计时托"},
        set(),
        set(),
    ),
    ("托育服务(不含餐饮服务)", None, None, True, "include", {"托育"}, set(), set()),
    # Registrations that are not.
    ("学生托管服务；午托", None, None, False, "excluded", set(), {"学生托管", "午托"}, set()),
    ("残疾人托养服务", None, None, False, "excluded", set(), {"托养"}, set()),
    ("早期教育咨询（不含托育服务）", None, None, False, "excluded", set(), {"早期教育"}, {"托育"}),
    ("教育咨询（不包括托育、托管服务）", None, None, False, "no_include", set(), set(), {"托育"}),
    ("除托育服务外的早期教育咨询", None, None, False, "excluded", set(), {"早期教育"}, {"托育"}),
    ("早教咨询；托育服务除外", None, None, False, "excluded", set(), {"早教"}, {"托育"}),
    ("学前教育", None, "P8310", False, "no_include", set(), set(), set()),
    ("午托班；晚托", None, None, False, "excluded", set(), {"午托", "晚托"}, set()),
    ("学生全日托管", None, None, False, "excluded", set(), {"托管"}, set()),
    ("日间托老；全日托老服务", None, None, False, "excluded", set(), {"托老"}, set()),
    ("临时托运", None, None, False, "excluded", set(), {"托运"}, set()),
    ("全日托；学生托管", None, None, False, "weak_include_excluded", {"全日托"}, {"学生托管"}, set()),
    ("软件开发；技术服务", "某某科技有限公司", None, False, "no_include", set(), set(), set()),
    ("", None, None, False, "no_include", set(), set(), set()),
]


@pytest.mark.parametrize(
    ("scope", "name", "industry", "expected", "rule", "includes", "excludes", "negated"), CASES
)
def test_classify_table(scope, name, industry, expected, rule, includes, excludes, negated):
    v = classify(scope, name, industry)
    assert v.is_childcare is expected, v.reason
    assert v.rule == rule, v.reason
    assert includes <= set(v.include_terms), v.include_terms
    assert excludes <= set(v.exclude_terms), v.exclude_terms
    assert negated <= set(v.negated_terms), v.negated_terms
    if not includes:
        assert v.include_terms == ()
    if not negated:
        assert v.negated_terms == ()
    assert v.reason  # never empty: auditors must see why


def test_reason_names_the_evidence():
    v = classify("早期教育咨询（不含托育服务）")
    assert "早期教育" in v.reason
    assert "negated 托育" in v.reason
    v = classify("早教、托育服务")
    assert "overrides exclusion 早教" in v.reason
    v = classify("学前教育", industry_code="8310")
    assert "8310" in v.reason
    assert "not childcare" in v.reason


def test_specific_term_hides_the_generic_one_it_contains():
    v = classify("家庭托育服务")
    assert v.include_terms == ("家庭托育",)
    assert [m.text for m in v.includes] == ["家庭托育"]


def test_terms_inside_exclusion_words_are_dropped():
    # 午托班 contains 托班, 全日托管 contains 全日托: neither is a childcare mention.
    assert classify("午托班").include_terms == ()
    assert classify("全日托管").include_terms == ()


def test_matches_record_where_they_were_found():
    v = classify("餐饮服务", name="阳光托育园有限公司")
    assert [(m.term, m.where) for m in v.includes] == [("托育园", "name")]
    assert not v.in_scope
    assert "(name)" in v.reason
    v = classify("托育服务", name="阳光托育园有限公司")
    assert v.in_scope
    assert {m.where for m in v.includes} == {"scope", "name"}


def test_exclusion_in_name_counts_too():
    v = classify(None, name="小太阳学生托管中心")
    assert not v.is_childcare
    assert v.excludes[0].where == "name"


def test_negated_exclusion_is_ignored():
    v = classify("全日托服务（不含托管）")
    assert v.is_childcare
    assert v.rule == "weak_include"
    assert v.exclude_terms == ()


def test_negation_is_limited_to_its_clause():
    v = classify("早教咨询（不含餐饮），托育服务")
    assert v.is_childcare
    assert v.negated_terms == ()


def test_industry_code_forms():
    for code in ("8020", "O8020", "O 8020", " 8020 "):
        assert classify(None, industry_code=code).is_childcare, code
    assert not classify(None, industry_code="8030").is_childcare


def test_custom_keyword_lists():
    # A province that also counts 幼儿托护 and treats 托育 mentions in names only as weak.
    v = classify("幼儿托护服务", include=[*INCLUDE_TERMS, "幼儿托护"])
    assert v.is_childcare
    assert "幼儿托护" in v.include_terms
    assert not classify("幼儿托护服务").is_childcare
    # Removing an exclusion changes the verdict on a weak include.
    weak_only = [Term.literal("全日托", strong=False)]
    assert not classify("全日托；托管", include=weak_only).is_childcare
    assert classify("全日托；托管", include=weak_only, exclude=[]).is_childcare


def test_custom_industry_codes():
    assert classify(None, industry_code="8310", industry_codes={"8310": "学前教育"}).is_childcare


def test_default_lists_are_module_data():
    labels = {t.label for t in INCLUDE_TERMS}
    assert {"托育", "婴幼儿照护", "托儿所", "托班", "家庭托育", "全日托"} <= labels
    assert {"托管", "托养", "早教", "早期教育", "午托", "晚托"} <= {t.label for t in EXCLUDE_TERMS}
    assert not next(t for t in INCLUDE_TERMS if t.label == "临时托").strong


def test_verdict_is_immutable():
    v = classify("托育服务")
    with pytest.raises(AttributeError):
        v.is_childcare = False  # type: ignore[misc]
