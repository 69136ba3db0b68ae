"""Typed Python model of the Avro contracts (``RegistrationEvent``, ``RejectedRecord``).

Design choices, each kept because of a consumer we do not control:

* **Frozen, slotted dataclasses, not pydantic.** The gate handles more than 10k events/s; building these
  objects costs plain ``__init__`` calls (``from_avro`` of a full event measured ~7 µs, about a third of
  pydantic's ``model_validate`` on a simpler shape), while pydantic re-validates every nested field on
  every construction. Validation has better homes: the Avro codec rejects any value that does not fit
  the schema (naming the field), and the quality gate owns business rules. Frozen because an event is a
  fact — the gate derives a new one (:meth:`RegistrationEvent.with_warnings`) instead of mutating it.
* **Warnings live on the event** (``quality_warnings``, an array defaulting to ``[]``) rather than in a
  ``ValidRecord`` wrapper, so ``registrations.valid`` carries plain ``RegistrationEvent`` values and a
  health bureau's Kafka Connect reads raw and valid topics with one schema. On ``registrations.raw`` the
  array is empty.
* **Registered capital is an exact decimal in 万元** (Avro ``decimal`` on bytes, precision 18, scale 6,
  i.e. down to 0.01 元), with an ISO 4217 ``registered_capital_currency`` defaulting to ``CNY``. Registrars
  state capital in 万元; a float would round it and a free-text amount would push parsing onto every
  consumer. Kafka Connect maps the logical type to its ``Decimal``, so JDBC sinks get ``NUMERIC``.
* **``to_avro`` / ``from_avro`` speak fastavro's native values** (``date``, timezone-aware ``datetime``,
  ``Decimal``, enum symbols as ``str``), so the dict from :func:`fastavro.schemaless_reader` goes straight
  into :meth:`RegistrationEvent.from_avro`. ``extracted_at`` is carried at millisecond precision.
* The enums are ``StrEnum`` mirrors of the Avro enums with a Chinese label (``member.label_zh``); the
  unit tests compare them with the ``.avsc`` symbols.

Masking is not done here: connectors put already-masked values in the ``*_masked`` fields.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Self

EVENT_ID_NAMESPACE = uuid.UUID("6f0c1b8e-2d5a-5c3e-9a47-3b1e8d2f6c90")
"""Fixed (randomly chosen) UUIDv5 namespace of regsync event ids. Never change it: ids are idempotency keys."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class _LabelledEnum(StrEnum):
    """A ``StrEnum`` whose members also carry a Chinese label for reports and the CLI."""

    label_zh: str

    def __new__(cls, value: str, label_zh: str = "") -> Self:  # default: lets mypy see Registrar(value)
        member = str.__new__(cls, value)
        member._value_ = value
        member.label_zh = label_zh
        return member


class EventType(_LabelledEnum):
    """What happened to a registration (Avro enum ``regsync.events.EventType``)."""

    ESTABLISHED = "ESTABLISHED", "设立"
    CHANGED = "CHANGED", "变更"
    SCOPE_ADDED_CHILDCARE = "SCOPE_ADDED_CHILDCARE", "经营范围变更增加托育"
    SCOPE_REMOVED_CHILDCARE = "SCOPE_REMOVED_CHILDCARE", "经营范围变更删除托育"
    DEREGISTERED = "DEREGISTERED", "注销"
    REVOKED = "REVOKED", "吊销"
    MOVED_IN = "MOVED_IN", "迁入"
    MOVED_OUT = "MOVED_OUT", "迁出"
    CHILDCARE_CLASS_ADDED = "CHILDCARE_CLASS_ADDED", "教育部门托班开设"


class Registrar(_LabelledEnum):
    """The registrar whose system an event comes from (Avro enum ``regsync.events.Registrar``)."""

    BIANZHI = "BIANZHI", "机构编制部门"
    MINZHENG = "MINZHENG", "民政部门"
    SHICHANG = "SHICHANG", "市场监管部门"
    SHENPI = "SHENPI", "行政审批服务局"
    JIAOYU = "JIAOYU", "教育部门"


