"""Values at the contract bounds load into a real PostgreSQL; one character more is what the store refuses.

Issue 13 item 5: an over-long legal-representative phone reached ``registrations.valid`` and failed the
month's load on ``varchar(32)``. The gate now rejects anything longer than ``schemas/limits.py`` allows
(``tests/unit/test_limits.py``); here the store proves it holds everything up to those bounds.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from schemas.events import EventType, JurisdictionMove
from schemas.examples import at_limits, with_value
from schemas.limits import STRING_LIMITS
from sink.eventjson import masked_rep
from sink.loader import PositionedEvent, load_month
from sink.models import BOUNDED_COLUMNS, institution_events, institutions
from sink.store import create_engine, upgrade

pytestmark = pytest.mark.integration

TOPIC = "registrations.valid"


def _load(engine, events, month="2025-04"):
    positioned = [PositionedEvent(0, i, e.kafka_timestamp_ms, e) for i, e in enumerate(events)]
    return load_month(
        engine,
        month=month,
        topic=TOPIC,
        positioned=positioned,
        offset_ranges={0: (0, len(events))},
        run_id="bounds",
    )


def test_every_bounded_value_at_its_limit_loads_into_postgres(pg):
    snapshot = at_limits()
    moved = replace(
        with_value(with_value(snapshot, "event_id", "m" * 36), "institution.uscc", "8" * 18),
        event_type=EventType.MOVED_OUT,
        jurisdiction=JurisdictionMove("1" * 6, "2" * 6),
    )
    result = _load(pg, [snapshot, moved])
    assert (result.inserted, result.duplicates) == (2, 0)

    with pg.connect() as conn:
        rows = {r["uscc"]: r for r in conn.execute(sa.select(institutions)).mappings()}
        history = {r["event_id"]: r for r in conn.execute(sa.select(institution_events)).mappings()}
    row = rows["9" * 18]
    inst = snapshot.institution
    rep = masked_rep(inst.legal_representative)  # masked again at rest; same length
    assert rep is not None
    expected = {
        "name": inst.name,
        "address": inst.address,
        "business_scope": inst.business_scope,
        "county_code": inst.county_code,
        "capital_currency": inst.registered_capital_currency,
        "legal_rep_name": rep.name,
        "legal_rep_id_masked": rep.id_number_masked,
        "legal_rep_phone_masked": rep.phone_masked,
        "stated_division_code": inst.stated_division_code,
        "industry_code": inst.industry_code,
        "last_event_id": snapshot.event_id,
    }
    for column, value in expected.items():
        assert row[column] == value, column
    # every bounded column really got a value exactly at its limit
    for path, columns in BOUNDED_COLUMNS.items():
        for column in columns:
            if column.table is institutions and column.name in expected:
                assert len(row[column.name]) == STRING_LIMITS[path], column
    assert len(history[snapshot.event_id]["event_id"]) == 36
    assert history["m" * 36]["county_code"] == "1" * 6  # 迁出 routes by the from county
    assert rows["8" * 18]["county_code"] == "1" * 6


@pytest.mark.parametrize(
    "path",
    [
        "institution.legal_representative.phone_masked",
        "institution.legal_representative.id_number_masked",
        "institution.name",
        "institution.stated_division_code",
        "jurisdiction.from_county_code",
    ],
)
def test_one_character_more_is_refused_by_postgres_and_leaves_nothing(pg, path):
    """Why the gate must reject it: the store cannot hold it, and the whole month's transaction fails."""
    fine = at_limits()
    event = with_value(fine, path, "1" * (STRING_LIMITS[path] + 1))
    if path.startswith("jurisdiction"):
        event = replace(event, event_type=EventType.MOVED_OUT)
    other = with_value(with_value(fine, "event_id", "o" * 36), "institution.uscc", "7" * 18)
    with pytest.raises(sa.exc.DataError, match="too long"):
        _load(pg, [other, event])
    with pg.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(institution_events)).scalar_one() == 0


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_store_loaded_under_0001_migrates_to_0002_keeping_its_rows(backend, database_url, tmp_path):
    """The roster of a v1 store survives the upgrade; the v2 columns start empty, then fill on load."""
    url = database_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, revision="0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO institutions (uscc, name, legal_form, profit_nature, address, status, childcare, "
                "business_scope, registrars, last_event_id, last_event_date, last_event_type, "
                "first_load_month, last_load_month) VALUES ('91350100M000100Y43', '小橡树托育', 'ENTERPRISE', "
                "'FOR_PROFIT', '福州市鼓楼区五四路1号', 'ACTIVE', TRUE, '托育服务', 'SHICHANG', 'e-1', "
                "'2025-03-28', 'ESTABLISHED', '2025-03', '2025-03')"
            )
        )
    upgrade(url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(institutions)).mappings().one()
        assert (row["name"], row["stated_division_code"], row["industry_code"]) == ("小橡树托育", None, None)
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version_sink")).scalar_one() == "0002"
    engine.dispose()
