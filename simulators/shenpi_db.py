"""行政审批 simulator: a 行政审批服务局 approval platform's registration database, in SQL.

Where a 行政审批服务局 took over registration (e.g. Shandong), its platform registers enterprises (91),
individual businesses (92) and social service organisations (52) in one system, built by a different
vendor than the 编制 one: English-ish names, codes as text, timestamps as strings. The platform
appends one row per approved registration version to ``approval_registration``; nothing is updated
in place, and an auto-increment ``change_seq`` numbers the rows in approval order (the workflow
engine approves serially, so it never commits a lower number after a higher one).

``approval_registration`` columns
  change_seq (PK, auto-increment) · entity_id (the source record id) · version_no (1 = 设立, +1 per
  approval; unique with entity_id) · biz_type 业务类型 (SL 设立, BG 变更, ZX 注销, DX 吊销, QC 迁出,
  QR 迁入) · status_code 登记状态 (01 存续, 02 注销, 03 吊销, 04 迁出, 05 迁入) · credit_code USCC ·
  entity_name · entity_type (enterprise = 91, individual = 92, social_org = 52) · legal_person ·
  lp_cert_no (full resident ID: this is the source) · lp_mobile · reg_address · address_area_code
  (premises division) · scope_json (JSON list of 经营范围/业务范围 items) · reg_capital_yuan
  (注册资本/开办资金 in 元, NUMERIC 18,2 — not 万元) · service_modes (comma-separated codes: 01 全日托,
  02 半日托, 03 计时托, 04 临时托) · nursery_places 托位数 · established_date and approve_date
  (``YYYY-MM-DD`` text) · change_items (JSON list of {item, before, after} for BG) · from_area_code /
  to_area_code (QC/QR) · update_time (``YYYY-MM-DD HH:MM:SS`` text, Beijing time).

Look-alikes (学生托管, 早教, 托养) sit beside the childcare rows, ground truth ``childcare: false``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from schemas.events import EventType, Registrar
from simulators.base import Simulator
from simulators.world import SourceRecord, World, lookalike_records

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

METADATA = sa.MetaData()
REGISTRATION = sa.Table(
    "approval_registration",
    METADATA,
    sa.Column("change_seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("entity_id", sa.String(32), nullable=False),
    sa.Column("version_no", sa.Integer, nullable=False),
    sa.Column("biz_type", sa.String(2), nullable=False),
    sa.Column("status_code", sa.String(2), nullable=False),
    sa.Column("credit_code", sa.String(18)),
    sa.Column("entity_name", sa.String(200)),
    sa.Column("entity_type", sa.String(16), nullable=False),
    sa.Column("legal_person", sa.String(50)),
    sa.Column("lp_cert_no", sa.String(18)),
    sa.Column("lp_mobile", sa.String(20)),
    sa.Column("reg_address", sa.String(300)),
    sa.Column("address_area_code", sa.String(6)),
    sa.Column("scope_json", sa.JSON(none_as_null=True)),
    sa.Column("reg_capital_yuan", sa.Numeric(18, 2)),
    sa.Column("service_modes", sa.String(20)),
    sa.Column("nursery_places", sa.Integer),
    sa.Column("established_date", sa.String(10)),
    sa.Column("approve_date", sa.String(10)),
    sa.Column("change_items", sa.JSON(none_as_null=True)),
    sa.Column("from_area_code", sa.String(6)),
    sa.Column("to_area_code", sa.String(6)),
    sa.Column("update_time", sa.String(19), nullable=False),
    sa.UniqueConstraint("entity_id", "version_no", name="uq_approval_registration_version"),
)

BIZ_TYPE = {
    EventType.ESTABLISHED: "SL",
    EventType.CHANGED: "BG",
    EventType.DEREGISTERED: "ZX",
    EventType.REVOKED: "DX",
    EventType.MOVED_OUT: "QC",
    EventType.MOVED_IN: "QR",
}
STATUS = {"ACTIVE": "01", "DEREGISTERED": "02", "REVOKED": "03", "MOVED_OUT": "04"}
ENTITY_TYPE = {"91": "enterprise", "92": "individual", "52": "social_org"}
MODES = {"FULL_DAY": "01", "HALF_DAY": "02", "HOURLY": "03", "TEMPORARY": "04"}
ITEMS = {
    "legal_representative.name": "legal_person",
    "name": "entity_name",
    "address": "reg_address",
    "business_scope": "business_scope",
    "registered_capital": "reg_capital",
}
LOOKALIKES = (
    ("学生托管服务有限公司", "学生托管服务；午托、晚托", "91"),
    ("早教中心有限公司", "早期教育咨询；亲子活动策划", "91"),
    ("残疾人托养服务中心", "残疾人托养服务", "52"),
    ("课后托管服务部", "课后托管服务", "92"),
)


def stamp(moment: datetime) -> str:
    """The platform's timestamp text: Beijing time, ``YYYY-MM-DD HH:MM:SS``."""
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class ShenpiDb(Simulator):
    """The 行政审批 platform as a SQL database (SQLite file under ``root`` unless ``url`` is given)."""

    registrar = Registrar.SHENPI

    def __init__(self, world: World, root: Path, url: str | None = None) -> None:
        super().__init__(world, root)
        self.url = url or f"sqlite:///{(self.root / 'shenpi.sqlite3').as_posix()}"
        # UTF-8 JSON, as the vendor stores it (not \\u escapes).
        self.engine = sa.create_engine(self.url, json_serializer=lambda o: json.dumps(o, ensure_ascii=False))
        METADATA.create_all(self.engine)
        self.extra = lookalike_records(world, self.registrar, LOOKALIKES, "SPL")
        self.founded = {r.record_id: r.event_date for r in (*world.records, *self.extra) if r.version == 1}
        with self.engine.connect() as conn:  # a restarted simulator must not write versions twice
            query = sa.select(REGISTRATION.c.entity_id, REGISTRATION.c.version_no)
            self.published.update((entity, version) for entity, version in conn.execute(query))

    def pending(self, as_of: datetime) -> list[SourceRecord]:
        """The world's record versions plus this system's look-alikes, in surfacing order."""
        extra = [
            r for r in self.extra if r.surfaced_at <= as_of and (r.record_id, r.version) not in self.published
        ]
        return sorted(
            [*super().pending(as_of), *extra], key=lambda r: (r.surfaced_at, r.record_id, r.version)
        )

    def _write(self, records: list[SourceRecord], as_of: datetime) -> None:
        # Rows go in approval order, and the database numbers them (change_seq) in that order.
        with self.engine.begin() as conn:
            conn.execute(REGISTRATION.insert(), [self._row(record) for record in records])

    def _row(self, r: SourceRecord) -> dict[str, Any]:
        """One approved version as the platform stores it."""
        snap = r.snapshot
        status = "05" if r.event_type is EventType.MOVED_IN else STATUS[snap.status]
        moved = r.event_type in (EventType.MOVED_OUT, EventType.MOVED_IN)
        return {
            "entity_id": r.record_id,
            "version_no": r.version,
            "biz_type": BIZ_TYPE[r.event_type],
            "status_code": status,
            "credit_code": snap.uscc,
            "entity_name": snap.name,
            "entity_type": ENTITY_TYPE.get(snap.uscc[:2], "other"),
            "legal_person": snap.legal_rep.name,
            "lp_cert_no": snap.legal_rep.id_number,
            "lp_mobile": snap.legal_rep.phone,
            "reg_address": snap.address,
            "address_area_code": snap.stated_division or None,
            "scope_json": [item for item in snap.scope.split("；") if item],
            "reg_capital_yuan": Decimal(snap.capital_wan) * 10000,
            "service_modes": ",".join(MODES[f] for f in snap.service_forms) or None,
            "nursery_places": snap.capacity,
            "established_date": self.founded.get(r.record_id, r.event_date).isoformat(),
            "approve_date": r.event_date.isoformat(),
            "change_items": [
                {"item": ITEMS.get(f, f), "before": old, "after": new} for f, old, new in r.changed
            ]
            or None,
            "from_area_code": r.moved_from if moved else None,
            "to_area_code": r.moved_to if moved else None,
            "update_time": stamp(r.surfaced_at),
        }

    @property
    def location(self) -> str:
        """The database URL a reader is pointed at (``REGSYNC_SOURCES__SHENPI_URL``)."""
        return self.url

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()