class LegalForm(_LabelledEnum):
    """Legal form of the entity (Avro enum ``regsync.events.LegalForm``)."""

    PUBLIC_INSTITUTION = "PUBLIC_INSTITUTION", "事业单位"
    PRIVATE_NON_ENTERPRISE = "PRIVATE_NON_ENTERPRISE", "民办非企业单位/社会服务机构"
    ENTERPRISE = "ENTERPRISE", "企业"
    INDIVIDUAL_BUSINESS = "INDIVIDUAL_BUSINESS", "个体工商户"
    SOCIAL_ORGANIZATION = "SOCIAL_ORGANIZATION", "社会团体"
    OTHER = "OTHER", "其他"


class ProfitNature(_LabelledEnum):
    """Non-profit or for-profit (Avro enum ``regsync.events.ProfitNature``)."""

    NON_PROFIT = "NON_PROFIT", "非营利性"
    FOR_PROFIT = "FOR_PROFIT", "营利性"
    UNKNOWN = "UNKNOWN", "未知"


class InstitutionStatus(_LabelledEnum):
    """Registration status after an event (Avro enum ``regsync.events.InstitutionStatus``)."""

    ACTIVE = "ACTIVE", "存续"
    DEREGISTERED = "DEREGISTERED", "注销"
    REVOKED = "REVOKED", "吊销"
    MOVED_OUT = "MOVED_OUT", "迁出"


class ServiceForm(_LabelledEnum):
    """Childcare service form (Avro enum ``regsync.events.ServiceForm``)."""

    FULL_DAY = "FULL_DAY", "全日托"
    HALF_DAY = "HALF_DAY", "半日托"
    HOURLY = "HOURLY", "计时托"
    TEMPORARY = "TEMPORARY", "临时托"


class CountyResolutionMethod(_LabelledEnum):
    """How ``county_code`` was found (Avro enum ``regsync.events.CountyResolutionMethod``)."""

    STATED = "STATED", "来源系统标注"
    ADDRESS = "ADDRESS", "地址解析"
    UNRESOLVED = "UNRESOLVED", "未解析"


class Severity(_LabelledEnum):
    """Severity of a quality finding (Avro enum ``regsync.events.Severity``)."""

    REJECT = "REJECT", "拒收"
    WARN = "WARN", "警告"


# Value -> member maps for from_avro: a dict lookup is ~4x cheaper than ``Enum.__call__``, and the Avro
# reader only ever yields symbols of the reader schema, which the unit tests keep equal to these enums.
_EVENT_TYPE: dict[str, EventType] = {m.value: m for m in EventType}
_REGISTRAR: dict[str, Registrar] = {m.value: m for m in Registrar}
_LEGAL_FORM: dict[str, LegalForm] = {m.value: m for m in LegalForm}
_PROFIT_NATURE: dict[str, ProfitNature] = {m.value: m for m in ProfitNature}
_STATUS: dict[str, InstitutionStatus] = {m.value: m for m in InstitutionStatus}
_SERVICE_FORM: dict[str, ServiceForm] = {m.value: m for m in ServiceForm}
_RESOLUTION: dict[str, CountyResolutionMethod] = {m.value: m for m in CountyResolutionMethod}
_SEVERITY: dict[str, Severity] = {m.value: m for m in Severity}


