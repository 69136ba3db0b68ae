"""The per-record gate: judge one :class:`~schemas.events.RegistrationEvent` against the record rules.

``evaluate`` returns a :class:`Verdict`: accepted iff no ``REJECT`` finding, every finding a
:class:`~schemas.events.RuleViolation` whose bilingual messages name the offending value (personal data
masked: never a full ID number), and the routing county the gate settled on. The rules themselves —
ids, severities, descriptions — live in :mod:`quality.rules`; this module only decides which fire.

Why the county is re-checked here although the connector already resolved it: the gate is the last
place a record can be fixed before a health bureau sees it, and the only place that sees every
connector. So:

* ``county_code`` current and county-level → kept; if the *address* reaches that county through an old
  division name (莱芜市莱城区 → 莱芜区), ``DIVISION_ABOLISHED_MAPPED`` warns (the connector's stated code
  may already have been mapped forward, so the address is the only trace left in the event).
* ``county_code`` abolished but mapped forward → ``DIVISION_ABOLISHED_MAPPED`` (warn) and the verdict
  carries the current code (:attr:`Verdict.county_code`) for the gate to publish. When the replaced code
  was the registrar's own (method ``STATED``) and the event does not yet say what the registrar stated,
  it is kept in ``institution.stated_division_code`` (contract v2), so the mapping never loses it.
* ``county_code`` missing, unknown, abolished without successor or not county-level → the gate
  re-resolves the premises address (``GateConfig.resolve_missing_county``, on by default). A hit is
  published with ``DIVISION_RESOLVED_AT_GATE`` (warn); a miss is ``DIVISION_UNKNOWN`` (reject). Re-resolving
  is what makes a DLQ replay useful after the division table is updated, and it costs nothing when the
  connector already did its job. The USCC's division digits are never used (docs/domain.md).

Speed: the gate must judge >10k events/s on one core. The expensive pure steps (USCC parse, division
check + address resolution, childcare classification) are memoised in bounded ``functools.lru_cache``
caches keyed by the strings they read, so memory stays flat however long a run is; violation objects
are immutable and shared between events. A scope with a strong include term is classified once per
distinct scope text, not once per institution name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

from quality import rules as R
from schemas import childcare, divisions, uscc
from schemas.divisions import AddressResolution, ChangeStep, CodeCheck, Confidence, DivisionStatus
from schemas.errors import RecordError
from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    Registrar,
    RegistrationEvent,
    RuleViolation,
    Severity,
)
from schemas.limits import STRING_LIMITS, TooLong
from schemas.masking import mask_resident_id, mask_text

__all__ = [
    "CHILDCARE_EXEMPT_EVENTS",
    "GateConfig",
    "RuleRejection",
    "Verdict",
    "clear_caches",
    "evaluate",
    "evaluate_avro",
    "evaluate_many",
    "evaluate_many_avro",
    "schema_violation",
]

CHILDCARE_EXEMPT_EVENTS: Final = frozenset(
    {EventType.SCOPE_REMOVED_CHILDCARE, EventType.DEREGISTERED, EventType.REVOKED, EventType.MOVED_OUT}
)
"""Events that end an institution's childcare life: the health bureau must hear of them, and the scope
they carry need not (or no longer) mention 托育, so ``NOT_CHILDCARE`` is not applied to them."""

ADDRESS_CONFIDENCE: Final[Mapping[Confidence, float]] = MappingProxyType(
    {Confidence.HIGH: 0.95, Confidence.MEDIUM: 0.7, Confidence.LOW: 0.4, Confidence.UNRESOLVED: 0.0}
)
"""The resolver's bands as the 0–1 figure the contract carries; the same mapping the connectors use."""

# Cache sizes: large enough for a month of one province's childcare events (tens of thousands),
# bounded so a province backfill cannot grow the process without limit.
_USCC_CACHE = 65_536
_DIVISION_CACHE = 65_536
_SCOPE_CACHE = 8_192
_SCOPE_NAME_CACHE = 32_768
_CODE_CACHE = 4_096  # division codes: a few thousand exist


# --------------------------------------------------------------------------------------------------
# Configuration and result


