"""The roster state is the pure fold of an institution's events, in order."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.events import (
    EventType,
    FieldChange,
    InstitutionStatus,
    JurisdictionMove,
    LegalRepresentative,
    Registrar,
)
from sink.fold import InstitutionState, Position, event_county, fold, is_behind
from sink.synthetic import make_event, uscc_for

U = uscc_for(1)
ET = EventType


def run(events, *, positions=None, months=None):
    state = None
    for i, event in enumerate(events):
        pos = None if positions is None else positions[i]
        month = None if months is None else months[i]
        state = fold(state, event, position=pos, load_month=month)
    return state


CASES = [
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 3, 3)),
            make_event(
                U,
                ET.CHANGED,
                date(2025, 3, 10),
                version=2,
                name="清远市新名托育有限公司",
                changed=[FieldChange("name", "旧名", "清远市新名托育有限公司")],
            ),
            make_event(
                U,
                ET.DEREGISTERED,
                date(2025, 3, 20),
                version=3,
                name="清远市新名托育有限公司",
                status=InstitutionStatus.DEREGISTERED,
            ),
        ],
        {
            "status": "DEREGISTERED",
            "name": "清远市新名托育有限公司",
            "first_registration_date": date(2025, 3, 3),
            "last_event_type": "DEREGISTERED",
            "last_event_date": date(2025, 3, 20),
            "childcare": True,
            "registrars": ("SHICHANG",),
        },
        id="设立-变更-注销 in one month",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 1, 3), county="441802"),
            # a 迁出 whose snapshot status the connector left ACTIVE: the event type decides
            make_event(
                U,
                ET.MOVED_OUT,
                date(2025, 3, 5),
                version=2,
                county="441802",
                move=JurisdictionMove("441802", "441803"),
            ),
        ],
        {"status": "MOVED_OUT", "county_code": "441802"},
        id="迁出 keeps the old county",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 1, 3), county="441802"),
            make_event(
                U,
                ET.MOVED_OUT,
                date(2025, 3, 5),
                version=2,
                county="441802",
                status=InstitutionStatus.MOVED_OUT,
                move=JurisdictionMove("441802", "441803"),
            ),
            make_event(
                U,
                ET.MOVED_IN,
                date(2025, 3, 5),
                version=3,
                county="441803",
                address="广东省清远市清新区太和镇1号",
                move=JurisdictionMove("441802", "441803"),
            ),
        ],
        {
            "status": "ACTIVE",
            "county_code": "441803",
            "address": "广东省清远市清新区太和镇1号",
            "first_registration_date": date(2025, 1, 3),
        },
        id="迁出-迁入 lands ACTIVE in the new county",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 3, 4), registrar=Registrar.SHENPI),
            make_event(U, ET.ESTABLISHED, date(2025, 3, 2), registrar=Registrar.SHICHANG),
        ],
        {
            "registrars": ("SHENPI", "SHICHANG"),
            "first_registration_date": date(2025, 3, 2),
            "status": "ACTIVE",
        },
        id="same USCC from two registrars merges",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 1, 3)),
            make_event(U, ET.SCOPE_REMOVED_CHILDCARE, date(2025, 3, 1), version=2, scope="餐饮服务"),
        ],
        {"childcare": False, "childcare_since": None, "business_scope": "餐饮服务", "status": "ACTIVE"},
        id="scope removed",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 1, 3)),
            make_event(U, ET.SCOPE_REMOVED_CHILDCARE, date(2025, 2, 1), version=2, scope="餐饮服务"),
            make_event(U, ET.SCOPE_ADDED_CHILDCARE, date(2025, 3, 1), version=3),
        ],
        {"childcare": True, "childcare_since": date(2025, 3, 1)},
        id="scope removed then added again",
    ),
    pytest.param(
        [make_event(U, ET.REVOKED, date(2025, 3, 9), status=InstitutionStatus.ACTIVE)],
        {"status": "REVOKED", "childcare": True, "first_registration_date": None},
        id="吊销 of an institution established before the pipeline",
    ),
    pytest.param(
        [
            make_event(
                U, ET.CHILDCARE_CLASS_ADDED, date(2025, 3, 9), registrar=Registrar.JIAOYU, name="某幼儿园"
            )
        ],
        {
            "childcare": True,
            "name": "某幼儿园",
            "registrars": ("JIAOYU",),
            "childcare_since": date(2025, 3, 9),
        },
        id="托班 of an unknown entity creates it",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 1, 3), registrar=Registrar.MINZHENG, name="某托育中心"),
            make_event(
                U,
                ET.SCOPE_REMOVED_CHILDCARE,
                date(2025, 2, 1),
                registrar=Registrar.MINZHENG,
                version=2,
                name="某托育中心",
            ),
            make_event(
                U, ET.CHILDCARE_CLASS_ADDED, date(2025, 3, 9), registrar=Registrar.JIAOYU, name="某幼儿园"
            ),
        ],
        {
            "childcare": True,
            "name": "某托育中心",
            "registrars": ("JIAOYU", "MINZHENG"),
            "childcare_since": date(2025, 3, 9),
            "last_event_type": "CHILDCARE_CLASS_ADDED",
        },
        id="托班 of a known entity only flags it",
    ),
    pytest.param(
        [
            make_event(U, ET.ESTABLISHED, date(2025, 1, 3), county="441802"),
            make_event(U, ET.CHANGED, date(2025, 2, 3), version=2, county=None),
        ],
        {"county_code": "441802", "county_resolution": "ADDRESS"},
        id="an unresolved snapshot keeps the known county",
    ),
]


@pytest.mark.parametrize(("events", "expected"), CASES)
def test_fold_table(events, expected):
    state = run(events)
    got = {key: getattr(state, key) for key in expected}
    assert got == expected


def test_fold_is_pure_and_deterministic():
    events = [p.values[0] for p in CASES]
    for evs in events:
        first = run(evs)
        assert run(evs) == first  # same inputs, same state
    start = run([make_event(U, ET.ESTABLISHED, date(2025, 1, 3))])
    frozen = InstitutionState.from_row(start.to_row())
    fold(start, make_event(U, ET.DEREGISTERED, date(2025, 2, 1), version=2))
    assert start == frozen  # the input state is untouched


def test_row_round_trip():
    state = run(CASES[3].values[0], months=["2025-03", "2025-03"])
    assert InstitutionState.from_row(state.to_row()) == state
    assert state.to_row()["registrars"] == "SHENPI,SHICHANG"


def test_load_months_span():
    evs = [
        make_event(U, ET.ESTABLISHED, date(2025, 1, 3)),
        make_event(U, ET.CHANGED, date(2025, 3, 3), version=2),
    ]
    state = run(evs, months=["2025-03", "2025-01"])
    assert (state.first_load_month, state.last_load_month) == ("2025-01", "2025-03")


def test_is_behind_compares_offsets_within_one_partition():
    state = run([make_event(U, ET.ESTABLISHED, date(2025, 4, 3))], positions=[Position("t", 2, 50)])
    assert (state.last_topic, state.last_partition, state.last_offset) == ("t", 2, 50)
    assert is_behind(state, Position("t", 2, 10))
    assert is_behind(state, Position("t", 2, 50))
    assert not is_behind(state, Position("t", 2, 51))
    assert not is_behind(state, Position("t", 1, 10))  # another partition: no order to compare
    assert not is_behind(state, Position("other", 2, 10))
    assert not is_behind(None, Position("t", 2, 10))


def test_a_full_id_never_reaches_the_state():
    rep = LegalRepresentative("王五", "110105199001011234", True, "13812345678")
    state = run([make_event(U, ET.ESTABLISHED, date(2025, 3, 3), rep=rep)])
    assert state.legal_rep_id_masked == "110105********1234"
    assert state.legal_rep_phone_masked == "138****5678"
    assert state.legal_rep_name == "王五"


@pytest.mark.parametrize(
    ("kind", "move", "county"),
    [
        (ET.MOVED_OUT, JurisdictionMove("441802", "441803"), "441802"),
        (ET.MOVED_IN, JurisdictionMove("441802", "441803"), "441803"),
        (ET.MOVED_IN, JurisdictionMove("441802", None), "441899"),
        (ET.CHANGED, None, "441899"),
    ],
)
def test_event_county_routes_moves(kind, move, county):
    assert event_county(make_event(U, kind, county="441899", move=move)) == county