_LEGAL_REPRESENTATIVE = "regsync.events.LegalRepresentative"
_JURISDICTION_MOVE = "regsync.events.JurisdictionMove"
_REGISTRATION_EVENT = "regsync.events.RegistrationEvent"
WIRE_HINTS: Final = (_LEGAL_REPRESENTATIVE, _JURISDICTION_MOVE, _REGISTRATION_EVENT, "array", "bytes", "long")
"""Union branch names the ``to_wire`` dicts use: fastavro's tuple notation ``(branch name, value)``.

Every union of the contracts is ``["null", X]``, so the branch a hint names is the only one fastavro
could pick — the bytes are those of ``to_avro`` (a unit test compares them over the world's events).
A contract that renamed one of these records would fail the encode loudly ("provided union type name
… not found"), never write a different branch. Plain ``["null", "string"]`` unions are not hinted:
fastavro's check of a string is as cheap as the hint.
"""


def make_event_id(registrar: Registrar | str, source_record_id: str, source_version: str) -> str:
    """Deterministic event id: UUIDv5 of the registrar, source record id and source version.

    The three parts are joined as a JSON array, so no choice of ids can make two triples collide
    (``("a|b", "c")`` vs ``("a", "b|c")``). Re-extracting the same source row yields the same id.
    """
    name = json.dumps([str(registrar), source_record_id, source_version], ensure_ascii=False)
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def kafka_key(uscc: str) -> bytes:
    """Kafka message key of an institution's events: its USCC as UTF-8, so its events stay ordered."""
    return uscc.encode("utf-8")


@dataclass(frozen=True, slots=True)
class LegalRepresentative:
    """法定代表人 — personal data, carried masked only."""

    name: str
    id_number_masked: str | None = None
    id_valid: bool | None = None
    phone_masked: str | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {
            "name": self.name,
            "id_number_masked": self.id_number_masked,
            "id_valid": self.id_valid,
            "phone_masked": self.phone_masked,
        }

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        return cls(data["name"], data.get("id_number_masked"), data.get("id_valid"), data.get("phone_masked"))


@dataclass(frozen=True, slots=True)
class CountyResolution:
    """How the premises' county was resolved, and how sure the resolver is (0.0–1.0)."""

    method: CountyResolutionMethod
    confidence: float

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {"method": self.method, "confidence": self.confidence}

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        return cls(_RESOLUTION[data["method"]], data["confidence"])


UNRESOLVED = CountyResolution(CountyResolutionMethod.UNRESOLVED, 0.0)
"""The resolution of an institution whose county could not be determined."""