@dataclass(frozen=True)
class GateConfig:
    """Everything docs/domain.md says to keep configurable, validated at construction (fail fast).

    ``prefix_table`` replaces :data:`quality.rules.REGISTRAR_PREFIXES` wholesale and must name every
    registrar (e.g. ``{**REGISTRAR_PREFIXES, Registrar.SHICHANG: {"91", "92", "93"}}``).
    ``disabled_rules`` switches record rules off for a deployment (they are still in the catalog).
    """

    timezone: str = R.DEFAULT_TIMEZONE
    family_care_capacity: int = R.DEFAULT_FAMILY_CARE_CAPACITY
    capital_max_wan: Decimal = R.DEFAULT_CAPITAL_MAX_WAN
    min_county_confidence: float = R.DEFAULT_MIN_COUNTY_CONFIDENCE
    prefix_table: Mapping[Registrar, frozenset[str]] = field(
        default_factory=lambda: R.REGISTRAR_PREFIXES, hash=False
    )
    disabled_rules: frozenset[str] = frozenset()
    resolve_missing_county: bool = True

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ValueError, LookupError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"GateConfig.timezone: unknown time zone {self.timezone!r}") from exc
        if self.family_care_capacity < 0:
            raise ValueError(f"GateConfig.family_care_capacity must be >= 0, got {self.family_care_capacity}")
        capital = Decimal(self.capital_max_wan)
        if capital <= 0:
            raise ValueError(f"GateConfig.capital_max_wan must be > 0, got {self.capital_max_wan}")
        object.__setattr__(self, "capital_max_wan", capital)
        if not 0.0 <= self.min_county_confidence <= 1.0:
            raise ValueError(
                f"GateConfig.min_county_confidence must be within 0..1, got {self.min_county_confidence}"
            )
        object.__setattr__(self, "prefix_table", _normalise_prefixes(self.prefix_table))
        disabled = frozenset(self.disabled_rules)
        unknown = disabled - {r.id for r in R.RECORD_RULES}
        if unknown:
            raise ValueError(f"GateConfig.disabled_rules: not record rules of the catalog: {sorted(unknown)}")
        object.__setattr__(self, "disabled_rules", disabled)


_REGISTRAR_BY_VALUE: Final = {m.value: m for m in Registrar}
_EVENT_TYPE_BY_VALUE: Final = {m.value: m for m in EventType}


def _normalise_prefixes(table: Mapping[Any, Iterable[str]]) -> Mapping[Registrar, frozenset[str]]:
    out: dict[Registrar, frozenset[str]] = {}
    for key, prefixes in table.items():
        registrar = _REGISTRAR_BY_VALUE.get(str(key))
        if registrar is None:
            raise ValueError(f"GateConfig.prefix_table: unknown registrar {key!r}")
        values = frozenset(prefixes)
        bad = sorted(p for p in values if len(p) != 2 or any(ch not in uscc.ALPHABET for ch in p))
        if bad:
            raise ValueError(f"GateConfig.prefix_table[{registrar}]: not USCC positions 1-2: {bad}")
        out[registrar] = values
    missing = [r.value for r in Registrar if r not in out]
    if missing:
        raise ValueError(f"GateConfig.prefix_table: no entry for registrar(s) {missing}")
    return MappingProxyType(out)


