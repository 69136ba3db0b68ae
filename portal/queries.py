"""Every read of the filing store the portal makes, each restricted by the caller's scope.

Each function takes the :class:`~portal.scope.Principal` and applies :meth:`Principal.where` to the
county column of the table it reads; nothing here trusts a county code from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from portal.models import receipts, seen
from portal.scope import Principal
from schemas.divisions import lookup
from sink.filing import CANCELLED_STATUSES
from sink.models import county_pushes, filings, institution_events, institutions, load_manifests

inst, ev, fil = institutions, institution_events, filings

REGISTERED_ON = sa.func.coalesce(
    inst.c.childcare_since, inst.c.first_registration_date, inst.c.last_event_date
)
"""When an institution became a registered childcare institution (as :func:`sink.filing.filing_gap`)."""

IN_FORCE = fil.c.status.not_in(sorted(CANCELLED_STATUSES))


def division_name(code: str | None) -> str:
    """A division's name, or a placeholder for unknown codes."""
    if not code:
        return "县区未定位"
    found = lookup(code)
    return found.name if found is not None else "未知区划"


def months(conn: sa.Connection) -> list[str]:
    """Months loaded into the store, newest first (not region data: every county has every month)."""
    return list(
        conn.scalars(sa.select(load_manifests.c.month).distinct().order_by(load_manifests.c.month.desc()))
    )


def month_loaded_at(conn: sa.Connection, month: str) -> Any:
    """The last load time of a month (pins the empty package's manifest), or ``None``."""
    return conn.scalar(
        sa.select(sa.func.max(load_manifests.c.loaded_at)).where(load_manifests.c.month == month)
    )


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """The inbox's filters; ``status`` is ``unseen``, ``late`` or empty."""

    month: str
    registrar: str = ""
    event_type: str = ""
    status: str = ""