@dataclass(frozen=True, slots=True)
class Institution:
    """The institution as registered after an event."""

    uscc: str
    name: str
    legal_form: LegalForm
    profit_nature: ProfitNature
    address: str
    business_scope: str
    status: InstitutionStatus
    county_code: str | None = None
    county_resolution: CountyResolution = UNRESOLVED
    legal_representative: LegalRepresentative | None = None
    registered_capital: Decimal | None = None
    """In 万元 (10,000 units of ``registered_capital_currency``), at most 6 decimal places."""
    registered_capital_currency: str = "CNY"
    service_forms: tuple[ServiceForm, ...] | None = None
    capacity: int | None = None
    stated_division_code: str | None = None
    """The division code as the registrar stated it (contract v2), kept when ``county_code`` maps it forward."""
    industry_code: str | None = None
    """国民经济行业分类 code as the source carries it, e.g. ``8020`` (contract v2); ``None`` when absent."""

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        rep = self.legal_representative
        forms = self.service_forms
        return {
            "uscc": self.uscc,
            "name": self.name,
            "legal_form": self.legal_form,
            "profit_nature": self.profit_nature,
            "legal_representative": None if rep is None else rep.to_avro(),
            "address": self.address,
            "county_code": self.county_code,
            "county_resolution": self.county_resolution.to_avro(),
            "business_scope": self.business_scope,
            "registered_capital": self.registered_capital,
            "registered_capital_currency": self.registered_capital_currency,
            "status": self.status,
            "service_forms": None if forms is None else list(forms),
            "capacity": self.capacity,
            "stated_division_code": self.stated_division_code,
            "industry_code": self.industry_code,
        }

    def to_wire(self) -> dict[str, Any]:
        """:meth:`to_avro` with its union values naming their branch, for the codec (see :data:`WIRE_HINTS`)."""
        wire = self.to_avro()
        rep, forms, capital = wire["legal_representative"], wire["service_forms"], wire["registered_capital"]
        if rep is not None:
            wire["legal_representative"] = (_LEGAL_REPRESENTATIVE, rep)
        if forms is not None:
            wire["service_forms"] = ("array", forms)
        if capital is not None:
            wire["registered_capital"] = ("bytes", capital)
        return wire

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        rep = data.get("legal_representative")
        forms = data.get("service_forms")
        return cls(
            uscc=data["uscc"],
            name=data["name"],
            legal_form=_LEGAL_FORM[data["legal_form"]],
            profit_nature=_PROFIT_NATURE[data["profit_nature"]],
            address=data["address"],
            business_scope=data["business_scope"],
            status=_STATUS[data["status"]],
            county_code=data.get("county_code"),
            county_resolution=CountyResolution.from_avro(data["county_resolution"]),
            legal_representative=None if rep is None else LegalRepresentative.from_avro(rep),
            registered_capital=data.get("registered_capital"),
            registered_capital_currency=data.get("registered_capital_currency", "CNY"),
            service_forms=None if forms is None else tuple(map(_SERVICE_FORM.__getitem__, forms)),
            capacity=data.get("capacity"),
            stated_division_code=data.get("stated_division_code"),
            industry_code=data.get("industry_code"),
        )


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One item of a 变更 event; values are text (personal data already masked)."""

    field: str
    old: str | None = None
    new: str | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {"field": self.field, "old": self.old, "new": self.new}

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        return cls(data["field"], data.get("old"), data.get("new"))


@dataclass(frozen=True, slots=True)
class JurisdictionMove:
    """From/to counties of a 迁入/迁出 event; either may be unknown."""

    from_county_code: str | None = None
    to_county_code: str | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {"from_county_code": self.from_county_code, "to_county_code": self.to_county_code}

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        return cls(data.get("from_county_code"), data.get("to_county_code"))


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where an event came from, so an auditor can trace it to the source row."""

    source_system: str
    source_record_id: str
    source_version: str
    extracted_by: str
    cursor_value: str | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {
            "source_system": self.source_system,
            "source_record_id": self.source_record_id,
            "source_version": self.source_version,
            "cursor_value": self.cursor_value,
            "extracted_by": self.extracted_by,
        }

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        return cls(
            data["source_system"],
            data["source_record_id"],
            data["source_version"],
            data["extracted_by"],
            data.get("cursor_value"),
        )


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """One quality-rule finding: a warning on a valid event or a reason for rejection."""

    rule_id: str
    severity: Severity
    message_zh: str
    message_en: str
    field: str | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "field": self.field,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict."""
        return cls(
            data["rule_id"],
            _SEVERITY[data["severity"]],
            data["message_zh"],
            data["message_en"],
            data.get("field"),
        )


def utc_millis(moment: datetime) -> datetime:
    """``moment`` in UTC truncated to milliseconds — the precision Avro ``timestamp-millis`` keeps."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no timezone; pass an aware datetime")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


