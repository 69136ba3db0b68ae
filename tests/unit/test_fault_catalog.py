"""Every fault the simulators inject is caught by the rule the fault map names — and nothing else rejects.

The events are built from ``simulators.world`` ground truth the way a connector builds them (IDs masked
with ``schemas.masking``, county from ``schemas.divisions.resolve_address(address, stated_code=…)``,
extraction time = the moment the record surfaced), then judged by the real evaluator. Run with ``-s``
to see the fault table.

What the world labels, and what it does not (so the assertions below are exact, not loose):

* Faults are labelled on the record version they were injected into. Later versions of the same
  source record (变更/注销/迁出…) and the 教育 托班 copy keep the faulty USCC, address, future date or
  lag but carry no label. Such a record may only be rejected by a rule its entity's faults explain.
* The world draws legal representatives' IDs with today's county code and a birth year from 1965–1998;
  for counties created later (e.g. 370116 莱芜区, 2019) ``schemas.resident_id`` reports ``region`` and the
  connector sets ``id_valid=False``. ``LEGAL_REP_ID_INVALID`` on an unlabelled record must be exactly
  that case.
* Lateness is labelled only for the injected 32–50 day lag; a record registered on the 28th and
  surfacing 0–3 days later can cross a month boundary too, and is (rightly) a ``LATE_PUSH`` warning.
* Two fault pairs hide one another, by construction of the data (see :data:`MASKED_BY`); such a
  record is counted as *masked*, and must be rejected by the masking fault's rule.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from quality.fault_map import CONNECTOR_FILTER, EXPECTED_RULE, GATE_BACKSTOP, expected_rule, stage_of
from quality.record_checks import ADDRESS_CONFIDENCE, Verdict, evaluate_many
from quality.rules import CATALOG, rule
from schemas import childcare, divisions
from schemas.events import (
    UNRESOLVED,
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    LegalRepresentative,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    ServiceForm,
    Severity,
)
from schemas.masking import mask_phone, mask_resident_id
from schemas.resident_id import parse_resident_id
from simulators.world import (
    LOOKALIKE_SCOPES,
    Fault,
    FaultRates,
    SourceRecord,
    WorldConfig,
    build_world,
    lookalike_records,
)

QUALITY_DIR = Path(__file__).resolve().parents[2] / "quality"

# ---------------------------------------------------------------------------------------------------
# The fault map itself


def test_every_fault_has_exactly_one_entry():
    assert set(EXPECTED_RULE) == {f.value for f in Fault}


def test_every_target_is_a_catalog_rule_or_the_connector_filter():
    ids = {r.id for r in CATALOG}
    for fault, target in EXPECTED_RULE.items():
        assert target in ids or target == CONNECTOR_FILTER, fault
        if target != CONNECTOR_FILTER:
            assert rule(target).id == target


def test_faults_caught_before_the_gate_have_a_gate_backstop():
    before_gate = {f for f, t in EXPECTED_RULE.items() if t == CONNECTOR_FILTER}
    assert set(GATE_BACKSTOP) == before_gate
    for target in GATE_BACKSTOP.values():
        assert rule(target).scope == "record"
        assert rule(target).severity is Severity.REJECT


def test_stage_and_lookup():
    assert stage_of(Fault.LOOKALIKE) == "connector"
    assert stage_of(Fault.DUPLICATE_REGISTRAR) == "batch"
    assert stage_of(Fault.BAD_CHECK_DIGIT) == "gate"
    assert expected_rule(Fault.LATE) == "LATE_PUSH"
    with pytest.raises(KeyError, match="no_such_fault"):
        expected_rule("no_such_fault")


def _imports(path: Path) -> Iterable[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_quality_depends_on_schemas_only():
    # docs/architecture.md layering: quality may import schemas (and third-party libraries), never the other layers.
    forbidden = {"regsync", "connectors", "sink", "simulators", "dags", "kafka"}
    for path in sorted(QUALITY_DIR.glob("*.py")):
        assert not set(_imports(path)) & forbidden, path.name


@pytest.mark.parametrize("name", ["rules.py", "record_checks.py", "fault_map.py"])
def test_gate_modules_use_only_the_standard_library_and_schemas(name):
    allowed = set(sys.stdlib_module_names) | {"__future__", "schemas", "quality"}
    assert set(_imports(QUALITY_DIR / name)) <= allowed


# ---------------------------------------------------------------------------------------------------
# Events from ground truth, the way a connector builds them

_ENTITY = {
    "12": (LegalForm.PUBLIC_INSTITUTION, ProfitNature.NON_PROFIT),
    "52": (LegalForm.PRIVATE_NON_ENTERPRISE, ProfitNature.NON_PROFIT),
    "91": (LegalForm.ENTERPRISE, ProfitNature.FOR_PROFIT),
    "92": (LegalForm.INDIVIDUAL_BUSINESS, ProfitNature.FOR_PROFIT),
}
_MOVES = (EventType.MOVED_IN, EventType.MOVED_OUT)

LOOKALIKE_VARIANTS = (
    ("学生托管中心", LOOKALIKE_SCOPES[0], "91"),
    ("残疾人托养中心", LOOKALIKE_SCOPES[1], "52"),
    ("早教中心", LOOKALIKE_SCOPES[2], "91"),
    ("课后托管服务部", LOOKALIKE_SCOPES[3], "92"),
)


def county_of(address: str, stated: str | None) -> tuple[str | None, CountyResolution]:
    """As ``connectors.base.Connector.resolve_county``: stated premises code, else the address."""
    result = divisions.resolve_address(address, stated_code=stated or None)
    if result.county_code is None:
        return None, UNRESOLVED
    stated_used = (result.source or "").startswith("stated")
    method = CountyResolutionMethod.STATED if stated_used else CountyResolutionMethod.ADDRESS
    return result.county_code, CountyResolution(method, ADDRESS_CONFIDENCE[result.confidence])


def to_event(record: SourceRecord) -> RegistrationEvent:
    """One ground-truth record as a connector would publish it on registrations.raw."""
    snap = record.snapshot
    county, resolution = county_of(snap.address, snap.stated_division)
    form, nature = _ENTITY.get(snap.uscc[:2], (LegalForm.OTHER, ProfitNature.UNKNOWN))
    rep = snap.legal_rep
    as_of = record.surfaced_at.date()
    institution = Institution(
        uscc=snap.uscc,
        name=snap.name,
        legal_form=form,
        profit_nature=nature,
        address=snap.address,
        business_scope=snap.scope,
        status=InstitutionStatus(snap.status),
        county_code=county,
        county_resolution=resolution,
        legal_representative=LegalRepresentative(
            name=rep.name,
            id_number_masked=mask_resident_id(rep.id_number) or None,
            id_valid=parse_resident_id(rep.id_number, today=as_of).is_valid if rep.id_number else None,
            phone_masked=mask_phone(rep.phone) or None,
        ),
        registered_capital=Decimal(snap.capital_wan),
        service_forms=tuple(ServiceForm(f) for f in snap.service_forms) or None,
        capacity=snap.capacity,
    )
    return RegistrationEvent.build(
        event_type=record.event_type,
        registrar=record.registrar,
        event_date=record.event_date,
        extracted_at=record.surfaced_at,
        institution=institution,
        lineage=Lineage(record.registrar.value.lower(), record.record_id, str(record.version), "test"),
        changed_fields=tuple(FieldChange(f, old, new) for f, old, new in record.changed),
        jurisdiction=JurisdictionMove(record.moved_from, record.moved_to)
        if record.event_type in _MOVES
        else None,
    )


def connector_keeps(record: SourceRecord) -> bool:
    """The connectors' childcare filter (``Connector.is_childcare``) on scope and name."""
    return childcare.classify(record.snapshot.scope, record.snapshot.name).is_childcare