class RuleRejection(RecordError):
    """A rejecting verdict as an error, so the DLQ can name it the way Kafka Connect names a failure.

    The gate does not raise it: it hands it to the DLQ header builder, which writes its class name and
    message into ``__connect.errors.exception.*``. The message lists the reject findings' English
    messages, which never show personal data unmasked.
    """

    def __init__(self, violations: Sequence[RuleViolation], *, key: str | None = None) -> None:
        rejections = [v for v in violations if v.severity is Severity.REJECT]
        self.rule_ids: tuple[str, ...] = tuple(sorted({v.rule_id for v in rejections}))
        self.violations = tuple(rejections)
        super().__init__("; ".join(f"{v.rule_id}: {v.message_en}" for v in rejections), key=key)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's judgement of one event.

    ``county_code``/``county_resolution`` are what the gate publishes: the event's own when they were
    fine, otherwise the mapped-forward or re-resolved county (``None`` when nothing routes).
    """

    accepted: bool
    violations: tuple[RuleViolation, ...]
    county_code: str | None = None
    county_resolution: CountyResolution | None = None

    @property
    def rejections(self) -> tuple[RuleViolation, ...]:
        """The findings that reject the record."""
        return tuple(v for v in self.violations if v.severity is Severity.REJECT)

    @property
    def warnings(self) -> tuple[RuleViolation, ...]:
        """The findings an accepted record carries on ``registrations.valid``."""
        return tuple(v for v in self.violations if v.severity is Severity.WARN)

    def error(self, key: str | None = None) -> RuleRejection:
        """The reject findings as one error (for the DLQ's exception headers)."""
        return RuleRejection(self.violations, key=key)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Distinct rule ids of all findings, in catalog order."""
        return tuple(dict.fromkeys(v.rule_id for v in self.violations))

    def apply(self, event: RegistrationEvent) -> RegistrationEvent:
        """The event to publish on ``registrations.valid``: corrected county, warnings attached.

        Raises ValueError for a rejected verdict: a rejected event goes to the DLQ unchanged.
        """
        if not self.accepted:
            raise ValueError(f"event {event.event_id} was rejected; only accepted events are published")
        inst = event.institution
        resolution = self.county_resolution or inst.county_resolution
        if self.county_code != inst.county_code or resolution != inst.county_resolution:
            stated = inst.stated_division_code
            if (
                stated is None
                and inst.county_code != self.county_code
                and inst.county_resolution.method is CountyResolutionMethod.STATED
            ):
                # The code the registrar stated is replaced by its current successor: keep what it said.
                stated = inst.county_code
            inst = replace(
                inst, county_code=self.county_code, county_resolution=resolution, stated_division_code=stated
            )
            event = replace(event, institution=inst)
        return event.with_warnings(self.warnings)

    def leaves_unchanged(self, data: Mapping[str, Any]) -> bool:
        """True if :meth:`apply` would publish the event of this Avro mapping exactly as it is.

        Accepted, no warning to attach and none attached already, county and resolution kept: then
        the gate can pass the raw record's bytes through instead of building, changing and encoding
        the model (issue 12). The same comparisons :meth:`apply` makes, on the mapping.
        """
        if not self.accepted or data.get("quality_warnings") or self.warnings:
            return False
        inst = data["institution"]
        if self.county_code != inst.get("county_code"):
            return False
        if self.county_resolution is None:
            return True
        own = inst["county_resolution"]
        return bool(
            self.county_resolution.method == own["method"]
            and self.county_resolution.confidence == own["confidence"]
        )


DEFAULT_CONFIG: Final = GateConfig()


def evaluate(event: RegistrationEvent, *, config: GateConfig = DEFAULT_CONFIG) -> Verdict:
    """Judge one event against every enabled record rule."""
    return _gate_for(config).evaluate(event)


def evaluate_many(events: Sequence[RegistrationEvent], config: GateConfig = DEFAULT_CONFIG) -> list[Verdict]:
    """Judge a batch of typed events; one verdict per event, in order."""
    judge = _gate_for(config).evaluate
    return [judge(event) for event in events]


def evaluate_avro(data: Mapping[str, Any], *, config: GateConfig = DEFAULT_CONFIG) -> Verdict:
    """Judge one event's Avro mapping (what the codec decodes); same verdict as :func:`evaluate`."""
    return _gate_for(config).evaluate_avro(data)


def evaluate_many_avro(
    records: Sequence[Mapping[str, Any]], config: GateConfig = DEFAULT_CONFIG
) -> list[Verdict]:
    """Judge a batch of decoded events (the gate's poll) without building the typed model."""
    judge = _gate_for(config).evaluate_avro
    return [judge(record) for record in records]


def schema_violation(detail: str) -> RuleViolation:
    """``SCHEMA_INVALID`` for a payload the gate could not decode; ``detail`` is masked (it may echo data)."""
    shown = _show(detail, 200)
    return R.SCHEMA_INVALID.violation(
        f"载荷无法按登记事件契约解码：{shown}", f"payload cannot be decoded as a RegistrationEvent: {shown}"
    )


def clear_caches() -> None:
    """Drop every memoised result (tests, or after the division tables are swapped in a long process)."""
    for cached in (
        _uscc_facts,
        _division_outcome,
        _code_check,
        _scope_verdict,
        _scope_name_verdict,
        _resolution_of,
        _gate_for,
    ):
        cached.cache_clear()


# --------------------------------------------------------------------------------------------------
# The evaluator


@lru_cache(maxsize=16)
def _gate_for(config: GateConfig) -> _Gate:
    return _Gate(config)


_REQUIRED: Final = (
    ("institution.uscc", "统一社会信用代码", "USCC"),
    ("institution.name", "机构名称", "institution name"),
    ("institution.address", "住所", "address"),
    ("event_date", "登记日期", "event date"),
    ("registrar", "登记机关", "registrar"),
    ("event_type", "事件类型", "event type"),
    ("institution.business_scope", "业务范围", "business scope"),
)
_REQUIRED_VIOLATION: Final = {
    path: R.REQUIRED_FIELD.violation(
        f"必填字段「{zh}」（{path}）为空", f"required field {path} ({en}) is blank", path
    )
    for path, zh, en in _REQUIRED
}


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and (not value or value.isspace()))