@dataclass(frozen=True, slots=True)
class RegistrationEvent:
    """One registration event of a childcare institution (value of registrations.raw / .valid)."""

    event_id: str
    event_type: EventType
    registrar: Registrar
    event_date: date
    extracted_at: datetime
    """Timezone-aware, millisecond precision; also the Kafka record timestamp."""
    institution: Institution
    lineage: Lineage
    changed_fields: tuple[FieldChange, ...] = ()
    jurisdiction: JurisdictionMove | None = None
    quality_warnings: tuple[RuleViolation, ...] = ()

    def __post_init__(self) -> None:
        # A naive datetime would be encoded as UTC but compare unequal after a round trip.
        if self.extracted_at.tzinfo is None:
            raise ValueError(f"event {self.event_id}: extracted_at must be timezone-aware")

    @classmethod
    def build(
        cls,
        *,
        event_type: EventType,
        registrar: Registrar,
        event_date: date,
        extracted_at: datetime,
        institution: Institution,
        lineage: Lineage,
        changed_fields: Iterable[FieldChange] = (),
        jurisdiction: JurisdictionMove | None = None,
    ) -> Self:
        """Make a new event, deriving ``event_id`` from the lineage and normalising ``extracted_at``."""
        return cls(
            event_id=make_event_id(registrar, lineage.source_record_id, lineage.source_version),
            event_type=event_type,
            registrar=registrar,
            event_date=event_date,
            extracted_at=utc_millis(extracted_at),
            institution=institution,
            lineage=lineage,
            changed_fields=tuple(changed_fields),
            jurisdiction=jurisdiction,
        )

    @property
    def kafka_key(self) -> bytes:
        """Kafka key: the USCC as UTF-8."""
        return self.institution.uscc.encode("utf-8")

    @property
    def kafka_timestamp_ms(self) -> int:
        """Kafka record timestamp: ``extracted_at`` in epoch milliseconds."""
        return (self.extracted_at - _EPOCH) // _ONE_MS

    def with_warnings(self, warnings: Sequence[RuleViolation]) -> RegistrationEvent:
        """A copy carrying the gate's warnings (replacing any already attached)."""
        return replace(self, quality_warnings=tuple(warnings))

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict for :class:`schemas.codec.AvroCodec`."""
        jurisdiction = self.jurisdiction
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "registrar": self.registrar,
            "event_date": self.event_date,
            "extracted_at": self.extracted_at,
            "institution": self.institution.to_avro(),
            "changed_fields": [change.to_avro() for change in self.changed_fields],
            "jurisdiction": None if jurisdiction is None else jurisdiction.to_avro(),
            "lineage": self.lineage.to_avro(),
            "quality_warnings": [warning.to_avro() for warning in self.quality_warnings],
        }

    def to_wire(self) -> dict[str, Any]:
        """:meth:`to_avro` as the codec writes it: union values name their branch (:data:`WIRE_HINTS`).

        Same bytes, less work: given a bare dict for ``["null", LegalRepresentative]`` fastavro
        validates the whole dict against the record branch before writing it; given
        ``(name, dict)`` it writes at once. Only for the codec — ``to_avro`` stays the plain mapping
        the JSON exports and the store read.
        """
        jurisdiction = self.jurisdiction
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "registrar": self.registrar,
            "event_date": self.event_date,
            "extracted_at": self.extracted_at,
            "institution": self.institution.to_wire(),
            "changed_fields": [change.to_avro() for change in self.changed_fields],
            "jurisdiction": None if jurisdiction is None else (_JURISDICTION_MOVE, jurisdiction.to_avro()),
            "lineage": self.lineage.to_avro(),
            "quality_warnings": [warning.to_avro() for warning in self.quality_warnings],
        }

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict (as fastavro decodes it)."""
        jurisdiction = data.get("jurisdiction")
        return cls(
            event_id=data["event_id"],
            event_type=_EVENT_TYPE[data["event_type"]],
            registrar=_REGISTRAR[data["registrar"]],
            event_date=data["event_date"],
            extracted_at=data["extracted_at"],
            institution=Institution.from_avro(data["institution"]),
            lineage=Lineage.from_avro(data["lineage"]),
            changed_fields=tuple(FieldChange.from_avro(c) for c in data.get("changed_fields", ())),
            jurisdiction=None if jurisdiction is None else JurisdictionMove.from_avro(jurisdiction),
            quality_warnings=tuple(RuleViolation.from_avro(w) for w in data.get("quality_warnings", ())),
        )


