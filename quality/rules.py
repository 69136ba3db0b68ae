"""The rule catalog: every quality rule the pipeline applies, as data, in one place.

Why a catalog and not rules scattered through the gate: auditors, the DLQ, the monthly report and the
Great Expectations suites all key on the same stable ids, and they must read the same bilingual
description and severity. A rule's id is a contract — a rejected record in Kafka carries it forever —
so ids are never renamed or reused; retire a rule by leaving it here with a note.

Severity semantics (``schemas.events.Severity``): ``REJECT`` sends the record to
``registrations.rejected``; ``WARN`` keeps it on ``registrations.valid`` with the finding attached in
``quality_warnings``. ``scope`` says who evaluates a rule: ``record`` rules run in the gate
(:mod:`quality.record_checks`), ``batch`` rules over a gate batch or a month in Great Expectations.

Decisions on ambiguous points (docs/domain.md marks the registrar table as [V] for the registrars but not
for every entity-type code; see :data:`REGISTRAR_PREFIXES`):

* 编制 registers childcare only as 事业单位 (``12``). ``11`` 机关, ``13`` 群众团体 and ``19`` 其他 are also
  编制 codes but not entity types that may run a childcare institution, so they are a mismatch.
* 民政 registers childcare only as 社会服务机构/民办非企业单位 (``52``, 国卫办人口发〔2019〕25号 Art. 4).
  ``51`` 社会团体 and ``53`` 基金会 are 民政 codes but may not run a 托育机构 themselves: mismatch.
* 市场监管: ``91`` 企业 and ``92`` 个体工商户 (家庭托育点). ``93`` 农民专业合作社 is excluded: a cooperative
  serves its members' agricultural business, and no seed document shows one registered for 托育.
* 行政审批 takes over whatever entity types the province moved to it: ``91``, ``92``, ``52``.
* 教育 reports kindergartens opening 托班: public (``12``), private non-profit (``52``) or enterprise (``91``).

Every limit docs/domain.md marks [U] or "keep configurable" is a :class:`quality.record_checks.GateConfig`
field, never a constant here; the defaults below are just the documented starting points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal

from schemas.events import Registrar, RuleViolation, Severity
from schemas.month import DEFAULT_TIMEZONE as _DEFAULT_TIMEZONE

__all__ = [
    "BATCH_RULES",
    "CATALOG",
    "DEFAULT_CAPITAL_MAX_WAN",
    "DEFAULT_FAMILY_CARE_CAPACITY",
    "DEFAULT_MIN_COUNTY_CONFIDENCE",
    "DEFAULT_TIMEZONE",
    "RECORD_RULES",
    "REGISTRAR_PREFIXES",
    "Rule",
    "RuleScope",
    "rule",
]

RuleScope = Literal["record", "batch"]

REJECT, WARN = Severity.REJECT, Severity.WARN


@dataclass(frozen=True, slots=True)
class Rule:
    """One catalog entry; ``field`` is the event field path the rule checks (``None``: the whole record)."""

    id: str
    severity: Severity
    field: str | None
    description_zh: str
    description_en: str
    scope: RuleScope = "record"

    def violation(self, message_zh: str, message_en: str, field: str | None = None) -> RuleViolation:
        """A finding of this rule, so severity and field always come from the catalog, never the caller."""
        return RuleViolation(self.id, self.severity, message_zh, message_en, field or self.field)


# --------------------------------------------------------------------------------------------------
# Configurable defaults (GateConfig starts from these)

DEFAULT_TIMEZONE: Final = _DEFAULT_TIMEZONE  # one definition: schemas.month
"""Month boundaries of the 登记当月 push rule are Beijing time, the registrars' own calendar."""

DEFAULT_FAMILY_CARE_CAPACITY: Final = 5
"""家庭托育点 (2023): at most 5 children [V], docs/domain.md; provinces may differ, hence configurable."""

DEFAULT_CAPITAL_MAX_WAN: Final = Decimal("100000")
"""Registered capital above 10亿元 (100,000 万元) is implausible for a 托育机构 and usually a unit error
(元 entered as 万元). A plausibility bound, not a legal one."""