class _Gate:
    """A :class:`GateConfig` compiled for speed: zone object, prefix sets, per-gate timestamp cache."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self.prefixes = dict(config.prefix_table)
        self.disabled = config.disabled_rules
        self.local_date = lru_cache(maxsize=4_096)(self._local_date)

    def _local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def evaluate(self, event: RegistrationEvent) -> Verdict:
        """Judge a typed event: the same rules as :meth:`evaluate_avro`, on its Avro mapping."""
        return self.evaluate_avro(event.to_avro())

    def evaluate_avro(self, data: Mapping[str, Any]) -> Verdict:
        """Judge an event's Avro mapping — as fastavro decodes it, or as ``to_avro`` builds it.

        The one implementation of the record rules. Why a mapping and not the typed model: the gate
        decodes a mapping, and building the model (``from_avro``) cost more than the rules themselves
        (issue 12); the model is now built only for the records the gate changes or rejects.
        Enum fields may be plain strings or the enum members (a ``StrEnum`` equals its value).
        """
        inst = data["institution"]
        found: list[RuleViolation] = []

        # REQUIRED_FIELD — one finding per blank field, each naming it (inlined: this runs per event).
        code, name, address, scope = inst["uscc"], inst["name"], inst["address"], inst["business_scope"]
        event_date: date | None = data["event_date"]
        registrar = _REGISTRAR_BY_VALUE.get(data["registrar"])
        event_type = _EVENT_TYPE_BY_VALUE.get(data["event_type"])
        if not code or code.isspace():
            found.append(_REQUIRED_VIOLATION["institution.uscc"])
        if not name or name.isspace():
            found.append(_REQUIRED_VIOLATION["institution.name"])
        if not address or address.isspace():
            found.append(_REQUIRED_VIOLATION["institution.address"])
        if event_date is None:
            found.append(_REQUIRED_VIOLATION["event_date"])
        if registrar is None:
            found.append(_REQUIRED_VIOLATION["registrar"])
        if event_type is None:
            found.append(_REQUIRED_VIOLATION["event_type"])
        if not scope or scope.isspace():
            found.append(_REQUIRED_VIOLATION["institution.business_scope"])

        # FIELD_TOO_LONG — what the gate lets through, the filing store must hold (schemas/limits.py).
        for over in _too_long_avro(data):
            found.append(_too_long(over))

        # USCC_* and USCC_REGISTRAR_PREFIX
        if code and not code.isspace():
            prefix, uscc_found = _uscc_facts(code)
            if uscc_found:
                found.extend(uscc_found)
            if prefix is not None and registrar is not None and prefix not in self.prefixes[registrar]:
                found.append(self._prefix_violation(code, prefix, registrar))

        # DIVISION_*
        outcome = _division_outcome(
            inst.get("county_code"), address or "", self.config.resolve_missing_county
        )
        found.extend(outcome.violations)
        county_code = outcome.county_code
        resolution = outcome.resolution or _resolution(inst["county_resolution"])
        if county_code is not None and resolution.confidence < self.config.min_county_confidence:
            found.append(self._low_confidence(county_code, resolution))

        # NOT_CHILDCARE
        if event_type not in CHILDCARE_EXEMPT_EVENTS:
            verdict = _childcare(scope or "", name or "")
            if not verdict.is_childcare:
                found.append(_not_childcare(scope or "", name or "", verdict))

        # EVENT_DATE_FUTURE / LATE_PUSH (mutually exclusive)
        if event_date is not None:
            extracted_at: datetime = data["extracted_at"]
            pushed = self.local_date(extracted_at)
            if event_date > pushed:
                found.append(self._future(event_date, pushed))
            elif (event_date.year, event_date.month) < (pushed.year, pushed.month):
                found.append(self._late(event_date, extracted_at, pushed))

        # The rest are cheap lookups.
        rep = inst.get("legal_representative")
        if rep is not None and rep.get("id_valid") is False:
            found.append(_bad_id(rep.get("id_number_masked")))
        if event_type is EventType.CHANGED and not data.get("changed_fields"):
            found.append(_NO_CHANGES)
        if event_type is EventType.MOVED_IN or event_type is EventType.MOVED_OUT:
            move = data.get("jurisdiction")
            if move is None or (_blank(move.get("from_county_code")) and _blank(move.get("to_county_code"))):
                found.append(_no_move(event_type))
        capacity = inst.get("capacity")
        if capacity is not None and capacity > self.config.family_care_capacity and _is_family(scope, name):
            found.append(self._family(capacity))
        capital = inst.get("registered_capital")
        if capital is not None and (capital < 0 or capital > self.config.capital_max_wan):
            found.append(self._capital(capital, inst.get("registered_capital_currency", "CNY")))

        if self.disabled:
            found = [v for v in found if v.rule_id not in self.disabled]
        accepted = not any(v.severity is Severity.REJECT for v in found)
        return Verdict(accepted, tuple(found), county_code, resolution)

    # messages that depend on the configuration ----------------------------------------------------
    def _prefix_violation(self, code: str, prefix: str, registrar: Registrar) -> RuleViolation:
        allowed = "/".join(sorted(self.prefixes[registrar])) or "—"
        kind = _prefix_name(prefix)
        return R.USCC_REGISTRAR_PREFIX.violation(
            f"统一社会信用代码 {code} 前两位为 {prefix}（{kind}），{registrar.label_zh}登记的托育机构应为 {allowed}",
            f"USCC {code} starts with {prefix} ({kind}); childcare institutions registered by "
            f"{registrar.value} ({registrar.label_zh}) start with {allowed}",
        )

    def _low_confidence(self, county_code: str, resolution: CountyResolution) -> RuleViolation:
        limit = self.config.min_county_confidence
        method = resolution.method
        return R.DIVISION_LOW_CONFIDENCE.violation(
            f"县区 {county_code} 的解析置信度 {resolution.confidence:.2f}（{method.label_zh}）低于 {limit:.2f}，请人工核对",
            f"county {county_code} was resolved with confidence {resolution.confidence:.2f} "
            f"({method.value}), below {limit:.2f}; please check it",
        )

    def _future(self, event_date: date, pushed: date) -> RuleViolation:
        zone = self.config.timezone
        return R.EVENT_DATE_FUTURE.violation(
            f"登记日期 {event_date.isoformat()} 晚于抽取日期 {pushed.isoformat()}（{zone}）",
            f"event_date {event_date.isoformat()} is after the extraction date {pushed.isoformat()} ({zone})",
        )

    def _late(self, event_date: date, extracted_at: datetime, pushed: date) -> RuleViolation:
        zone = self.config.timezone
        local = extracted_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
        months = (pushed.year - event_date.year) * 12 + pushed.month - event_date.month
        return R.LATE_PUSH.violation(
            f"登记日期 {event_date.isoformat()}，推送于 {local}（{zone}），晚于登记当月 {months} 个月",
            f"event_date {event_date.isoformat()} but extracted_at {local} ({zone}): pushed {months} "
            f"calendar month(s) after the registration month",
        )

    def _family(self, capacity: int) -> RuleViolation:
        limit = self.config.family_care_capacity
        return R.FAMILY_CARE_CAPACITY.violation(
            f"家庭托育点托位数 {capacity} 超过上限 {limit}",
            f"family childcare point capacity {capacity} exceeds {limit}",
        )

    def _capital(self, capital: Decimal, currency: str) -> RuleViolation:
        bound = self.config.capital_max_wan
        return R.CAPITAL_OUT_OF_RANGE.violation(
            f"注册资本 {capital} 万元（{currency}）不在 0–{bound} 万元范围内",
            f"registered_capital {capital} (10k {currency}) is outside 0..{bound}",
        )


# --------------------------------------------------------------------------------------------------
# USCC (memoised per code string)


@lru_cache(maxsize=_USCC_CACHE)
def _uscc_facts(value: str) -> tuple[str | None, tuple[RuleViolation, ...]]:
    """Positions 1–2 (``None`` when the code is malformed) and the USCC findings as violations."""
    result = uscc.parse(value)
    code = result.code
    found: list[RuleViolation] = []
    malformed = False
    for finding in result.findings:
        if finding.id in ("format", "registrar", "division_format"):
            malformed = True
            found.append(
                R.USCC_FORMAT.violation(
                    f"统一社会信用代码「{_show(value)}」格式错误：{_format_zh(finding.id, code)}",
                    f"USCC '{_show(value)}' is malformed: {finding.message}",
                )
            )
        elif finding.id == "check_digit":
            expected = uscc.compute_check_digit(code[:17])
            found.append(
                R.USCC_CHECK_DIGIT.violation(
                    f"统一社会信用代码 {code} 第 18 位为 {code[17]}，按 GB 32100 应为 {expected}",
                    f"USCC {code}: position 18 is {code[17]!r}, GB 32100 gives {expected!r}",
                )
            )
        elif finding.id == "org_check_digit":
            expected = uscc.compute_org_check_digit(code[8:16])
            found.append(
                R.USCC_ORG_CHECK_DIGIT.violation(
                    f"统一社会信用代码 {code} 第 17 位（组织机构代码校验码）为 {code[16]}，按 GB 11714 应为 {expected}",
                    f"USCC {code}: position 17 (organisation code check) is {code[16]!r}, GB 11714 gives {expected!r}",
                )
            )
        elif finding.id == "legacy_pilot":
            found.append(
                R.USCC_LEGACY_PILOT.violation(
                    f"统一社会信用代码 {code} 为已知早期试点代码，校验位不符但合法，予以接收",
                    f"USCC {code} is a known early pilot code ({finding.message}); accepted",
                )
            )
        # ``unknown_category`` (INFO) is left to USCC_REGISTRAR_PREFIX, which names the category.
    return (None if malformed else code[:2]), tuple(found)


def _format_zh(finding_id: str, code: str) -> str:
    if finding_id == "registrar":
        return f"登记管理部门代码 {code[:1]} 未定义"
    if finding_id == "division_format":
        return f"第 3–8 位应为数字，实为 {code[2:8]}"
    if len(code) != 18:
        return f"长度为 {len(code)}，应为 18 位"
    bad = "".join(sorted({ch for ch in code if ch not in uscc.ALPHABET}))
    return f"含 GB 32100 字符集以外的字符 {bad}"


def _prefix_name(prefix: str) -> str:
    registrar = uscc.REGISTRARS.get(prefix[0], "未知")
    category = uscc.CATEGORIES.get(prefix[0], {}).get(prefix[1], "类别未列明")
    return f"{registrar}·{category}"


# --------------------------------------------------------------------------------------------------
# Division (memoised per (county code, address))


@dataclass(frozen=True, slots=True)
class _Division:
    county_code: str | None
    resolution: CountyResolution | None  # None: keep the event's own
    violations: tuple[RuleViolation, ...]


@lru_cache(maxsize=_CODE_CACHE)
def _code_check(code: str) -> CodeCheck:
    """:func:`schemas.divisions.check_code`, memoised: (code, address) pairs rarely repeat, codes do."""
    return divisions.check_code(code)


@lru_cache(maxsize=_DIVISION_CACHE)
def _division_outcome(code: str | None, address: str, resolve_missing: bool) -> _Division:
    """Re-check the connector's county; map abolished codes forward; fall back to the address."""
    check: CodeCheck | None = None
    if code is not None and not _blank(code):
        check = _code_check(code)
        routed = check.county_code
        if routed is not None and check.status is DivisionStatus.CURRENT:
            found = _historical_address(address, routed)
            return _Division(routed, None, found)
        if routed is not None and check.status is DivisionStatus.ABOLISHED_MAPPED:
            return _Division(routed, None, (_abolished_code(check, routed),))

    resolved = divisions.resolve_address(address) if resolve_missing and not _blank(address) else None
    if resolved is not None and resolved.county_code is not None:
        county = resolved.county_code
        found = (
            *_historical_address(address, county, resolved),
            _resolved_at_gate(code, check, address, county, resolved),
        )
        confidence = ADDRESS_CONFIDENCE.get(resolved.confidence, 0.0)
        return _Division(county, CountyResolution(CountyResolutionMethod.ADDRESS, confidence), found)
    return _Division(None, None, (_unknown(code, check, address, resolved),))


