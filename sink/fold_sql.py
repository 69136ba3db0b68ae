"""The load's per-chunk fold done set-based in PostgreSQL, for the institutions whose rules are plain.

Why: folding a chunk in Python meant a ``SELECT … FOR UPDATE`` of the touched roster rows, one
:class:`~sink.fold.InstitutionState` per event and a staged upsert — ≈ 16 µs of the load's ≈ 85 µs
of client CPU per event (issue 12). Here ONE statement reads the chunk's events back from
``institution_events`` (already ``COPY``'d, their history documents already masked by
:func:`sink.eventjson.record_to_json` exactly as the fold masks), locks and reads the touched roster
rows, computes each institution's new row with the rules of :mod:`sink.fold` and upserts it.

Only what those rules make a plain aggregate is done here; an institution is handed back to the
Python fold (:func:`sink.fold.fold_record`, the single definition) when its chunk events

* include ``CHILDCARE_CLASS_ADDED`` (keeps the registrar's snapshot) or ``SCOPE_REMOVED_CHILDCARE``
  (``childcare_since`` then depends on the order of switches),
* come from more than one partition,
* are behind the stored row (:func:`sink.fold.is_behind`: a backfill, re-folded from history), or
* meet a stored row that says childcare without a ``childcare_since`` (not one the fold writes).

For the others (every event takes the snapshot) the fold reduces to: the last event's snapshot and
position; the status forced by its type; the county of the last event that stated one (else the
stored one, else none with the last event's method); childcare on unless the stored row had it off
and no event turned it on; ``childcare_since`` kept, or the first event's date that turned it on;
registrars the sorted union (the stored list kept when nothing is new); the earliest 设立 date; the
load-month span. ``tests/integration/test_load_fold_sql.py`` checks it against the Python fold.
"""

from __future__ import annotations

from collections.abc import Iterable

from sink.fold import _CHILDCARE_ON, _FORCED_STATUS, STATE_COLUMNS

__all__ = ["FOLD_CHUNK_SQL", "FOLD_CHUNK_SQL_JOINED"]

_ODD = ("CHILDCARE_CLASS_ADDED", "SCOPE_REMOVED_CHILDCARE")


def _in(values: Iterable[str]) -> str:
    """A SQL list of the enum values (constants of this module, never input)."""
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


_STATUS = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in sorted(_FORCED_STATUS.items()))
_ON_SNAPSHOT = set(_CHILDCARE_ON) - {"CHILDCARE_CLASS_ADDED"}
_COLUMNS = ", ".join(STATE_COLUMNS)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in STATE_COLUMNS if c != "uscc")