DEFAULT_MIN_COUNTY_CONFIDENCE: Final = 0.5
"""Below this the county is "low" confidence: the connectors map the resolver's bands high/medium/low
to 0.95/0.7/0.4, so 0.5 flags exactly the ``low`` band (and unresolved methods, 0.0)."""

REGISTRAR_PREFIXES: Final[Mapping[Registrar, frozenset[str]]] = MappingProxyType(
    {
        Registrar.BIANZHI: frozenset({"12"}),
        Registrar.MINZHENG: frozenset({"52"}),
        Registrar.SHICHANG: frozenset({"91", "92"}),
        Registrar.SHENPI: frozenset({"91", "92", "52"}),
        Registrar.JIAOYU: frozenset({"12", "52", "91"}),
    }
)
"""USCC positions 1–2 each registrar may issue to a childcare institution (docs/domain.md table; the
module docstring explains what is left out and why). Override per deployment in ``GateConfig``."""


# --------------------------------------------------------------------------------------------------
# Record rules, in the order the gate evaluates and reports them

SCHEMA_INVALID = Rule(
    "SCHEMA_INVALID",
    REJECT,
    None,
    "载荷无法解码或不符合登记事件契约（Avro 模式）；由质量闸门在解码时直接判定。",
    "The payload cannot be decoded or does not match the RegistrationEvent contract (Avro schema); "
    "raised by the gate itself while decoding.",
)
SOURCE_UNREADABLE = Rule(
    "SOURCE_UNREADABLE",
    REJECT,
    None,
    "来源记录无法转换为登记事件（如日期或变更代码无法识别）；由连接器直接送入死信队列，原始记录随附。",
    "A source record could not become a registration event (e.g. unreadable date or change code); the "
    "connector sends it straight to the DLQ with the raw record attached.",
)
REQUIRED_FIELD = Rule(
    "REQUIRED_FIELD",
    REJECT,
    None,
    "必填字段为空：统一社会信用代码、机构名称、住所、登记日期、登记机关、事件类型、业务范围；消息注明字段。",
    "A required field is blank: USCC, name, address, event date, registrar, event type or business "
    "scope; the message names the field.",
)
FIELD_TOO_LONG = Rule(
    "FIELD_TOO_LONG",
    REJECT,
    None,
    "字段长度超过契约上限（schemas/limits.py，备案库按同一上限建列）；消息注明字段、长度与上限，不回显取值。"
    "如放行，该事件将在月度入库时失败并阻塞整月。",
    "A field is longer than its contract bound (schemas/limits.py; the filing store's columns use the same "
    "bounds); the message names the field, its length and the bound, never the value. Let through, the "
    "event would fail the monthly load and block the whole month.",
)
USCC_FORMAT = Rule(
    "USCC_FORMAT",
    REJECT,
    "institution.uscc",
    "统一社会信用代码格式错误：须为 18 位、仅含 GB 32100 字符集，登记管理部门代码有效，第 3–8 位为数字。",
    "The USCC is malformed: 18 characters from the GB 32100 alphabet, a known registrar code, digits "
    "in positions 3–8.",
)
USCC_CHECK_DIGIT = Rule(
    "USCC_CHECK_DIGIT",
    REJECT,
    "institution.uscc",
    "统一社会信用代码第 18 位校验码不符合 GB 32100。",
    "Position 18 of the USCC is not the GB 32100 check character.",
)
USCC_ORG_CHECK_DIGIT = Rule(
    "USCC_ORG_CHECK_DIGIT",
    REJECT,
    "institution.uscc",
    "统一社会信用代码内嵌的组织机构代码（第 9–17 位）校验码不符合 GB 11714。",
    "The organisation code embedded in the USCC (positions 9–17) fails its GB 11714 check character.",
)
USCC_LEGACY_PILOT = Rule(
    "USCC_LEGACY_PILOT",
    WARN,
    "institution.uscc",
    "已知的早期试点代码：校验不通过但确已发放、合法使用，予以接收并提示。",
    "A known early pilot code: it fails a check digit but was really issued and is legal; accepted "
    "with a warning.",
)
USCC_REGISTRAR_PREFIX = Rule(
    "USCC_REGISTRAR_PREFIX",
    REJECT,
    "institution.uscc",
    "统一社会信用代码前两位（登记管理部门+机构类别）与推送的登记机关不一致（编制→12，民政→52，"
    "市场监管→91/92，行政审批→91/92/52，教育→12/52/91）。",
    "USCC positions 1–2 (registrar + category) do not fit the pushing registrar (编制→12, 民政→52, "
    "市场监管→91/92, 行政审批→91/92/52, 教育→12/52/91).",
)
DIVISION_UNKNOWN = Rule(
    "DIVISION_UNKNOWN",
    REJECT,
    "institution.county_code",
    "无法确定机构所在县级区划（代码未知、非县级或地址无法解析），无法推送至任何县级卫生健康部门。",
    "No county could be resolved (unknown or non-county code, address not resolvable), so the record "
    "cannot be routed to any county health department.",
)
DIVISION_ABOLISHED_MAPPED = Rule(
    "DIVISION_ABOLISHED_MAPPED",
    WARN,
    "institution.county_code",
    "所在县区经区划变更历史映射得到（已撤销的代码或地址中的旧区划名称），按现行县区推送。",
    "The county was reached through the division change history (an abolished code, or an old division "
    "name in the address); routed to the current county.",
)
DIVISION_RESOLVED_AT_GATE = Rule(
    "DIVISION_RESOLVED_AT_GATE",
    WARN,
    "institution.county_code",
    "连接器未给出可推送的县区（为空、未知或非县级），质量闸门根据住所地址重新解析得到县区。",
    "The connector gave no routable county (empty, unknown or not county-level); the gate resolved it "
    "again from the address.",
)
DIVISION_LOW_CONFIDENCE = Rule(
    "DIVISION_LOW_CONFIDENCE",
    WARN,
    "institution.county_resolution",
    "县区解析置信度低（如仅有简称、来源代码与地址冲突），建议人工核对。",
    "The county was resolved with low confidence (a bare short name, a stated code conflicting with "
    "the address…); a person should check it.",
)
NOT_CHILDCARE = Rule(
    "NOT_CHILDCARE",
    REJECT,
    "institution.business_scope",
    "业务范围/名称未通过托育机构判定（须含托育、婴幼儿照护等，排除托管、托养、早教等）。"
    "注销、吊销、迁出及删除托育的经营范围变更事件不受此限。",
    "Scope and name fail the childcare test (托育, 婴幼儿照护…, excluding 托管, 托养, 早教…). Not applied "
    "to SCOPE_REMOVED_CHILDCARE, DEREGISTERED, REVOKED and MOVED_OUT, which may carry any scope.",
)
EVENT_DATE_FUTURE = Rule(
    "EVENT_DATE_FUTURE",
    REJECT,
    "event_date",
    "登记日期晚于抽取日期（按配置时区的日历日）。",
    "The event date is after the extraction date (calendar days in the configured timezone).",
)
LATE_PUSH = Rule(
    "LATE_PUSH",
    WARN,
    "extracted_at",
    "未在登记当月推送：抽取时间所在月份晚于登记日期所在月份（月界按配置时区，默认 Asia/Shanghai）。",
    "Not pushed within the month of registration: extracted in a later calendar month than the event "
    "date (month boundaries in the configured timezone, Asia/Shanghai by default).",
)
LEGAL_REP_ID_INVALID = Rule(
    "LEGAL_REP_ID_INVALID",
    WARN,
    "institution.legal_representative.id_number_masked",
    "法定代表人身份证号码未通过 GB 11643 校验（来源数据问题；消息仅显示脱敏号码）。",
    "The legal representative's resident ID failed the GB 11643 checks (a source data problem; "
    "messages show the masked number only).",
)
CHANGED_FIELDS_MISSING = Rule(
    "CHANGED_FIELDS_MISSING",
    WARN,
    "changed_fields",
    "变更事件未列出任何变更事项。",
    "A CHANGED event lists no changed fields.",
)
MOVE_JURISDICTION_MISSING = Rule(
    "MOVE_JURISDICTION_MISSING",
    REJECT,
    "jurisdiction",
    "迁入/迁出事件既无迁出地也无迁入地区划代码。",
    "A MOVED_IN/MOVED_OUT event carries neither the from nor the to county.",
)
FAMILY_CARE_CAPACITY = Rule(
    "FAMILY_CARE_CAPACITY",
    WARN,
    "institution.capacity",
    "家庭托育点托位数超过上限（2023 年规定不超过 5 人，可按省配置）。",
    "A 家庭托育点 (family childcare point) has more places than the limit (5 under the 2023 rule; "
    "configurable per province).",
)
CAPITAL_OUT_OF_RANGE = Rule(
    "CAPITAL_OUT_OF_RANGE",
    WARN,
    "institution.registered_capital",
    "注册资本（开办资金）为负数或超出合理上限（可配置，默认 10 亿元），常见原因是单位误填（元/万元）。",
    "Registered capital is negative or above a plausible bound (configurable, 10亿元 by default), "
    "often a unit error (元 vs 万元).",
)