def _historical_address(
    address: str, county: str, resolved: AddressResolution | None = None
) -> tuple[RuleViolation, ...]:
    """``DIVISION_ABOLISHED_MAPPED`` when the address names ``county`` by an abolished/old name."""
    if _blank(address):
        return ()
    if resolved is None:
        if not divisions.may_name_historically(address, county):
            return ()  # the usual case, found without resolving the whole address (the gate's hot path)
        resolved = divisions.resolve_address(address)
    if resolved.county_code != county or not resolved.history or "historical_name" not in resolved.notes:
        return ()
    chain = _chain_text(resolved.history)
    shown = _show(address)
    return (
        R.DIVISION_ABOLISHED_MAPPED.violation(
            f"住所「{shown}」使用已变更的区划名称，经变更历史（{chain}）对应现行县区 {county}",
            f"address '{shown}' names a division that has since changed ({chain}); routed to current county {county}",
        ),
    )


def _abolished_code(check: CodeCheck, county: str) -> RuleViolation:
    chain = _chain_text(check.chain)
    name = check.current.name if check.current is not None else ""
    return R.DIVISION_ABOLISHED_MAPPED.violation(
        f"县区代码 {check.code} 已撤销，经变更历史（{chain}）映射至现行县区 {county}{name}",
        f"county_code {check.code} is abolished; mapped forward ({chain}) to current county {county} {name}",
    )


