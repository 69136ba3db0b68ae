"""编制 (机构编制部门) simulator: a 事业单位登记管理 database, in SQL, shaped like the county systems.

Such systems keep one row per unit, updated in place, and copy the whole row into a history table on
every 登记 (设立/变更/注销/撤销), with the 变更事项 in a child table. The connector reads the history
table, so every version becomes an event even when several land between two runs. SQLAlchemy Core
only, so the same code runs on the embedded SQLite default and on PostgreSQL.

Tables
  ``sydw_djxx``  事业单位登记信息 — current state, one row per unit (PK ``jgid``)
  ``sydw_djls``  登记历史 — one row per version (PK ``jgid, bbh``); the feed the connector reads
  ``sydw_bgsx``  变更事项 — the items of a 变更 (PK ``jgid, bbh, xh``)

Column glossary (pinyin initials)
  jgid 机构ID (the source record id) · bbh 版本号 (1 = 设立, +1 per 登记) · tyshxydm 统一社会信用代码 ·
  jgmc 机构名称 · jglb 机构类别 (01 托育机构, 02 幼儿园（开设托班）, 03 托养机构, 09 其他) · zs 住所 ·
  zsxzqh 住所行政区划代码 · ywfw 宗旨和业务范围 · fddbr 法定代表人 · fddbrzjhm 法定代表人证件号码 (full:
  this is the source) · lxdh 联系电话 · kbzj 开办资金 (万元, NUMERIC 18,2) · fwxs 服务形式 (全日托、半日托…) ·
  tws 托位数 · djrq 设立登记日期 and hzrq 核准日期 of this version (CHAR(8) ``YYYYMMDD``) · bglx 登记类型
  (01 设立登记, 02 变更登记, 03 注销登记, 04 撤销登记/吊销证书) · djzt 登记状态 (1 正常, 2 注销, 3 撤销) ·
  scbz 删除标志 ('0'/'1') · gxsj 更新时间 (TIMESTAMP, second precision, Beijing time) ·
  xh 序号, bgsx 变更事项, bgqnr 变更前内容, bghnr 变更后内容 (in ``sydw_bgsx``).

Quirks rendered on purpose
* 注销 is a logical delete, ``scbz='1'``. A unit 注销'd through the 删除 function (about a third,
  fixed per record) keeps the previous version's ``bglx`` in its history copy: only ``scbz`` says 注销.
* ``gxsj`` is stamped by the hourly 数据归集 job with the hour the change surfaced (10:00:00), so many
  rows share a value, and a row surfacing later in the hour arrives with the *same* ``gxsj`` as rows
  already read: the tie case of the connector's high-water mark.
* A unit the world also reports through 教育 (it opens a 托班) is registered here as a kindergarten
  (jglb 02, its 幼儿园 name, scope 学前教育；托班); the others as 托育 centres (jglb 01).
* Look-alikes (托养/托管 事业单位, jglb 03/09) sit beside them, ground truth ``childcare: false``.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from schemas.events import EventType, Registrar, ServiceForm
from simulators.base import Simulator
from simulators.world import Fault, Snapshot, SourceRecord, World, lookalike_records

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

METADATA = sa.MetaData()


def _unit_columns() -> list[sa.Column[Any]]:
    """The registration columns shared by the current table and its history copy."""
    return [
        sa.Column("tyshxydm", sa.String(18)),
        sa.Column("jgmc", sa.String(200)),
        sa.Column("jglb", sa.CHAR(2), nullable=False),
        sa.Column("zs", sa.String(300)),
        sa.Column("zsxzqh", sa.CHAR(6)),
        sa.Column("ywfw", sa.Text),
        sa.Column("fddbr", sa.String(50)),
        sa.Column("fddbrzjhm", sa.String(18)),
        sa.Column("lxdh", sa.String(20)),
        sa.Column("kbzj", sa.Numeric(18, 2)),
        sa.Column("fwxs", sa.String(50)),
        sa.Column("tws", sa.Integer),
        sa.Column("djrq", sa.CHAR(8)),
        sa.Column("hzrq", sa.CHAR(8)),
        sa.Column("bglx", sa.CHAR(2), nullable=False),
        sa.Column("djzt", sa.CHAR(1), nullable=False),
        sa.Column("scbz", sa.CHAR(1), nullable=False, server_default="0"),
        sa.Column("gxsj", sa.DateTime, nullable=False),
    ]


DJXX = sa.Table(
    "sydw_djxx",
    METADATA,
    sa.Column("jgid", sa.String(20), primary_key=True),
    sa.Column("bbh", sa.Integer, nullable=False),
    *_unit_columns(),
)
DJLS = sa.Table(
    "sydw_djls",
    METADATA,
    sa.Column("jgid", sa.String(20), primary_key=True),
    sa.Column("bbh", sa.Integer, primary_key=True),
    *_unit_columns(),
    sa.Index("ix_sydw_djls_gxsj", "gxsj", "jgid", "bbh"),
)
BGSX = sa.Table(
    "sydw_bgsx",
    METADATA,
    sa.Column("jgid", sa.String(20), primary_key=True),
    sa.Column("bbh", sa.Integer, primary_key=True),
    sa.Column("xh", sa.Integer, primary_key=True),
    sa.Column("bgsx", sa.String(50), nullable=False),
    sa.Column("bgqnr", sa.Text),
    sa.Column("bghnr", sa.Text),
)

BGLX = {
    EventType.ESTABLISHED: "01",
    EventType.CHANGED: "02",
    EventType.DEREGISTERED: "03",
    EventType.REVOKED: "04",
}
DJZT = {"ACTIVE": "1", "DEREGISTERED": "2", "REVOKED": "3"}
ITEM_ZH = {
    "legal_representative.name": "法定代表人",
    "name": "机构名称",
    "address": "住所",
    "business_scope": "宗旨和业务范围",
    "registered_capital": "开办资金",
}
LOOKALIKES = (
    ("残疾人托养中心", "残疾人托养服务；康复训练", "12"),
    ("青少年学生托管中心", "课后托管服务；学生午托", "12"),
)


def gxsj_of(surfaced_at: datetime) -> datetime:
    """The hourly 数据归集 stamp: the Beijing-time hour in which a change surfaced, naive, to the second."""
    local = surfaced_at.astimezone(BEIJING)
    return local.replace(minute=0, second=0, microsecond=0, tzinfo=None)


class BianzhiDb(Simulator):
    """The 编制 system as a SQL database (SQLite file under ``root`` unless ``url`` is given)."""

    registrar = Registrar.BIANZHI

    def __init__(self, world: World, root: Path, url: str | None = None) -> None:
        super().__init__(world, root)
        self.url = url or f"sqlite:///{(self.root / 'bianzhi.sqlite3').as_posix()}"
        self.engine = sa.create_engine(self.url)
        METADATA.create_all(self.engine)
        self.extra = lookalike_records(world, self.registrar, LOOKALIKES, "BZL")
        self.kindergartens: dict[str, Snapshot] = {
            r.entity_key: r.snapshot for r in world.records if r.registrar is Registrar.JIAOYU
        }
        self.founded = {r.record_id: r.event_date for r in (*world.records, *self.extra) if r.version == 1}
        with self.engine.connect() as conn:  # a restarted simulator must not write versions twice
            self.published.update(
                (jgid, bbh) for jgid, bbh in conn.execute(sa.select(DJLS.c.jgid, DJLS.c.bbh))
            )

    def pending(self, as_of: datetime) -> list[SourceRecord]:
        """The world's record versions plus this system's look-alikes, in surfacing order."""
        extra = [
            r for r in self.extra if r.surfaced_at <= as_of and (r.record_id, r.version) not in self.published
        ]
        return sorted(
            [*super().pending(as_of), *extra], key=lambda r: (r.surfaced_at, r.record_id, r.version)
        )

    def _write(self, records: list[SourceRecord], as_of: datetime) -> None:
        rows = [self._row(r) for r in records]
        items = [
            {
                "jgid": r.record_id,
                "bbh": r.version,
                "xh": i,
                "bgsx": ITEM_ZH.get(f, f),
                "bgqnr": old,
                "bghnr": new,
            }
            for r in records
            for i, (f, old, new) in enumerate(r.changed, start=1)
        ]
        latest = {row["jgid"]: row for row in rows}  # in surfacing order, so the last version wins
        with self.engine.begin() as conn:
            conn.execute(DJLS.insert(), rows)
            if items:
                conn.execute(BGSX.insert(), items)
            ids = list(latest)
            for start in range(0, len(ids), 500):  # "update in place": replace the current rows
                conn.execute(DJXX.delete().where(DJXX.c.jgid.in_(ids[start : start + 500])))
            conn.execute(DJXX.insert(), list(latest.values()))

    def _row(self, r: SourceRecord) -> dict[str, Any]:
        """One version as the 编制 system stores it."""
        snap = r.snapshot
        name, scope, jglb = snap.name, snap.scope, "01"
        kindergarten = self.kindergartens.get(r.entity_key)
        if Fault.LOOKALIKE in r.faults:
            jglb = "03" if "托养" in scope else "09"
        elif kindergarten is not None:
            name, scope, jglb = kindergarten.name if snap.name else "", kindergarten.scope, "02"
        bglx = BGLX[r.event_type]
        deleted = r.event_type is EventType.DEREGISTERED
        if deleted and zlib.crc32(r.record_id.encode()) % 3 == 0:
            bglx = "01" if r.version == 2 else "02"  # 注销 via 删除: the copy keeps the previous code
        return {
            "jgid": r.record_id,
            "bbh": r.version,
            "tyshxydm": snap.uscc,
            "jgmc": name or None,
            "jglb": jglb,
            "zs": snap.address or None,
            "zsxzqh": snap.stated_division or None,
            "ywfw": scope,
            "fddbr": snap.legal_rep.name,
            "fddbrzjhm": snap.legal_rep.id_number,
            "lxdh": snap.legal_rep.phone,
            "kbzj": Decimal(snap.capital_wan),
            "fwxs": "、".join(ServiceForm(f).label_zh for f in snap.service_forms) or None,
            "tws": snap.capacity,
            "djrq": f"{self.founded.get(r.record_id, r.event_date):%Y%m%d}",
            "hzrq": f"{r.event_date:%Y%m%d}",
            "bglx": bglx,
            "djzt": DJZT[snap.status],
            "scbz": "1" if deleted else "0",
            "gxsj": gxsj_of(r.surfaced_at),
        }

    @property
    def location(self) -> str:
        """The database URL a reader is pointed at (``REGSYNC_SOURCES__BIANZHI_URL``)."""
        return self.url

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()