# --------------------------------------------------------------------------------------------------
# Batch rules (Great Expectations over each gate batch and each month)

DUPLICATE_ACROSS_REGISTRARS = Rule(
    "DUPLICATE_ACROSS_REGISTRARS",
    WARN,
    "institution.uscc",
    "同一统一社会信用代码由两个登记机关推送了登记（如行政审批与市场监管同时推送）。教育部门的托班事件是对"
    "已登记主体的事件，不计为重复。",
    "The same USCC is pushed as a registration by two registrars (e.g. 行政审批 and 市场监管 both). "
    "教育 托班 events are events on an entity another registrar registered and do not count.",
    "batch",
)
VOLUME_ANOMALY = Rule(
    "VOLUME_ANOMALY",
    WARN,
    None,
    "某登记机关/县区的事件量相对历史同期异常（骤增或骤降）。",
    "A registrar's or county's event volume deviates abnormally from its history (spike or drop).",
    "batch",
)
TIMELINESS_SHARE = Rule(
    "TIMELINESS_SHARE",
    WARN,
    "extracted_at",
    "按登记机关和县区统计的当月推送率低于阈值（登记当月推送规则）。",
    "The share of registrations pushed within their registration month, per registrar and county, is "
    "below the threshold.",
    "batch",
)

CATALOG: Final[tuple[Rule, ...]] = (
    SOURCE_UNREADABLE,
    SCHEMA_INVALID,
    REQUIRED_FIELD,
    FIELD_TOO_LONG,
    USCC_FORMAT,
    USCC_CHECK_DIGIT,
    USCC_ORG_CHECK_DIGIT,
    USCC_LEGACY_PILOT,
    USCC_REGISTRAR_PREFIX,
    DIVISION_UNKNOWN,
    DIVISION_ABOLISHED_MAPPED,
    DIVISION_RESOLVED_AT_GATE,
    DIVISION_LOW_CONFIDENCE,
    NOT_CHILDCARE,
    EVENT_DATE_FUTURE,
    LATE_PUSH,
    LEGAL_REP_ID_INVALID,
    CHANGED_FIELDS_MISSING,
    MOVE_JURISDICTION_MISSING,
    FAMILY_CARE_CAPACITY,
    CAPITAL_OUT_OF_RANGE,
    DUPLICATE_ACROSS_REGISTRARS,
    VOLUME_ANOMALY,
    TIMELINESS_SHARE,
)
"""Every rule, record rules first in evaluation order, then batch rules."""

RECORD_RULES: Final = tuple(r for r in CATALOG if r.scope == "record")
BATCH_RULES: Final = tuple(r for r in CATALOG if r.scope == "batch")

_BY_ID: Final[Mapping[str, Rule]] = MappingProxyType({r.id: r for r in CATALOG})


def rule(rule_id: str) -> Rule:
    """The catalog entry for ``rule_id``; an unknown id is a programming error, so it raises KeyError."""
    try:
        return _BY_ID[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule id {rule_id!r}; the catalog has {', '.join(_BY_ID)}") from None