def _resolved_at_gate(
    code: str | None, check: CodeCheck | None, address: str, county: str, resolved: AddressResolution
) -> RuleViolation:
    why_zh, why_en = _code_problem(code, check)
    shown = _show(address)
    band = resolved.confidence.value
    name = resolved.county.name if resolved.county is not None else ""
    return R.DIVISION_RESOLVED_AT_GATE.violation(
        f"{why_zh}；质量闸门根据住所「{shown}」解析为县区 {county}{name}（置信度 {band}）",
        f"{why_en}; the gate resolved the address '{shown}' to county {county} {name} (confidence {band})",
    )


def _unknown(
    code: str | None, check: CodeCheck | None, address: str, resolved: AddressResolution | None
) -> RuleViolation:
    why_zh, why_en = _code_problem(code, check)
    if _blank(address):
        addr_zh, addr_en = "住所为空", "the address is blank"
    elif resolved is None:
        addr_zh, addr_en = "未按地址重新解析（已关闭）", "address re-resolution is switched off"
    else:
        shown = _show(address)
        reason = resolved.reason or "no_county"
        detail = _ADDRESS_REASON_ZH.get(reason, reason)
        extra = f" {resolved.development_zone}" if resolved.development_zone else ""
        addr_zh = f"住所「{shown}」无法解析到县区（{detail}{extra}）"
        addr_en = f"the address '{shown}' does not resolve to a county ({reason}{extra})"
    return R.DIVISION_UNKNOWN.violation(
        f"无法确定所在县区：{why_zh}，{addr_zh}，无法推送至县级卫生健康部门",
        f"no county: {why_en} and {addr_en}, so no county health department can receive it",
    )


