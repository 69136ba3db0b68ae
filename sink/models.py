"""The filing store's tables (SQLAlchemy Core), on PostgreSQL and SQLite alike.

Why these five tables:

* ``institutions`` — the health bureau's roster: one row per USCC, the fold of its events in order
  (see :mod:`sink.fold`). It also keeps the Kafka position of the last event applied, so a month
  loaded late (a backfill) cannot roll an institution back to an older state.
* ``institution_events`` — every event exactly once (``event_id`` is the idempotency key), with the
  Kafka position it was read at and the event itself as JSON, so an auditor can trace any roster
  value back to the record and the source row.
* ``load_manifests`` — what each monthly load read (partition offset ranges), what it did (counts)
  and a checksum of the event ids; written in the load's own transaction, which is what makes a
  re-run a no-op and a crash leave nothing behind.
* ``county_pushes`` — one row per package written for a county (a push is an act worth auditing, so
  re-exports add rows rather than overwrite).
* ``filings`` — 备案 records imported from the health side, to compute the filing gap.

String bounds: a column that holds an event string is declared with that field's bound from
:data:`schemas.limits.STRING_LIMITS` — the same table the gate enforces (rule ``FIELD_TOO_LONG``) — so
whatever reaches ``registrations.valid`` fits, and one over-long value can no longer fail a month's load.
:data:`BOUNDED_COLUMNS` lists which column holds which field; a test checks every length against it.

Personal data: only masked legal-representative IDs and phones are stored (masked again on write by
:mod:`sink.eventjson`, whatever the connector did). A naming convention makes constraint names the
same on every database, so Alembic migrations stay portable.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from schemas.limits import STRING_LIMITS


def bounded(path: str) -> sa.String:
    """``varchar(n)`` with ``n`` the contract bound of event field ``path``."""
    return sa.String(STRING_LIMITS[path])


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON column type: ``jsonb`` on PostgreSQL (queryable for traces), JSON text on SQLite."""

MONTH = sa.String(7)
"""A calendar month as ``YYYY-MM`` (sorts and compares as text)."""

