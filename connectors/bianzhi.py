"""编制 connector: every version of every 事业单位 registration, read from the 编制 system's history table.

The 编制 system updates its registration table in place and copies each 登记 into ``sydw_djls``
(glossary in :mod:`simulators.bianzhi_db`). Reading the copy, not the current table, is what gives the
pipeline one event per version. The cursor is ``gxsj``, stamped by an hourly job, so ties are the
rule: pages are ``gxsj >= mark ORDER BY gxsj, jgid, bbh`` under :class:`HighWatermark`, whose tie set
keeps late rows with an equal ``gxsj`` and drops those already taken.

Mapping decisions: ``bglx`` gives the event type (01 设立, 02 变更, 03 注销, 04 撤销登记/吊销证书), except
that ``scbz='1'`` (the logical delete) always means 注销 — the 删除 function leaves the previous code
in the copy. Dates are CHAR(8); capital is already in 万元; every 事业单位 is a non-profit public
institution. The connector declares the columns it reads instead of importing the simulator: it is a
client of a foreign system, and the same code reads a production copy.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import sqlalchemy as sa

from connectors.base import (
    Batch,
    ConnectorSpec,
    ExtractContext,
    HighWatermark,
    InvalidRecord,
    UnusableRecord,
    event_type_from,
    legal_representative,
    parse_date,
)
from connectors.sql import SqlConnector
from schemas.events import (
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    LegalForm,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    ServiceForm,
)
from schemas.masking import mask_text

SOURCE = "bianzhi"
EXTRACTED_BY = "connectors.bianzhi@0.1.0"
CURSOR_FORMAT = "%Y-%m-%d %H:%M:%S"  # gxsj has second precision; text of this form sorts like time

BGLX = {
    "01": EventType.ESTABLISHED,
    "02": EventType.CHANGED,
    "03": EventType.DEREGISTERED,
    "04": EventType.REVOKED,
}
DJZT = {"1": InstitutionStatus.ACTIVE, "2": InstitutionStatus.DEREGISTERED, "3": InstitutionStatus.REVOKED}
ITEM_FIELD = {
    "法定代表人": "legal_representative.name",
    "机构名称": "name",
    "住所": "address",
    "宗旨和业务范围": "business_scope",
    "开办资金": "registered_capital",
}
FORMS = {form.label_zh: form for form in ServiceForm}
_FORM_SEP = re.compile(r"[、,，;；\s]+")

COLUMNS = (  # noqa: SIM905 - the columns read, at one glance
    "jgid bbh tyshxydm jgmc jglb zs zsxzqh ywfw fddbr fddbrzjhm lxdh kbzj fwxs tws djrq hzrq bglx djzt scbz gxsj"
).split()
# kbzj is read untyped and parsed per row: SQLite keeps text in a NUMERIC column, and a typed read
# would fail the whole page's fetch on it instead of sending that one row to the DLQ.
TYPES: dict[str, Any] = {"bbh": sa.Integer, "kbzj": None, "tws": sa.Integer, "gxsj": sa.DateTime}
HISTORY = sa.table("sydw_djls", *(sa.column(n, TYPES.get(n, sa.String)) for n in COLUMNS))
ITEMS = sa.table(
    "sydw_bgsx",
    sa.column("jgid", sa.String),
    sa.column("bbh", sa.Integer),
    sa.column("xh", sa.Integer),
    sa.column("bgsx", sa.String),
    sa.column("bgqnr", sa.Text),
    sa.column("bghnr", sa.Text),
)


class BianzhiConnector(SqlConnector):
    """Reads the 编制 事业单位登记 history table incrementally (SQLite or PostgreSQL URL)."""

    spec = ConnectorSpec(
        name=SOURCE,
        registrar=Registrar.BIANZHI,
        source_system="bianzhi-sydwdj-db",
        key="jgid,bbh",
        cursor_field="gxsj",
        description="编制部门事业单位登记管理库：登记历史表 sydw_djls，每个登记版本一行",
        surfaced_field="gxsj",
    )

    table = HISTORY
    order_by = ("gxsj", "jgid", "bbh")
    personal: ClassVar[Mapping[str, str]] = {"fddbrzjhm": "id", "lxdh": "phone"}

    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        """Rows without ``gxsj`` once to the DLQ, then one batch per page of new history rows."""
        start = HighWatermark.from_state(state)
        unstamped = set(state.get("unstamped", ()))
        if sweep := [row for row in self._unstamped() if f"{row.jgid}/{row.bbh}" not in unstamped]:
            unstamped |= {f"{row.jgid}/{row.bbh}" for row in sweep}
            batch = Batch(read=len(sweep), state={**start.to_state(), "unstamped": sorted(unstamped)})
            for row in sweep:  # never on the cursor: told once, not silently never read
                reason = f"{SOURCE}: record {row.jgid} v{row.bbh}: no 更新时间 (gxsj), so the cursor never reaches it"
                batch.invalid.append(InvalidRecord.of(row.jgid, self.raw(row), reason))
            yield batch
        yield from self.pages(start, ctx, {"unstamped": sorted(unstamped)} if unstamped else {})

    def after_mark(self, mark: HighWatermark) -> sa.ColumnElement[bool]:
        """``gxsj >= mark`` as a timestamp."""
        return HISTORY.c.gxsj >= datetime.strptime(mark.value or "", CURSOR_FORMAT)

    def until(self, ctx: ExtractContext) -> sa.ColumnElement[bool]:
        """Stamped by the as-of (Beijing time); a NULL ``gxsj`` is never on the cursor."""
        end = datetime.strptime(ctx.local_end(CURSOR_FORMAT), CURSOR_FORMAT)
        return sa.and_(HISTORY.c.gxsj.is_not(None), HISTORY.c.gxsj <= end)

    def position(self, row: sa.Row[Any]) -> tuple[str, str]:
        """(cursor value, tie key) of a history row."""
        return row.gxsj.strftime(CURSOR_FORMAT), f"{row.jgid}/{row.bbh}"

    def record_id(self, row: sa.Row[Any]) -> tuple[str, str]:
        """The institution and its version."""
        return row.jgid, f"{row.jgid} v{row.bbh}"

    def prepare(self, rows: list[sa.Row[Any]]) -> dict[tuple[str, int], list[sa.Row[Any]]]:
        """The 变更事项 of this page's 变更 rows."""
        return self._items([row for row in rows if row.bglx == "02"])

    def convert(
        self, row: sa.Row[Any], cursor: str, ctx: ExtractContext, page: Any
    ) -> RegistrationEvent | None:
        """The version's event; None when neither scope nor name is childcare."""
        if not self.is_childcare(row.ywfw, row.jgmc):
            return None
        return self._event(row, cursor, page.get((row.jgid, row.bbh), ()), ctx)

    def _unstamped(self) -> Sequence[sa.Row[Any]]:
        """History rows without ``gxsj`` (NOT NULL in the source's design, not in every copy)."""
        query = sa.select(HISTORY).where(HISTORY.c.gxsj.is_(None)).order_by(HISTORY.c.jgid, HISTORY.c.bbh)
        with self.engine.connect() as conn:
            return conn.execute(query).all()

    def _items(self, rows: list[sa.Row[Any]]) -> dict[tuple[str, int], list[sa.Row[Any]]]:
        """The 变更事项 of this page's 变更 rows, by (jgid, bbh), in 序号 order."""
        found: dict[tuple[str, int], list[sa.Row[Any]]] = defaultdict(list)
        if not rows:
            return found
        wanted = {(row.jgid, row.bbh) for row in rows}
        query = (
            sa.select(ITEMS)
            .where(ITEMS.c.jgid.in_(sorted({jgid for jgid, _ in wanted})))
            .order_by(ITEMS.c.xh)
        )
        with self.engine.connect() as conn:
            for item in conn.execute(query):
                if (item.jgid, item.bbh) in wanted:
                    found[(item.jgid, item.bbh)].append(item)
        return found

    def _event(
        self, row: sa.Row[Any], cursor: str, items: Sequence[sa.Row[Any]], ctx: ExtractContext
    ) -> RegistrationEvent:
        key = f"{row.jgid} v{row.bbh}"
        deleted = (row.scbz or "").strip() == "1"
        event_type = EventType.DEREGISTERED if deleted else event_type_from(row.bglx or "", BGLX, SOURCE, key)
        status = InstitutionStatus.DEREGISTERED if deleted else DJZT.get((row.djzt or "").strip())
        if status is None:
            raise UnusableRecord(f"{SOURCE}: unknown 登记状态 {row.djzt!r} on record {key}")
        event_date = parse_date(row.hzrq) or parse_date(row.djrq)
        if event_date is None:
            raise UnusableRecord(f"{SOURCE}: record {key} has neither 核准日期 nor 登记日期")
        county, resolution = self.resolve_county(row.zs, row.zsxzqh)
        institution = Institution(
            uscc=(row.tyshxydm or "").strip(),
            name=(row.jgmc or "").strip(),
            legal_form=LegalForm.PUBLIC_INSTITUTION,
            profit_nature=ProfitNature.NON_PROFIT,
            address=(row.zs or "").strip(),
            business_scope=row.ywfw or "",
            status=status,
            county_code=county,
            county_resolution=resolution,
            legal_representative=legal_representative(
                row.fddbr, row.fddbrzjhm, row.lxdh, ctx.extracted_at.date()
            ),
            registered_capital=_decimal(row.kbzj, "kbzj"),
            service_forms=self._forms(row.fwxs, key),
            capacity=row.tws,
        )
        changes = (
            FieldChange(
                ITEM_FIELD.get(i.bgsx, i.bgsx), mask_text(i.bgqnr) or None, mask_text(i.bghnr) or None
            )
            for i in items
        )
        return RegistrationEvent.build(
            event_type=event_type,
            registrar=Registrar.BIANZHI,
            event_date=event_date,
            extracted_at=ctx.extracted_at,
            institution=institution,
            lineage=Lineage(self.spec.source_system, row.jgid, str(row.bbh), EXTRACTED_BY, cursor),
            changed_fields=changes if event_type is EventType.CHANGED else (),
        )

    def _forms(self, text: str | None, key: str) -> tuple[ServiceForm, ...] | None:
        """服务形式 (全日托、半日托…) as enum members; an unknown label is an error, not a silent drop."""
        labels = [label for label in _FORM_SEP.split(text or "") if label]
        if not labels:
            return None
        unknown = [label for label in labels if label not in FORMS]
        if unknown:
            raise UnusableRecord(f"{SOURCE}: unknown 服务形式 {unknown} on record {key}")
        return tuple(FORMS[label] for label in labels)


def _decimal(value: Any, column: str) -> Decimal | None:
    """A NUMERIC value read untyped: Decimal on PostgreSQL, float or text on SQLite."""
    if value is None or isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise UnusableRecord(f"{column} {value!r} is not a number") from None
