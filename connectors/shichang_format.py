"""The 市场监管 exchange's file format, as the connector reads it: columns, codes, markers, line checks.

Split from :mod:`connectors.shichang` to keep each file short; the simulator declares the same
format on its own (:mod:`simulators.shichang_files`), so the two are compared, never shared.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Final

from connectors.base import REGISTRAR_TIME
from schemas import childcare
from schemas import events as ev

ENCODING: Final = "gb18030"
FILE_NAME: Final = re.compile(r"^SCJG_(\d{8})(?:_\w+)?\.csv$")
MARKER_SUFFIX: Final = ".ok"
CANDIDATE_MARKS: Final = ("托", "婴", "岁", "乳儿", *childcare.CHILDCARE_INDUSTRY_CODES)
"""Every include keyword of the classifier contains one of these (a unit test keeps it so)."""
_COLUMN_TABLE = """
record_id  记录编号            JLBH        version      版本号              BBH
uscc       统一社会信用代码    TYSHXYDM    name         主体名称            ZTMC
entity_type 主体类型           ZTLX        address      住所                ZS
division   住所行政区划代码    ZSXZQHDM    scope        经营范围            JYFW
industry   行业代码            HYDM        rep_name     法定代表人          FDDBR
rep_id     法定代表人证件号码  FDDBRZJHM   rep_phone    联系电话            LXDH
capital    注册资本（万元）    ZCZB        change_code  变更类型代码        BGLXDM
change_item 变更事项           BGSX        before       变更前内容          BGQNR
after      变更后内容          BGHNR       moved_from   迁出地行政区划代码  QCDXZQHDM
moved_to   迁入地行政区划代码  QRDXZQHDM   approved     核准日期            HZRQ
"""
COLUMNS: Final = {key: (zh, py) for key, zh, py in zip(*[iter(_COLUMN_TABLE.split())] * 3, strict=True)}
"""The columns, in file order: our key → (Chinese header, pinyin-initials header); either header is read."""
CHANGE_CODES: Final = {
    "01": (ev.EventType.ESTABLISHED, ev.InstitutionStatus.ACTIVE),
    "02": (ev.EventType.CHANGED, ev.InstitutionStatus.ACTIVE),
    "03": (ev.EventType.DEREGISTERED, ev.InstitutionStatus.DEREGISTERED),
    "04": (ev.EventType.REVOKED, ev.InstitutionStatus.REVOKED),
    "05": (ev.EventType.MOVED_IN, ev.InstitutionStatus.ACTIVE),
    "06": (ev.EventType.MOVED_OUT, ev.InstitutionStatus.MOVED_OUT),
}
CHANGE_FIELDS: Final = {
    "经营范围": "business_scope",
    "法定代表人": "legal_representative.name",
    "住所": "address",
}
LEGAL_FORMS: Final = {"企业": ev.LegalForm.ENTERPRISE, "个体工商户": ev.LegalForm.INDIVIDUAL_BUSINESS}


def read_marker(path: Path) -> dict[str, str]:
    """The ``.ok`` marker's ``key=value`` lines; empty when there is none."""
    try:
        text = path.with_name(path.name + MARKER_SUFFIX).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in text.splitlines()) if v}


def created_after(path: Path, as_of: datetime) -> bool:
    """Whether the marker says the exchange produced the file after ``as_of`` (unreadable: it did not)."""
    try:
        created = datetime.fromisoformat(read_marker(path).get("created", ""))
    except ValueError:
        return False
    return created.tzinfo is not None and created > as_of


def due(name: str) -> datetime:
    """When the exchange produces a day file: 02:00 Beijing time the day after (a bad name: at once)."""
    match = FILE_NAME.match(name)
    if match is None:
        return datetime.min.replace(tzinfo=REGISTRAR_TIME)
    day = datetime.strptime(match.group(1), "%Y%m%d").date()
    return datetime.combine(day + timedelta(days=1), time(2, 0), tzinfo=REGISTRAR_TIME)


def suspect(line: str, width: int) -> bool:
    r"""A line the pre-filter must not skip unread: undecodable bytes, or fewer separators than columns.

    Corrupted keywords (``\ufffd``) or a row cut before the name would otherwise hold none of the
    marks and be counted "not childcare" without anyone reading it (issue 13 item 8).
    """
    return "\ufffd" in line or line.count(",") < width - 1


def row_for_dlq(names: list[str], line: str) -> dict[str, str] | str:
    """The row for the DLQ keyed by its header when it parses, else the line itself (masked later)."""
    try:
        return dict(zip(names, next(csv.reader([line])), strict=False))
    except csv.Error:
        return line


def record_id_of(data: dict[str, str] | str, cursor: str) -> str:
    """The row's 记录编号 when it parsed, else its place in the file."""
    if isinstance(data, dict):
        return next((data[h].strip() for h in COLUMNS["record_id"] if data.get(h)), cursor)
    return cursor


def is_candidate(text: str) -> bool:
    """Could this line hold a childcare row? A chain of ``in`` tests: ~2x faster than one regex."""
    return "托" in text or "婴" in text or "岁" in text or "乳儿" in text or "8020" in text


@lru_cache(maxsize=4096)
def scope_verdict(scope: str) -> childcare.ChildcareVerdict:
    """The classifier's verdict on a scope alone (cached: scope wording repeats across entities)."""
    return childcare.classify(scope)


def row_is_childcare(scope: str, name: str, industry: str) -> bool:
    """Same answer as ``classify(scope, name, industry).is_childcare``, usually from the cache."""
    rule = scope_verdict(scope).rule
    if rule == "include":
        return True  # a strong include wins over any exclusion in the name
    code = re.sub(r"\D", "", industry)
    if (
        rule in ("no_include", "excluded")
        and not is_candidate(name)
        and code not in childcare.CHILDCARE_INDUSTRY_CODES
    ):
        return False  # no include anywhere: the name holds none of the marks, nor is the industry 8020
    return childcare.classify(scope, name, industry_code=industry).is_childcare
