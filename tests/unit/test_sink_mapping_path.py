"""The load folds and stores the decoded Avro mapping; the typed path must give the same, value for value."""

from __future__ import annotations

import pytest

from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import RegistrationEvent
from sink.eventjson import event_to_json, record_to_json
from sink.fold import STATE_COLUMNS, Position, fold, fold_record, record_county
from sink.synthetic import synthetic_month
from tests.unit.test_sink_fold import CASES


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(get_contract(REGISTRATION_EVENT).latest.schema_str, 1)


def _events() -> list[RegistrationEvent]:
    table = [event for case in CASES for event in case.values[0]]
    return table + [rec.event for rec in synthetic_month(600, partitions=1, seed=3)]


def test_fold_of_the_decoded_mapping_equals_the_typed_fold(codec: AvroCodec) -> None:
    typed: dict[str, object] = {}
    mapped: dict[str, object] = {}
    for offset, event in enumerate(_events()):
        decoded = codec.decode(codec.encode(event.to_avro()))
        uscc = event.institution.uscc
        pos = Position("t", 0, offset)
        typed[uscc] = fold(typed.get(uscc), event, position=pos, load_month="2025-03")  # type: ignore[arg-type]
        mapped[uscc] = fold_record(mapped.get(uscc), decoded, position=pos, load_month="2025-03")  # type: ignore[arg-type]
        assert record_county(decoded) == record_county(event.to_avro())
    assert typed == mapped
    for state in mapped.values():
        # plain values, not enum members: what is stored must not depend on the path it came by
        row = state.to_row()  # type: ignore[attr-defined]
        assert all(type(v) is str for k, v in row.items() if k in {"status", "legal_form", "last_event_type"})
        assert state.to_tuple() == [row[name] for name in STATE_COLUMNS]  # type: ignore[attr-defined]


def test_history_document_of_the_decoded_mapping_equals_the_typed_one(codec: AvroCodec) -> None:
    for event in _events():
        decoded = codec.decode(codec.encode(event.to_avro()))
        before = repr(decoded)
        assert record_to_json(decoded) == event_to_json(event)
        assert repr(decoded) == before  # the mapping the fold reads is left as it was