def world_records(config: WorldConfig) -> list[SourceRecord]:
    """The world's records plus every registrar's look-alikes, as the simulators hold them."""
    world = build_world(config)
    records = list(world.records)
    for registrar in Registrar:
        records += lookalike_records(world, registrar, LOOKALIKE_VARIANTS, f"L{registrar.value[:2]}")
    return records


MASKED_BY: dict[str, set[str]] = {
    # The future date moves event_date 400 days ahead, so the push is no longer "after its month".
    "late": {"future_date"},
    # The abolished code (371202) is only in the source's stated code, which the connector maps
    # forward (→ 370116); the old names in the address are the gate's only trace, and they are blank.
    "abolished_division": {"missing_address"},
}
"""Fault → faults that, on the same record, make it undetectable; the record is rejected by those."""

UNLABELLED_WARNINGS = {"LATE_PUSH", "LEGAL_REP_ID_INVALID"}
"""Warnings the world produces without labelling them (see the module docstring); nothing else may fire."""

HIGH_FAULT_RATES = FaultRates(
    bad_check_digit=0.08,
    missing_name=0.06,
    missing_address=0.06,
    unknown_division=0.08,
    abolished_division=0.15,
    prefix_mismatch=0.08,
    future_date=0.06,
    bad_legal_rep_id=0.08,
    late=0.15,
    duplicate_registrar=0.4,
    lookalike=0.2,
)
WORLDS = {
    "default": WorldConfig(),
    "faulty": WorldConfig(seed=7, institutions_per_month=120, faults=HIGH_FAULT_RATES),
}