institutions = sa.Table(
    "institutions",
    metadata,
    sa.Column("uscc", bounded("institution.uscc"), primary_key=True),
    sa.Column("name", bounded("institution.name"), nullable=False),
    sa.Column("legal_form", sa.String(32), nullable=False),
    sa.Column("profit_nature", sa.String(16), nullable=False),
    sa.Column("address", bounded("institution.address"), nullable=False),
    sa.Column("county_code", bounded("institution.county_code"), index=True),
    sa.Column("county_resolution", sa.String(16)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("childcare", sa.Boolean, nullable=False),
    sa.Column("childcare_since", sa.Date),
    sa.Column("business_scope", bounded("institution.business_scope"), nullable=False),
    sa.Column("registered_capital", sa.Numeric(18, 6)),
    sa.Column("capital_currency", bounded("institution.registered_capital_currency")),
    sa.Column("service_forms", sa.String(64)),  # comma list of ServiceForm values
    sa.Column("capacity", sa.Integer),
    sa.Column("legal_rep_name", bounded("institution.legal_representative.name")),
    sa.Column("legal_rep_id_masked", bounded("institution.legal_representative.id_number_masked")),
    sa.Column("legal_rep_phone_masked", bounded("institution.legal_representative.phone_masked")),
    sa.Column("stated_division_code", bounded("institution.stated_division_code")),  # contract v2
    sa.Column("industry_code", bounded("institution.industry_code")),  # contract v2
    sa.Column("registrars", sa.String(64), nullable=False),  # comma list of Registrar values, sorted
    sa.Column("first_registration_date", sa.Date),  # earliest ESTABLISHED event date
    sa.Column("last_event_id", bounded("event_id"), nullable=False),
    sa.Column("last_event_date", sa.Date, nullable=False),
    sa.Column("last_event_type", sa.String(32), nullable=False),
    sa.Column("last_topic", sa.String(249)),
    sa.Column("last_partition", sa.Integer),
    sa.Column("last_offset", sa.BigInteger),
    sa.Column("first_load_month", MONTH, nullable=False),
    sa.Column("last_load_month", MONTH, nullable=False),
)

institution_events = sa.Table(
    "institution_events",
    metadata,
    sa.Column("event_id", bounded("event_id"), primary_key=True),
    sa.Column("uscc", bounded("institution.uscc"), nullable=False, index=True),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("registrar", sa.String(16), nullable=False),
    sa.Column("event_date", sa.Date, nullable=False),
    sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pushed_at", sa.DateTime(timezone=True)),  # the Kafka record timestamp
    sa.Column("county_code", bounded("institution.county_code")),
    sa.Column("load_month", MONTH, nullable=False),
    sa.Column("kafka_topic", sa.String(249), nullable=False),
    sa.Column("kafka_partition", sa.Integer, nullable=False),
    sa.Column("kafka_offset", sa.BigInteger, nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
    sa.Column("event_json", JSONDoc, nullable=False),
    sa.Index("ix_institution_events_month_county", "load_month", "county_code"),
    sa.Index("ix_institution_events_month_topic", "load_month", "kafka_topic"),
)

load_manifests = sa.Table(
    "load_manifests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("month", MONTH, nullable=False),
    sa.Column("topic", sa.String(249), nullable=False),
    sa.Column("offset_ranges", JSONDoc, nullable=False),  # {"<partition>": [start, end)}
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("inserted", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("institutions_touched", sa.Integer, nullable=False),
    sa.Column("late", sa.Integer, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.UniqueConstraint("month", "topic", name="uq_load_manifests_month_topic"),
)

county_pushes = sa.Table(
    "county_pushes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("month", MONTH, nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("county_name", sa.Text, nullable=False),
    sa.Column("directory", sa.Text, nullable=False),
    sa.Column("csv_path", sa.Text, nullable=False),
    sa.Column("csv_sha256", sa.String(64), nullable=False),
    sa.Column("xlsx_path", sa.Text, nullable=False),
    sa.Column("xlsx_sha256", sa.String(64), nullable=False),
    sa.Column("manifest_path", sa.Text, nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("late", sa.Integer, nullable=False),
    sa.Column("counts_by_type", JSONDoc, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_county_pushes_month_county", "month", "county_code"),
)

filings = sa.Table(
    "filings",
    metadata,
    sa.Column("filing_number", sa.String(64), primary_key=True),
    sa.Column("uscc", sa.String(18), nullable=False, index=True),
    sa.Column("county_code", sa.String(6), index=True),
    sa.Column("filed_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
)


BOUNDED_COLUMNS: Final[Mapping[str, tuple[sa.Column[str], ...]]] = MappingProxyType(
    {
        "event_id": (institution_events.c.event_id, institutions.c.last_event_id),
        "institution.uscc": (institutions.c.uscc, institution_events.c.uscc),
        "institution.name": (institutions.c.name,),
        "institution.address": (institutions.c.address,),
        "institution.business_scope": (institutions.c.business_scope,),
        "institution.county_code": (institutions.c.county_code, institution_events.c.county_code),
        # 迁出/迁入 route by the move's county (sink.fold.event_county), into the same columns:
        "jurisdiction.from_county_code": (institutions.c.county_code, institution_events.c.county_code),
        "jurisdiction.to_county_code": (institutions.c.county_code, institution_events.c.county_code),
        "institution.registered_capital_currency": (institutions.c.capital_currency,),
        "institution.legal_representative.name": (institutions.c.legal_rep_name,),
        "institution.legal_representative.id_number_masked": (institutions.c.legal_rep_id_masked,),
        "institution.legal_representative.phone_masked": (institutions.c.legal_rep_phone_masked,),
        "institution.stated_division_code": (institutions.c.stated_division_code,),
        "institution.industry_code": (institutions.c.industry_code,),
    }
)
"""Event field path → the columns that store its value. Fields not listed live only in ``event_json``
(``jsonb``/JSON, unbounded). The columns' lengths equal the bounds by construction (:func:`bounded`)."""
