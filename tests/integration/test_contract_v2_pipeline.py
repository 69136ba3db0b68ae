"""Contract v2 through the real pipeline: raw → gate → valid/rejected → monthly load into PostgreSQL.

* the division code the registrar stated survives the gate's mapping forward and reaches the store;
* the industry code travels with the event into the roster;
* an over-long legal-representative phone (issue 13 item 5) is rejected by the gate with
  ``FIELD_TOO_LONG`` and the month loads instead of failing on ``varchar(32)``;
* the rejected record is stamped on the same clock as its raw record.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from regsync.kafka import bus, rejections
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stages.gate import run_gate
from regsync.stages.load import run_load
from schemas import uscc
from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    Institution,
    InstitutionStatus,
    LegalForm,
    LegalRepresentative,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    RejectedRecord,
)
from sink.models import institutions

pytestmark = pytest.mark.integration

PUSHED = datetime(2026, 1, 12, 2, 0, tzinfo=UTC)


def _event(record_id: str, county_code: str, phone: str, division: str) -> RegistrationEvent:
    return RegistrationEvent.build(
        event_type=EventType.ESTABLISHED,
        registrar=Registrar.MINZHENG,
        event_date=date(2026, 1, 10),
        extracted_at=PUSHED,
        institution=Institution(
            uscc=uscc.make_uscc("5", "2", division, f"MA0K{record_id[-4:]}"),
            name=f"莱芜区阳光托育园{record_id}",
            legal_form=LegalForm.PRIVATE_NON_ENTERPRISE,
            profit_nature=ProfitNature.NON_PROFIT,
            address="山东省济南市莱芜区凤城街道1号",
            business_scope="托育服务",
            status=InstitutionStatus.ACTIVE,
            county_code=county_code,
            county_resolution=CountyResolution(CountyResolutionMethod.STATED, 0.95),
            legal_representative=LegalRepresentative("王伟", "371202********1234", True, phone),
            industry_code="8020",
        ),
        lineage=Lineage("minzheng", record_id, "1", "test"),
    )


def test_v2_fields_survive_the_gate_and_an_over_long_phone_no_longer_blocks_the_month(
    stack, uid, database_url, kafka_security, as_components
):
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    codecs = bus.load_codecs(stack.registry_url, topics)
    abolished = _event("MZ-1001", "371202", "138****5678", "371202")  # 莱城区, abolished 2019 → 莱芜区
    too_long = _event("MZ-1002", "370116", "138****5678" + "0" * 30, "370116")
    producer = KafkaProducer(**kafka_security, bootstrap_servers=stack.bootstrap_servers, acks="all")
    for event in (abolished, too_long):
        producer.send(
            topics.raw,
            key=event.kafka_key,
            value=codecs.raw.encode(event.to_avro()),
            timestamp_ms=event.kafka_timestamp_ms,
            headers=bus.headers([(bus.HEADER_SOURCE, "minzheng"), (bus.HEADER_EVENT_ID, event.event_id)]),
        ).get(timeout=30)
    producer.close()

    counts = run_gate(
        bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topics=topics,
    )
    assert (counts.valid, counts.rejected) == (1, 1)
    assert counts.by_rule.get("FIELD_TOO_LONG") == 1

    (valid,) = [
        RegistrationEvent.from_avro(codecs.valid.decode(r.value))
        for r in bus.scan(stack.bootstrap_servers, topics.valid, {})
    ]
    assert valid.institution.county_code == "370116"
    assert valid.institution.stated_division_code == "371202"  # what the registrar said, kept
    assert valid.institution.industry_code == "8020"

    (rejected_record,) = list(bus.scan(stack.bootstrap_servers, topics.rejected, {}))
    rejected = RejectedRecord.from_avro(codecs.rejected.decode(rejected_record.value))
    assert rejected.event is not None and rejected.event.event_id == too_long.event_id
    (finding,) = [v for v in rejected.violations if v.rule_id == "FIELD_TOO_LONG"]
    assert finding.field == "institution.legal_representative.phone_masked"
    assert rejections.rule_ids_from_headers(rejected_record.headers) == ("FIELD_TOO_LONG",)
    assert rejected_record.timestamp == too_long.kafka_timestamp_ms
    assert rejections.millis(rejected.error_context.rejected_at) == rejected_record.timestamp

    result = run_load(
        bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topics=topics,
        month="2026-01",
    )
    assert (result.records, result.inserted) == (1, 1)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(institutions)).mappings().one()
    engine.dispose()
    assert (row["county_code"], row["stated_division_code"], row["industry_code"]) == (
        "370116",
        "371202",
        "8020",
    )