class ErrorStage(_LabelledEnum):
    """Where a rejection happened, named as Kafka Connect's DLQ names its stages (``__connect.errors.stage``)."""

    TASK_POLL = "TASK_POLL", "连接器读取来源记录"
    VALUE_CONVERTER = "VALUE_CONVERTER", "质量闸门解码"
    TRANSFORMATION = "TRANSFORMATION", "质量规则判定"


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """Where a rejected record was read, which run rejected it, and when.

    ``rejected_at`` is on the as-of clock — the push instant, equal to the Kafka record timestamp —
    so a month window cut by push time puts a rejection in the same month however late it was judged;
    ``judged_at`` is the wall clock, for operations only (contract v2; ``None`` in v1 records).
    """

    source_topic: str
    partition: int
    offset: int
    gate_run_id: str
    rejected_at: datetime
    judged_at: datetime | None = None
    stage: ErrorStage | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict."""
        return {
            "source_topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "gate_run_id": self.gate_run_id,
            "rejected_at": self.rejected_at,
            "judged_at": self.judged_at,
            "stage": None if self.stage is None else self.stage.value,
        }

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict; an unknown stage text (a newer writer) reads as ``None``."""
        stage = data.get("stage")
        return cls(
            data["source_topic"],
            data["partition"],
            data["offset"],
            data["gate_run_id"],
            data["rejected_at"],
            data.get("judged_at"),
            _STAGE.get(stage) if stage is not None else None,
        )


_STAGE: dict[str, ErrorStage] = {m.value: m for m in ErrorStage}


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """Dead-letter envelope (value of registrations.rejected).

    Exactly one of ``event`` (the value decoded) and ``raw_value`` (it could not be; ``decode_error``
    says why) is set.
    """

    error_context: ErrorContext
    violations: tuple[RuleViolation, ...] = ()
    event: RegistrationEvent | None = None
    raw_value: bytes | None = None
    decode_error: str | None = None

    def __post_init__(self) -> None:
        if (self.event is None) == (self.raw_value is None):
            raise ValueError("a RejectedRecord carries either the decoded event or the raw value, not both")

    @property
    def kafka_key(self) -> bytes | None:
        """Kafka key (the USCC) when the event was decoded; otherwise keep the source record's key."""
        return None if self.event is None else self.event.kafka_key

    def to_avro(self) -> dict[str, Any]:
        """Avro record dict for :class:`schemas.codec.AvroCodec`."""
        return {
            "event": None if self.event is None else self.event.to_avro(),
            "raw_value": self.raw_value,
            "decode_error": self.decode_error,
            "violations": [violation.to_avro() for violation in self.violations],
            "error_context": self.error_context.to_avro(),
        }

    def to_wire(self) -> dict[str, Any]:
        """:meth:`to_avro` as the codec writes it: union values name their branch (:data:`WIRE_HINTS`)."""
        wire = self.to_avro()
        if self.event is not None:
            wire["event"] = (_REGISTRATION_EVENT, self.event.to_wire())
        judged_at = wire["error_context"]["judged_at"]
        if judged_at is not None:
            wire["error_context"]["judged_at"] = ("long", judged_at)
        return wire

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> Self:
        """Build from an Avro record dict (as fastavro decodes it)."""
        event = data.get("event")
        return cls(
            error_context=ErrorContext.from_avro(data["error_context"]),
            violations=tuple(RuleViolation.from_avro(v) for v in data.get("violations", ())),
            event=None if event is None else RegistrationEvent.from_avro(event),
            raw_value=data.get("raw_value"),
            decode_error=data.get("decode_error"),
        )


def event_county(event: RegistrationEvent) -> str | None:
    """The county whose health bureau an event is pushed to: 迁出 → the old county, 迁入 → the new one."""
    move = event.jurisdiction
    if move is not None and event.event_type is EventType.MOVED_OUT and move.from_county_code:
        return move.from_county_code
    if move is not None and event.event_type is EventType.MOVED_IN and move.to_county_code:
        return move.to_county_code
    return event.institution.county_code