def _code_problem(code: str | None, check: CodeCheck | None) -> tuple[str, str]:
    if check is None:
        return "未提供县区代码", "no county_code was given"
    shown = _show(code or "")
    if check.status is DivisionStatus.CURRENT and check.current is not None:
        div = check.current
        return (
            f"代码 {check.code}（{div.name}）不是县级区划",
            f"county_code {check.code} ({div.name}) is not a county-level division",
        )
    if check.status is DivisionStatus.ABOLISHED_MAPPED:
        return (
            f"县区代码 {check.code} 已撤销，其后继不是县级区划",
            f"county_code {check.code} is abolished and its successor is not county-level",
        )
    if check.status is DivisionStatus.ABOLISHED_UNMAPPED:
        return (
            f"县区代码 {check.code} 已撤销且无后继记录",
            f"county_code {check.code} is abolished with no recorded successor",
        )
    if check.code is None:
        return f"县区代码「{shown}」不是区划代码", f"county_code '{shown}' is not a division code"
    return (
        f"县区代码 {check.code} 未知（不在 GB/T 2260 现行或历史表中）",
        f"county_code {check.code} is unknown (neither current nor historical GB/T 2260)",
    )


_ADDRESS_REASON_ZH: Final = {
    "empty": "地址为空",
    "no_division": "未识别到区划名称",
    "ambiguous": "区划名称有歧义",
    "inconsistent": "区划名称前后不一致",
    "no_county": "仅识别到地市级",
    "development_zone": "开发区等功能区，不是行政区划",
    "abolished_unmapped": "旧区划名称无后继记录",
}


def _chain_text(chain: Sequence[ChangeStep]) -> str:
    steps = [
        f"{s.year} {s.event_type} {s.from_code}{s.from_name or ''}→{s.to_code}{s.to_name or ''}"
        for s in chain
    ]
    return "；".join(steps)


# --------------------------------------------------------------------------------------------------
# Childcare (memoised per scope, then per (scope, name) only when the scope alone does not decide)


@lru_cache(maxsize=_SCOPE_CACHE)
def _scope_verdict(scope: str) -> childcare.ChildcareVerdict:
    return childcare.classify(scope)


@lru_cache(maxsize=_SCOPE_NAME_CACHE)
def _scope_name_verdict(scope: str, name: str) -> childcare.ChildcareVerdict:
    return childcare.classify(scope, name)


def _childcare(scope: str, name: str) -> childcare.ChildcareVerdict:
    """Same answer as ``classify(scope, name)``: a strong include in the scope wins whatever the name says."""
    verdict = _scope_verdict(scope)
    if verdict.rule == "include":
        return verdict
    return _scope_name_verdict(scope, name)


def _not_childcare(scope: str, name: str, verdict: childcare.ChildcareVerdict) -> RuleViolation:
    if verdict.rule == "excluded":
        why = f"仅含排除词 {'、'.join(verdict.exclude_terms)}，无托育关键词"
    elif verdict.rule == "weak_include_excluded":
        why = f"仅有服务形式词 {'、'.join(verdict.include_terms)}，且含排除词 {'、'.join(verdict.exclude_terms)}"
    else:
        why = "未出现托育关键词"
    if verdict.negated_terms:
        why += f"（否定表述中的 {'、'.join(verdict.negated_terms)} 不计）"
    shown_scope, shown_name = _show(scope), _show(name)
    return R.NOT_CHILDCARE.violation(
        f"业务范围「{shown_scope}」及名称「{shown_name}」未通过托育机构判定：{why}",
        f"business_scope '{shown_scope}' and name '{shown_name}' fail the childcare test: {verdict.reason}",
    )


def _is_family(scope: str | None, name: str | None) -> bool:
    """A 家庭托育点 by its scope or name; the legal form is not required (一般为个体工商户, not always)."""
    return "家庭托育" in (scope or "") or "家庭托育" in (name or "")


# --------------------------------------------------------------------------------------------------
# The mapping's string bounds and county resolution

_L = STRING_LIMITS


def _keys(prefix: str, *names: str) -> tuple[tuple[str, str, int], ...]:
    return tuple((name, f"{prefix}{name}", _L[f"{prefix}{name}"]) for name in names)