def inbox(
    conn: sa.Connection, who: Principal, flt: InboxFilter, *, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Events pushed in a month to the caller's region, newest push first; (page, total)."""
    seen_by_me = sa.exists().where(seen.c.user_id == (who.id or -1), seen.c.event_id == ev.c.event_id)
    conds = [ev.c.load_month == flt.month, who.where(ev.c.county_code)]
    if flt.registrar:
        conds.append(ev.c.registrar == flt.registrar)
    if flt.event_type:
        conds.append(ev.c.event_type == flt.event_type)
    if flt.status == "late":
        conds.append(ev.c.late.is_(True))
    elif flt.status == "unseen":
        conds.append(~seen_by_me)
    query = (
        sa.select(
            ev.c.event_id,
            ev.c.uscc,
            ev.c.event_type,
            ev.c.registrar,
            ev.c.event_date,
            ev.c.pushed_at,
            ev.c.late,
            ev.c.county_code,
            inst.c.name,
            seen_by_me.label("seen"),
        )
        .select_from(ev.outerjoin(inst, inst.c.uscc == ev.c.uscc))
        .where(*conds)
        .order_by(ev.c.pushed_at.desc(), ev.c.event_id)
        .limit(limit)
        .offset(offset)
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)
    total = conn.scalar(sa.select(sa.func.count()).select_from(ev).where(*conds)) or 0
    return rows, total


def mark_seen(conn: sa.Connection, who: Principal, event_ids: list[str]) -> None:
    """Record events as seen by the user (ignores those already seen)."""
    if who.id is None or not event_ids:
        return
    have = set(
        conn.scalars(
            sa.select(seen.c.event_id).where(seen.c.user_id == who.id, seen.c.event_id.in_(event_ids))
        )
    )
    new = [{"user_id": who.id, "event_id": e} for e in dict.fromkeys(event_ids) if e not in have]
    if new:
        conn.execute(seen.insert(), new)


def month_event_ids(conn: sa.Connection, who: Principal, month: str) -> list[str]:
    """All event ids of a month in the caller's region (to mark a month seen)."""
    return list(
        conn.scalars(sa.select(ev.c.event_id).where(ev.c.load_month == month, who.where(ev.c.county_code)))
    )


def institution(conn: sa.Connection, who: Principal, uscc: str) -> dict[str, Any] | None:
    """The folded row, if the institution lies in the caller's region."""
    row = (
        conn.execute(
            sa.select(inst, REGISTERED_ON.label("registered_on")).where(
                inst.c.uscc == uscc, who.where(inst.c.county_code)
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def history(conn: sa.Connection, uscc: str) -> list[dict[str, Any]]:
    """An institution's events in load order (call only after :func:`institution` allowed it)."""
    query = (
        sa.select(ev)
        .where(ev.c.uscc == uscc)
        .order_by(ev.c.load_month, ev.c.kafka_topic, ev.c.kafka_partition, ev.c.kafka_offset)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def filings_of(conn: sa.Connection, uscc: str) -> list[dict[str, Any]]:
    """An institution's filings, newest first (after the scope check on the institution)."""
    query = sa.select(fil).where(fil.c.uscc == uscc).order_by(fil.c.filed_date.desc(), fil.c.filing_number)
    return [dict(r) for r in conn.execute(query).mappings()]


GAP_SORTS = {
    "days": (REGISTERED_ON.asc(), inst.c.uscc),
    "-days": (REGISTERED_ON.desc(), inst.c.uscc),
    "name": (inst.c.name, inst.c.uscc),
    "county": (inst.c.county_code, REGISTERED_ON, inst.c.uscc),
}


def unfiled(
    conn: sa.Connection,
    who: Principal,
    as_of: date,
    *,
    sort: str = "days",
    limit: int | None = 200,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """登记未备案 in the caller's region: active childcare institutions without a filing in force."""
    conds = [
        inst.c.status == "ACTIVE",
        inst.c.childcare.is_(True),
        as_of >= REGISTERED_ON,
        who.where(inst.c.county_code),
        ~sa.exists().where(fil.c.uscc == inst.c.uscc, fil.c.filed_date <= as_of, IN_FORCE),
    ]
    query = (
        sa.select(
            inst.c.uscc,
            inst.c.name,
            inst.c.county_code,
            inst.c.registrars,
            inst.c.address,
            REGISTERED_ON.label("registered_on"),
        )
        .where(*conds)
        .order_by(*GAP_SORTS.get(sort, GAP_SORTS["days"]))
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for r in conn.execute(query).mappings():
        row = dict(r)
        row["days_since"] = (as_of - row["registered_on"]).days
        rows.append(row)
    if offset == 0 and (limit is None or len(rows) < limit):
        return rows, len(rows)
    # A separate COUNT, not a window: with the window the planner probes filings for every row
    # (nested loop); alone, the page stops after its rows and the count takes a hash anti-join.
    total = conn.scalar(sa.select(sa.func.count()).select_from(inst).where(*conds)) or 0
    return rows, total


def unregistered(conn: sa.Connection, who: Principal, as_of: date) -> list[dict[str, Any]]:
    """备案未登记 in the caller's region: filings in force whose USCC the roster does not know."""
    query = (
        sa.select(fil)
        .where(
            fil.c.filed_date <= as_of,
            IN_FORCE,
            who.where(fil.c.county_code),
            ~sa.exists().where(inst.c.uscc == fil.c.uscc),
        )
        .order_by(fil.c.county_code, fil.c.filed_date, fil.c.filing_number)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def counties(conn: sa.Connection, who: Principal) -> list[str]:
    """Counties in the caller's region the store knows (a bureau always has its own)."""
    found: set[str] = set()
    for table in (inst, county_pushes):
        found.update(
            c
            for c in conn.scalars(
                sa.select(table.c.county_code).where(who.where(table.c.county_code)).distinct()
            )
            if c
        )
    if who.role == "bureau" and who.region:
        found.add(who.region)
    return sorted(found)


def pushes(
    conn: sa.Connection, who: Principal, month: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest package row per (month, county) in the caller's region."""
    conds = [who.where(county_pushes.c.county_code)]
    if month:
        conds.append(county_pushes.c.month == month)
    rows = conn.execute(sa.select(county_pushes).where(*conds).order_by(county_pushes.c.id)).mappings()
    return {(r["month"], r["county_code"]): dict(r) for r in rows}


def receipts_of(conn: sa.Connection, who: Principal) -> dict[tuple[str, str], dict[str, Any]]:
    """Receipts (first bureau download) per (month, county) in the caller's region."""
    rows = conn.execute(sa.select(receipts).where(who.where(receipts.c.county_code))).mappings()
    return {(r["month"], r["county_code"]): dict(r) for r in rows}


PUBLIC_COLUMNS = (
    inst.c.uscc,
    inst.c.name,
    inst.c.address,
    inst.c.county_code,
    inst.c.service_forms,
    inst.c.capacity,
)
"""What 公示 shows of an institution: nothing about natural persons."""


def public_page(
    conn: sa.Connection, *, q: str = "", region: str = "", page: int = 1, per_page: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """Filed institutions (a filing in force) by name or USCC and region; no personal data selected at all."""
    filed = sa.exists().where(fil.c.uscc == inst.c.uscc, IN_FORCE)
    conds: list[Any] = [filed, inst.c.childcare.is_(True)]
    if region:
        conds.append(Principal("user", "city", region, "public").where(inst.c.county_code))
    text = q.strip()
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        conds.append(sa.or_(inst.c.name.like(like), inst.c.uscc == text.upper()))
    query = (
        sa.select(*PUBLIC_COLUMNS, sa.func.count().over().label("total"))
        .where(*conds)
        .order_by(inst.c.county_code, inst.c.uscc)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    if rows:
        total = rows[0]["total"]
    else:
        total = conn.scalar(sa.select(sa.func.count()).select_from(inst).where(*conds)) or 0
    latest = _latest_filings(conn, [r["uscc"] for r in rows])
    for row in rows:
        row.pop("total")
        found = latest.get(row["uscc"]) or {}
        row["filing_number"] = found.get("filing_number")
        row["filed_date"] = found.get("filed_date")
        row["filing_status"] = found.get("status")
    return rows, total


def _latest_filings(conn: sa.Connection, usccs: list[str]) -> dict[str, dict[str, Any]]:
    """The newest filing (any status) of each of a page's institutions, by USCC."""
    if not usccs:
        return {}
    latest: dict[str, dict[str, Any]] = {}
    query = (
        sa.select(fil.c.uscc, fil.c.filing_number, fil.c.filed_date, fil.c.status)
        .where(fil.c.uscc.in_(usccs))
        .order_by(fil.c.uscc, fil.c.filed_date, fil.c.filing_number)
    )
    for r in conn.execute(query).mappings():
        latest[r["uscc"]] = dict(r)  # ordered ascending: the last one wins
    return latest


def public_regions(conn: sa.Connection) -> list[str]:
    """County codes that have filed institutions (for the 公示 region picker)."""
    filed = sa.exists().where(fil.c.uscc == inst.c.uscc, IN_FORCE)
    return [
        c
        for c in conn.scalars(
            sa.select(inst.c.county_code).where(filed).distinct().order_by(inst.c.county_code)
        )
        if c
    ]


API_COLUMNS = (
    inst.c.uscc,
    inst.c.name,
    inst.c.legal_form,
    inst.c.profit_nature,
    inst.c.address,
    inst.c.county_code,
    inst.c.status,
    inst.c.childcare,
    inst.c.childcare_since,
    inst.c.service_forms,
    inst.c.capacity,
    inst.c.registrars,
    inst.c.first_registration_date,
    inst.c.last_event_date,
    inst.c.last_event_type,
    inst.c.last_load_month,
)
"""The roster API's fields: the institution as a legal entity, no legal representative."""


def roster_page(
    conn: sa.Connection,
    who: Principal,
    *,
    after: str = "",
    updated_since: date | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """A keyset page of the roster (USCC order) in the caller's region, with the filing in force."""
    conds: list[Any] = [who.where(inst.c.county_code)]
    if after:
        conds.append(inst.c.uscc > after)
    if updated_since is not None:
        conds.append(inst.c.last_event_date >= updated_since)
    query = sa.select(*API_COLUMNS).where(*conds).order_by(inst.c.uscc).limit(limit)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    latest = _latest_filings(conn, [r["uscc"] for r in rows])
    for row in rows:
        found = latest.get(row["uscc"])
        row["filing"] = (
            None if found is None else {k: found[k] for k in ("filing_number", "filed_date", "status")}
        )
    return rows