# ---------------------------------------------------------------------------------------------------
# Reconciliation


@dataclass
class Tally:
    records: int = 0
    caught: int = 0
    masked: int = 0
    missed: int = 0


@dataclass
class Reconciliation:
    tallies: dict[str, Tally]
    clean_records: int
    clean_rejected: list[tuple[str, tuple[str, ...]]]
    clean_warnings: Counter[str]
    inherited_records: int
    unexplained: list[tuple[str, tuple[str, ...], tuple[str, ...]]]
    backstop_missed: list[str]
    bad_id_unexplained: list[str]

    def table(self, title: str) -> str:
        lines = [
            f"\n{title}",
            f"{'fault kind':<22}{'expected rule':<30}{'stage':<11}{'records':>8}{'caught':>8}"
            f"{'masked':>8}{'missed':>8}",
        ]
        for fault in Fault:
            t = self.tallies[fault.value]
            lines.append(
                f"{fault.value:<22}{EXPECTED_RULE[fault.value]:<30}{stage_of(fault):<11}"
                f"{t.records:>8}{t.caught:>8}{t.masked:>8}{t.missed:>8}"
            )
        warned = ", ".join(f"{k} {v}" for k, v in sorted(self.clean_warnings.items())) or "none"
        lines.append(
            f"fault-free records: {self.clean_records}, rejected {len(self.clean_rejected)}; "
            f"warnings on them: {warned}"
        )
        lines.append(
            f"unlabelled later versions / 教育 copies of faulty records: {self.inherited_records}, "
            f"unexplained findings {len(self.unexplained)}"
        )
        return "\n".join(lines)