_INSTITUTION_HEAD: Final = _keys("institution.", "uscc", "name")
_REPRESENTATIVE: Final = _keys(
    "institution.legal_representative.", "name", "id_number_masked", "phone_masked"
)
_INSTITUTION_TAIL: Final = _keys(
    "institution.",
    "address",
    "county_code",
    "business_scope",
    "registered_capital_currency",
    "stated_division_code",
    "industry_code",
)
_CHANGE: Final = tuple((k, _L[f"changed_fields[].{k}"]) for k in ("field", "old", "new"))
_MOVE: Final = _keys("jurisdiction.", "from_county_code", "to_county_code")
_LINEAGE: Final = _keys(
    "lineage.", "source_system", "source_record_id", "source_version", "cursor_value", "extracted_by"
)
_WARNING: Final = tuple(
    (k, _L[f"quality_warnings[].{k}"]) for k in ("rule_id", "field", "message_zh", "message_en")
)


def _over(found: list[TooLong], record: Mapping[str, Any], keys: tuple[tuple[str, str, int], ...]) -> None:
    for key, path, bound in keys:
        value = record.get(key)
        if value is not None and len(value) > bound:
            found.append(TooLong(path, len(value), bound))


def _too_long_avro(data: Mapping[str, Any]) -> list[TooLong]:
    """:func:`schemas.limits.too_long` on the Avro mapping: the same findings in the same order.

    Why not that function: it reads the typed model, which the gate no longer builds for every
    record; and it makes a generator per field, which made it the costliest rule (issue 12).
    ``tests/unit/test_record_checks_avro.py`` holds the two to the same answers.
    """
    found: list[TooLong] = []
    event_id = data["event_id"]
    if event_id is not None and len(event_id) > _L["event_id"]:
        found.append(TooLong("event_id", len(event_id), _L["event_id"]))
    inst = data["institution"]
    _over(found, inst, _INSTITUTION_HEAD)
    rep = inst.get("legal_representative")
    if rep is not None:
        _over(found, rep, _REPRESENTATIVE)
    _over(found, inst, _INSTITUTION_TAIL)
    for index, change in enumerate(data.get("changed_fields") or ()):
        for key, bound in _CHANGE:
            value = change.get(key)
            if value is not None and len(value) > bound:
                found.append(TooLong(f"changed_fields[{index}].{key}", len(value), bound))
    move = data.get("jurisdiction")
    if move is not None:
        _over(found, move, _MOVE)
    _over(found, data["lineage"], _LINEAGE)
    for index, warning in enumerate(data.get("quality_warnings") or ()):
        for key, bound in _WARNING:
            value = warning.get(key)
            if value is not None and len(value) > bound:
                found.append(TooLong(f"quality_warnings[{index}].{key}", len(value), bound))
    return found


_RESOLUTION_CACHE = 256


@lru_cache(maxsize=_RESOLUTION_CACHE)
def _resolution_of(method: str, confidence: float) -> CountyResolution:
    return CountyResolution.from_avro({"method": method, "confidence": confidence})


def _resolution(data: Mapping[str, Any]) -> CountyResolution:
    """The event's own ``county_resolution`` as the model; few distinct values, so memoised."""
    return _resolution_of(data["method"], data["confidence"])


# --------------------------------------------------------------------------------------------------
# Fixed messages and small builders


_NO_CHANGES: Final = R.CHANGED_FIELDS_MISSING.violation(
    "变更事件（CHANGED）未列出任何变更事项（changed_fields 为空）", "CHANGED event lists no changed_fields"
)


def _no_move(event_type: EventType) -> RuleViolation:
    return R.MOVE_JURISDICTION_MISSING.violation(
        f"{event_type.label_zh}事件（{event_type.value}）缺少迁出地和迁入地区划代码",
        f"{event_type.value} event has neither jurisdiction.from_county_code nor to_county_code",
    )


def _too_long(over: TooLong) -> RuleViolation:
    """The value itself is never shown: it may be personal data, and it is too long to read anyway."""
    return R.FIELD_TOO_LONG.violation(
        f"字段 {over.field} 长度 {over.length} 超过上限 {over.limit}",
        f"field {over.field} is {over.length} characters long, over its bound of {over.limit}",
        over.field,
    )


def _bad_id(masked: str | None) -> RuleViolation:
    shown = mask_resident_id(masked) or "（空）"  # idempotent: masks again in case a connector did not
    return R.LEGAL_REP_ID_INVALID.violation(
        f"法定代表人身份证号码 {shown} 未通过 GB 11643 校验",
        f"legal representative's resident ID {shown} fails the GB 11643 checks",
    )


def _show(text: str, limit: int = 60) -> str:
    """A value fit for a message: IDs and phone numbers masked, long text shortened."""
    masked = mask_text(text)
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"
