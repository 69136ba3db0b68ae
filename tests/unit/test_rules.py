"""The rule catalog: stable ids, severities, bilingual descriptions, the registrar/prefix table."""

import re

import pytest

from quality import rules
from quality.rules import CATALOG, REGISTRAR_PREFIXES, Rule, rule
from schemas import uscc
from schemas.events import Registrar, RuleViolation, Severity

REQUIRED_RECORD_RULES = {
    "SCHEMA_INVALID": Severity.REJECT,
    "REQUIRED_FIELD": Severity.REJECT,
    "USCC_FORMAT": Severity.REJECT,
    "USCC_CHECK_DIGIT": Severity.REJECT,
    "USCC_ORG_CHECK_DIGIT": Severity.REJECT,
    "USCC_LEGACY_PILOT": Severity.WARN,
    "USCC_REGISTRAR_PREFIX": Severity.REJECT,
    "DIVISION_UNKNOWN": Severity.REJECT,
    "DIVISION_ABOLISHED_MAPPED": Severity.WARN,
    "DIVISION_LOW_CONFIDENCE": Severity.WARN,
    "NOT_CHILDCARE": Severity.REJECT,
    "EVENT_DATE_FUTURE": Severity.REJECT,
    "LEGAL_REP_ID_INVALID": Severity.WARN,
    "CHANGED_FIELDS_MISSING": Severity.WARN,
    "MOVE_JURISDICTION_MISSING": Severity.REJECT,
    "FAMILY_CARE_CAPACITY": Severity.WARN,
    "CAPITAL_OUT_OF_RANGE": Severity.WARN,
    "LATE_PUSH": Severity.WARN,
}
REQUIRED_BATCH_RULES = {"DUPLICATE_ACROSS_REGISTRARS", "VOLUME_ANOMALY", "TIMELINESS_SHARE"}


def test_ids_are_unique_and_upper_snake():
    ids = [r.id for r in CATALOG]
    assert len(ids) == len(set(ids))
    for rule_id in ids:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*", rule_id), rule_id


@pytest.mark.parametrize(("rule_id", "severity"), sorted(REQUIRED_RECORD_RULES.items()))
def test_required_record_rules_exist_with_their_severity(rule_id, severity):
    entry = rule(rule_id)
    assert entry.severity is severity
    assert entry.scope == "record"


@pytest.mark.parametrize("rule_id", sorted(REQUIRED_BATCH_RULES))
def test_batch_rules_are_declared_as_batch(rule_id):
    assert rule(rule_id).scope == "batch"


def test_every_rule_is_described_in_both_languages():
    for entry in CATALOG:
        assert entry.severity in (Severity.REJECT, Severity.WARN)
        assert entry.scope in ("record", "batch")
        assert re.search(r"[\u4e00-\u9fff]", entry.description_zh), entry.id
        assert re.search(r"[A-Za-z]{3}", entry.description_en), entry.id
        assert entry.description_en.strip() == entry.description_en


def test_record_rules_come_first_and_partition_the_catalog():
    assert rules.RECORD_RULES + rules.BATCH_RULES == CATALOG
    assert {r.id for r in rules.BATCH_RULES} == REQUIRED_BATCH_RULES


def test_module_constants_are_the_catalog_entries():
    # Code refers to rules as ``rules.USCC_FORMAT``; that object must be the catalog's, id and all.
    for entry in CATALOG:
        assert getattr(rules, entry.id) is entry


def test_lookup_of_an_unknown_id_names_it():
    with pytest.raises(KeyError, match="NO_SUCH_RULE"):
        rule("NO_SUCH_RULE")


def test_rule_is_frozen():
    with pytest.raises(AttributeError):
        rule("LATE_PUSH").severity = Severity.REJECT  # type: ignore[misc]


def test_violation_takes_severity_and_field_from_the_catalog():
    v = rule("USCC_CHECK_DIGIT").violation("中文", "english")
    assert v == RuleViolation("USCC_CHECK_DIGIT", Severity.REJECT, "中文", "english", "institution.uscc")
    assert rule("REQUIRED_FIELD").violation("a", "b", "institution.name").field == "institution.name"
    assert Rule("X", Severity.WARN, None, "中", "en").scope == "record"


def test_prefix_table_covers_every_registrar_with_real_uscc_prefixes():
    assert set(REGISTRAR_PREFIXES) == set(Registrar)
    for registrar, prefixes in REGISTRAR_PREFIXES.items():
        assert prefixes, registrar
        for prefix in prefixes:
            assert prefix[1] in uscc.CATEGORIES[prefix[0]], (registrar, prefix)


@pytest.mark.parametrize(
    ("registrar", "allowed", "refused"),
    [
        (Registrar.BIANZHI, {"12"}, {"11", "13", "19", "52", "91"}),
        (Registrar.MINZHENG, {"52"}, {"51", "53", "59", "91"}),
        (Registrar.SHICHANG, {"91", "92"}, {"93", "52", "12"}),
        (Registrar.SHENPI, {"91", "92", "52"}, {"12", "93"}),
        (Registrar.JIAOYU, {"12", "52", "91"}, {"92", "93"}),
    ],
)
def test_prefix_table_follows_domain_md(registrar, allowed, refused):
    assert REGISTRAR_PREFIXES[registrar] == allowed
    assert not (REGISTRAR_PREFIXES[registrar] & refused)


def test_prefix_table_is_read_only():
    with pytest.raises(TypeError):
        REGISTRAR_PREFIXES[Registrar.SHICHANG] = frozenset({"93"})  # type: ignore[index]