# Parameters: ids (text[] of the chunk's stored event ids), topic, month. Returns the USCCs left to
# the Python fold. Column order is the table's; ``COLLATE "C"`` sorts as Python's ``sorted``/``min``.
_FOLD_SQL = f"""
WITH e AS (
    SELECT ev.uscc, ev.event_id, ev.event_type AS k, ev.registrar AS r, ev.event_date AS d,
           ev.county_code AS stated, ev.kafka_partition AS p, ev.kafka_offset AS o, ev.event_json AS j
    FROM institution_events ev
    WHERE ev.event_id = ANY(__IDS__)
),
s0 AS (
    SELECT i.* FROM institutions i WHERE i.uscc IN (SELECT uscc FROM e) FOR UPDATE
),
agg AS (
    SELECT uscc,
           count(DISTINCT p) AS np,
           min(p) AS p1,
           min(o) AS mino,
           bool_or(k IN {_in(_ODD)}) AS odd,
           bool_or(k IN {_in(_ON_SNAPSHOT)}) AS anyon,
           min(d) FILTER (WHERE k = 'ESTABLISHED') AS est,
           (array_agg(d ORDER BY o))[1] AS d1,
           (array_agg(d ORDER BY o) FILTER (WHERE k IN {_in(_ON_SNAPSHOT)}))[1] AS don,
           array_agg(DISTINCT r::text) AS regs
    FROM e GROUP BY uscc
),
lst AS (
    SELECT DISTINCT ON (uscc) *, j->'institution' AS ins FROM e ORDER BY uscc, o DESC
),
cty AS (
    SELECT DISTINCT ON (uscc) uscc, stated,
           CASE WHEN stated = j->'institution'->>'county_code'
                THEN j->'institution'->'county_resolution'->>'method' ELSE 'STATED' END AS res
    FROM e WHERE coalesce(stated, '') <> '' ORDER BY uscc, o DESC
),
st AS (
    SELECT a.*, s.uscc AS s_uscc, s.childcare AS s_cc, s.childcare_since AS s_since,
           s.county_code AS s_county, s.county_resolution AS s_res, s.registrars AS s_regs,
           s.first_registration_date AS s_first, s.first_load_month AS s_flm, s.last_load_month AS s_llm,
           (a.np > 1 OR a.odd OR (s.uscc IS NOT NULL AND (
                (s.last_offset IS NOT NULL AND s.last_topic = %(topic)s::text AND s.last_partition = a.p1
                 AND a.mino <= s.last_offset)
                OR (s.childcare AND s.childcare_since IS NULL)))) AS python
    FROM agg a LEFT JOIN s0 s ON s.uscc = a.uscc
),
nw AS (
    SELECT st.uscc,
           l.ins->>'name' AS name,
           l.ins->>'legal_form' AS legal_form,
           l.ins->>'profit_nature' AS profit_nature,
           l.ins->>'address' AS address,
           CASE WHEN c.uscc IS NOT NULL THEN c.stated
                WHEN coalesce(st.s_county, '') <> '' THEN st.s_county END AS county_code,
           CASE WHEN c.uscc IS NOT NULL THEN c.res
                WHEN coalesce(st.s_county, '') <> '' THEN st.s_res
                ELSE l.ins->'county_resolution'->>'method' END AS county_resolution,
           CASE l.k {_STATUS} ELSE l.ins->>'status' END AS status,
           (st.s_uscc IS NULL OR st.s_cc OR st.anyon) AS childcare,
           CASE WHEN st.s_uscc IS NULL THEN st.d1
                WHEN st.s_cc THEN st.s_since
                ELSE st.don END AS childcare_since,
           l.ins->>'business_scope' AS business_scope,
           (l.ins->>'registered_capital')::numeric AS registered_capital,
           l.ins->>'registered_capital_currency' AS capital_currency,
           (SELECT string_agg(f.v, ',' ORDER BY f.n) FROM (
                SELECT v, min(n) AS n
                FROM jsonb_array_elements_text(
                    CASE jsonb_typeof(l.ins->'service_forms')
                    WHEN 'array' THEN l.ins->'service_forms' ELSE '[]'::jsonb END
                ) WITH ORDINALITY AS x(v, n) GROUP BY v) f) AS service_forms,
           (l.ins->>'capacity')::integer AS capacity,
           l.ins->'legal_representative'->>'name' AS legal_rep_name,
           l.ins->'legal_representative'->>'id_number_masked' AS legal_rep_id_masked,
           l.ins->'legal_representative'->>'phone_masked' AS legal_rep_phone_masked,
           l.ins->>'stated_division_code' AS stated_division_code,
           l.ins->>'industry_code' AS industry_code,
           CASE WHEN st.s_uscc IS NOT NULL
                     AND st.regs <@ string_to_array(nullif(st.s_regs, ''), ',') THEN st.s_regs
                ELSE (SELECT string_agg(DISTINCT x.r COLLATE "C", ',' ORDER BY x.r COLLATE "C") FROM unnest(
                          st.regs || coalesce(string_to_array(nullif(st.s_regs, ''), ','), '{{}}')) AS x(r))
           END AS registrars,
           CASE WHEN st.s_uscc IS NULL THEN st.est ELSE least(st.s_first, st.est) END
               AS first_registration_date,
           l.event_id AS last_event_id,
           l.d AS last_event_date,
           l.k AS last_event_type,
           %(topic)s::text AS last_topic,
           l.p AS last_partition,
           l.o AS last_offset,
           CASE WHEN coalesce(st.s_flm, '') = '' THEN %(month)s::text
                ELSE least(st.s_flm COLLATE "C", %(month)s::text) END AS first_load_month,
           CASE WHEN st.s_uscc IS NULL THEN %(month)s::text
                ELSE greatest(st.s_llm COLLATE "C", %(month)s::text) END AS last_load_month
    FROM st JOIN lst l ON l.uscc = st.uscc LEFT JOIN cty c ON c.uscc = st.uscc
    WHERE NOT st.python
),
up AS (
    INSERT INTO institutions ({_COLUMNS})
    SELECT {_COLUMNS} FROM nw
    ON CONFLICT (uscc) DO UPDATE SET {_UPDATES}
)
SELECT uscc FROM st WHERE python
"""

FOLD_CHUNK_SQL = _FOLD_SQL.replace("__IDS__", "%(ids)s")
"""The fold of one chunk; ``ids`` is a list of the chunk's stored event ids (a ``text[]``)."""

FOLD_CHUNK_SQL_JOINED = _FOLD_SQL.replace("__IDS__", "string_to_array(%(ids)s, E'\\n')")
"""The same with ``ids`` as ONE text, the ids separated by newlines (:func:`sink.loader.joined_ids`)."""