def reconcile(records: list[SourceRecord]) -> Reconciliation:
    tallies = {f.value: Tally() for f in Fault}
    entity_faults: dict[str, set[str]] = defaultdict(set)
    for record in records:
        entity_faults[record.entity_key].update(f.value for f in record.faults)

    # Connector stage: the filter drops look-alikes; the gate must still reject any that slip through.
    kept = [r for r in records if connector_keeps(r)]
    dropped = [r for r in records if not connector_keeps(r)]
    backstop_missed: list[str] = []
    for record, verdict in zip(dropped, evaluate_many([to_event(r) for r in dropped]), strict=True):
        for fault in record.faults:
            if stage_of(fault) == "connector":
                tallies[fault.value].records += 1
                tallies[fault.value].caught += 1
                if GATE_BACKSTOP[fault.value] not in verdict.rule_ids:
                    backstop_missed.append(record.record_id)
    for record in kept:
        for fault in record.faults:
            if stage_of(fault) == "connector":
                tallies[fault.value].records += 1
                tallies[fault.value].missed += 1

    events = [to_event(r) for r in kept]
    verdicts: list[Verdict] = evaluate_many(events)

    # Batch stage, reference definition of DUPLICATE_ACROSS_REGISTRARS: one USCC registered by two
    # registrars (教育 托班 events are on an entity someone else registered, so they do not count).
    registrars_of: dict[str, set[Registrar]] = defaultdict(set)
    for event in events:
        if event.registrar is not Registrar.JIAOYU and event.event_type is EventType.ESTABLISHED:
            registrars_of[event.institution.uscc].add(event.registrar)
    duplicated = {code for code, regs in registrars_of.items() if len(regs) > 1}

    clean_rejected: list[tuple[str, tuple[str, ...]]] = []
    clean_warnings: Counter[str] = Counter()
    unexplained: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    bad_id_unexplained: list[str] = []
    clean = inherited = 0
    for record, event, verdict in zip(kept, events, verdicts, strict=True):
        fired = set(verdict.rule_ids)
        rejected_by = {v.rule_id for v in verdict.rejections}
        own = {f.value for f in record.faults}
        for fault in own:
            if stage_of(fault) == "connector":
                continue
            caught = (
                event.institution.uscc in duplicated
                if stage_of(fault) == "batch"
                else EXPECTED_RULE[fault] in fired
            )
            masking = MASKED_BY.get(fault, set()) & own
            tally = tallies[fault]
            tally.records += 1
            if caught:
                tally.caught += 1
            elif masking and {EXPECTED_RULE[m] for m in masking} & rejected_by:
                tally.masked += 1
            else:
                tally.missed += 1
        faults = entity_faults[record.entity_key]
        explained = {EXPECTED_RULE[f] for f in faults}
        if not faults:
            clean += 1
            if rejected_by:
                clean_rejected.append((record.record_id, tuple(sorted(rejected_by))))
            clean_warnings.update(v.rule_id for v in verdict.warnings)
        else:
            inherited += not own
            if rejected_by - explained or fired - explained - UNLABELLED_WARNINGS:
                unexplained.append((record.record_id, tuple(sorted(faults)), tuple(sorted(fired))))
        if "LEGAL_REP_ID_INVALID" in fired and "bad_legal_rep_id" not in faults:
            findings = parse_resident_id(record.snapshot.legal_rep.id_number, today=record.surfaced_at.date())
            if findings.findings != ("region",):
                bad_id_unexplained.append(record.record_id)
    return Reconciliation(
        tallies,
        clean,
        clean_rejected,
        clean_warnings,
        inherited,
        unexplained,
        backstop_missed,
        bad_id_unexplained,
    )


@pytest.fixture(scope="module")
def reconciliations() -> dict[str, Reconciliation]:
    return {name: reconcile(world_records(config)) for name, config in WORLDS.items()}


def test_print_fault_table(reconciliations):
    for name, rec in reconciliations.items():
        print(rec.table(f"world '{name}' ({WORLDS[name].institutions_per_month} institutions/month)"))


@pytest.mark.parametrize("world", list(WORLDS))
def test_every_injected_fault_is_caught_by_its_expected_rule(reconciliations, world):
    rec = reconciliations[world]
    missed = {k: t.missed for k, t in rec.tallies.items() if t.missed}
    assert not missed, rec.table(world)


def test_the_faulty_world_exercises_every_fault_kind(reconciliations):
    rec = reconciliations["faulty"]
    assert all(t.records > 0 for t in rec.tallies.values()), rec.table("faulty")


@pytest.mark.parametrize("world", list(WORLDS))
def test_no_fault_free_record_is_rejected(reconciliations, world):
    rec = reconciliations[world]
    assert rec.clean_records > 0
    assert rec.clean_rejected == []


@pytest.mark.parametrize("world", list(WORLDS))
def test_faulty_records_are_flagged_only_by_rules_their_faults_explain(reconciliations, world):
    assert reconciliations[world].unexplained == []


@pytest.mark.parametrize("world", list(WORLDS))
def test_warnings_on_fault_free_records_are_the_known_unlabelled_cases(reconciliations, world):
    rec = reconciliations[world]
    assert set(rec.clean_warnings) <= UNLABELLED_WARNINGS
    assert rec.bad_id_unexplained == []


@pytest.mark.parametrize("world", list(WORLDS))
def test_lookalikes_slipping_past_a_connector_are_rejected_by_the_gate(reconciliations, world):
    assert reconciliations[world].backstop_missed == []
