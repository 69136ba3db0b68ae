"""String bounds: declared once (schemas/limits.py), enforced by the gate, matched by the store, documented.

Issue 13 item 5: an over-long legal-representative phone passed the gate with a warning and failed the
monthly load on ``varchar(32)`` every time. These tests hold the three parties to one table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quality.record_checks import evaluate
from quality.rules import FIELD_TOO_LONG
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.examples import at_limits, canonical_event, with_value
from schemas.limits import STRING_LIMITS, too_long
from sink.models import BOUNDED_COLUMNS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "consumers.md"


def _string_paths(node: object, path: str, named: dict[str, dict]) -> list[str]:
    """Dotted paths of every string leaf of an Avro schema (``[]`` for array items)."""
    if isinstance(node, str):
        if node == "string":
            return [path]
        return _string_paths(named[node], path, named) if node in named else []
    if isinstance(node, list):
        return [p for branch in node for p in _string_paths(branch, path, named)]
    assert isinstance(node, dict)
    kind = node["type"]
    if kind == "record":
        named[node["name"]] = node
        found = []
        for field in node["fields"]:
            found += _string_paths(field["type"], f"{path}.{field['name']}".lstrip("."), named)
        return found
    if kind == "array":
        return _string_paths(node["items"], f"{path}[]", named)
    if isinstance(kind, str | list | dict) and kind != "enum" and not node.get("logicalType"):
        return _string_paths(kind, path, named)
    return []


def test_every_string_field_of_the_newest_contract_has_exactly_one_bound():
    paths = _string_paths(get_contract(REGISTRATION_EVENT).latest.schema, "", {})
    assert len(paths) == len(set(paths))
    assert set(paths) == set(STRING_LIMITS), "a new string field needs a bound in schemas/limits.py"


def test_bounds_are_positive_and_the_canonical_event_fits():
    assert all(bound > 0 for bound in STRING_LIMITS.values())
    assert too_long(canonical_event()) == []
    assert too_long(at_limits()) == []


@pytest.mark.parametrize("path", sorted(STRING_LIMITS))
def test_one_character_over_the_bound_is_rejected_by_the_gate_naming_field_and_length(path):
    bound = STRING_LIMITS[path]
    over = with_value(canonical_event(), path, "7" * (bound + 1))
    verdict = evaluate(over)
    assert not verdict.accepted
    found = [v for v in verdict.violations if v.rule_id == FIELD_TOO_LONG.id]
    concrete = path.replace("[]", "[0]")
    assert [v.field for v in found] == [concrete]
    assert f"{bound + 1}" in found[0].message_en and f"{bound}" in found[0].message_en
    assert concrete in found[0].message_zh
    assert "7" * 20 not in found[0].message_zh + found[0].message_en  # the value is never echoed


@pytest.mark.parametrize("path", sorted(STRING_LIMITS))
def test_a_value_at_the_bound_raises_no_length_finding(path):
    at = with_value(canonical_event(), path, "7" * STRING_LIMITS[path])
    assert FIELD_TOO_LONG.id not in evaluate(at).rule_ids


def test_every_over_long_field_is_reported_not_only_the_first():
    event = canonical_event()
    for path in (
        "institution.name",
        "institution.legal_representative.id_number_masked",
        "lineage.source_version",
    ):
        event = with_value(event, path, "x" * (STRING_LIMITS[path] + 5))
    fields = [v.field for v in evaluate(event).violations if v.rule_id == FIELD_TOO_LONG.id]
    assert fields == [
        "institution.name",
        "institution.legal_representative.id_number_masked",
        "lineage.source_version",
    ]


def test_store_columns_have_exactly_the_contract_bounds():
    assert set(BOUNDED_COLUMNS) <= set(STRING_LIMITS)
    for path, columns in BOUNDED_COLUMNS.items():
        for column in columns:
            assert column.type.length == STRING_LIMITS[path], f"{column} holds {path}"


def test_every_bounded_varchar_of_the_roster_and_history_holds_a_listed_field():
    """A ``varchar`` that stores event text but is missing from BOUNDED_COLUMNS would escape the check."""
    from sink.models import institution_events, institutions

    listed = {c for columns in BOUNDED_COLUMNS.values() for c in columns}
    not_event_text = {  # enum values, joined enum lists, our own bookkeeping
        "legal_form", "profit_nature", "county_resolution", "status", "service_forms", "registrars",
        "last_event_type", "last_topic", "first_load_month", "last_load_month", "event_type", "registrar",
        "load_month", "kafka_topic",
    }  # fmt: skip
    for table in (institutions, institution_events):
        for column in table.columns:
            if getattr(column.type, "length", None) and column.name not in not_event_text:
                assert column in listed, f"{table.name}.{column.name} stores text without a declared bound"


def test_the_consumer_guide_lists_every_bound():
    text = DOCS.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `([a-z_.\[\]]+)` \| (\d+) \|", text, flags=re.MULTILINE))
    assert {path: int(n) for path, n in documented.items()} == dict(STRING_LIMITS)


def test_repeated_service_forms_fit_the_roster_column():
    """An enum array has no string bound; the fold keeps each form once, so the joined list always fits."""
    from dataclasses import replace

    from schemas.events import ServiceForm
    from sink.fold import fold
    from sink.models import institutions

    event = canonical_event()
    forms = tuple(ServiceForm) * 10
    state = fold(None, replace(event, institution=replace(event.institution, service_forms=forms)))
    assert state.service_forms == ",".join(f.value for f in ServiceForm)
    assert len(state.service_forms) <= institutions.c.service_forms.type.length
