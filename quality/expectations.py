"""Custom Great Expectations (GX 1.x) expectations for regsync's batch suites.

GX has no expectation for a valid 统一社会信用代码, a known GB/T 2260 county, the registrar/USCC-prefix
rule, one institution reported by two registrars, or the "pushed within the registration month" rule
(docs/domain.md), so they are written here the GX 1.x way: a *metric provider* registered for the pandas
execution engine (``ColumnMapMetricProvider`` / ``ColumnPairMapMetricProvider`` with a
``column_condition_partial`` / ``column_pair_condition_partial``), and a ``ColumnMapExpectation`` /
``ColumnPairMapExpectation`` that names it in ``map_metric``. Defining the classes registers them
(GX's ``MetaExpectation`` / ``MetaMetricProvider`` metaclasses), so importing this module is all a
caller needs; suites stored as JSON then deserialize by ``type`` and Data Docs render them by name.

Only the pandas engine is implemented: every check needs ``schemas`` (check digits, the division
change history), which SQL cannot express without shipping those tables into the database. Batches
reach the suites as DataFrames (a gate batch, a loaded month), so nothing is lost.

The row-level logic is exposed as plain functions (:func:`uscc_valid`, :func:`division_known`,
:func:`prefix_consistent`, :func:`cross_registrar_duplicates`, :func:`pushed_in_registration_month`)
so the runner computes its shares with *the same* definition GX validated.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)
from great_expectations.expectations.metrics.metric_provider import MetricProvider, metric_value
from great_expectations.expectations.registry import get_metric_kwargs
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer
from great_expectations.validator.metric_configuration import MetricConfiguration

from quality.rules import REGISTRAR_PREFIXES as _RULE_PREFIXES
from schemas import divisions, uscc
from schemas.month import DEFAULT_TIMEZONE as _DEFAULT_TIMEZONE

__all__ = [
    "DEFAULT_EXEMPT_REGISTRARS",
    "DEFAULT_TIMEZONE",
    "REGISTRAR_PREFIXES",
    "ExpectColumnPairValuesRegistrarPrefixConsistent",
    "ExpectColumnPairValuesToBePushedInRegistrationMonth",
    "ExpectColumnValuesToBeKnownDivision",
    "ExpectColumnValuesToBeValidUscc",
    "ExpectUsccToComeFromSingleRegistrar",
    "condition_text",
    "cross_registrar_duplicates",
    "division_known",
    "prefix_consistent",
    "pushed_in_registration_month",
    "uscc_valid",
]

# One table for the gate and the batch suites (quality.rules owns it); keyed by the plain string
# because DataFrame columns hold strings.
REGISTRAR_PREFIXES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {str(registrar.value): prefixes for registrar, prefixes in _RULE_PREFIXES.items()}
)
"""USCC positions 1–2 each registrar may issue (docs/domain.md, 国卫办人口发〔2019〕25号).

Data, not code: a province whose 行政审批局 registers other forms passes its own table to
:class:`ExpectColumnPairValuesRegistrarPrefixConsistent` (``registrar_prefixes``).
"""

DEFAULT_EXEMPT_REGISTRARS: Final[tuple[str, ...]] = ("JIAOYU",)
"""Registrars whose events are *about* an entity registered elsewhere (教育 reports a 托班 opened by a
kindergarten that 编制/民政/市场监管 registered), so their USCCs legitimately repeat another registrar's."""

DEFAULT_TIMEZONE: Final = _DEFAULT_TIMEZONE  # one definition: schemas.month
"""Registration months are calendar months in China: a push at 07:00 on the 1st (CST) is late even
though it is still the previous day in UTC."""

_CACHE_SIZE: Final = 1 << 16  # a month rarely has more distinct codes; bounded so memory stays flat
_RESULT_STYLE: Final = {"params": {"expectation_type": {"classes": ["badge", "badge-secondary"]}}}


# --------------------------------------------------------------------------------------------------
# Row-level rules, shared by the metrics and the runner


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _uscc_verdict(value: str) -> tuple[bool, bool]:
    result = uscc.parse(value)
    return result.is_valid, result.has("legacy_pilot")


def uscc_valid(value: object, *, allow_legacy_pilot: bool = True) -> bool:
    """GB 32100 check digit, GB 11714 organisation check and format all pass (via ``schemas.uscc``).

    Known early pilot codes (:data:`schemas.uscc.LEGACY_PILOT_CODES`) are legal though they fail a
    check digit, so they count as valid unless ``allow_legacy_pilot`` is false.
    """
    if not isinstance(value, str):
        return False
    valid, legacy = _uscc_verdict(value)
    return valid and (allow_legacy_pilot or not legacy)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _division_verdict(value: str) -> tuple[bool, bool]:
    check = divisions.check_code(value)
    known = check.status in (divisions.DivisionStatus.CURRENT, divisions.DivisionStatus.ABOLISHED_MAPPED)
    return known, check.county_code is not None


def division_known(value: object, *, require_routing_unit: bool = True) -> bool:
    """The code is current in GB/T 2260 or an abolished code mapped forward to a current one.

    With ``require_routing_unit`` (the default for a ``county_code`` column) it must also lead to a
    unit with a county-level health department, so a province or prefecture code does not pass.
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return False
    known, routable = _division_verdict(str(value))
    return known and (routable or not require_routing_unit)


def prefix_consistent(
    registrar: object, code: object, table: Mapping[str, Iterable[str]] | None = None
) -> bool:
    """Whether the USCC's first two characters are a form this registrar registers.

    An unknown registrar is inconsistent by definition: nothing says what it may issue.
    """
    prefixes = (table if table is not None else REGISTRAR_PREFIXES).get(str(registrar).strip().upper())
    if prefixes is None or not isinstance(code, str):
        return False
    return uscc.normalize(code)[:2] in set(prefixes)


def _normalized_codes(codes: pd.Series) -> pd.Series:
    return pd.Series([uscc.normalize(c) if isinstance(c, str) else c for c in codes], index=codes.index)


def _duplicated_mask(
    codes: pd.Series, registrars: pd.Series, exempt: Iterable[str]
) -> tuple[pd.Series, pd.Series, pd.Series]:
    norm = _normalized_codes(codes)
    names = pd.Series([str(r).strip().upper() for r in registrars], index=registrars.index)
    counted = ~names.isin({str(e).upper() for e in exempt})
    distinct = names[counted].groupby(norm[counted]).nunique()
    duplicated = set(distinct.index[distinct > 1])
    flagged = counted & norm.isin(duplicated)
    return flagged, norm, names


def cross_registrar_duplicates(
    codes: pd.Series, registrars: pd.Series, exempt: Iterable[str] = DEFAULT_EXEMPT_REGISTRARS
) -> dict[str, list[str]]:
    """USCCs reported by more than one (non-exempt) registrar, each with the registrars, sorted.

    Codes are compared normalized (full-width folded, spaces dropped, upper-cased), as registrars'
    exports differ in exactly those ways. Rows with a missing code or registrar are not compared.
    """
    present = codes.notna() & registrars.notna()
    flagged, norm, names = _duplicated_mask(codes[present], registrars[present], exempt)
    pairs = pd.DataFrame({"code": norm[flagged], "registrar": names[flagged]})
    return {
        str(code): sorted(group.unique()) for code, group in pairs.groupby("code", sort=True)["registrar"]
    }


def pushed_in_registration_month(
    event_date: pd.Series, extracted_at: pd.Series, tz: str = DEFAULT_TIMEZONE
) -> pd.Series:
    """Row-wise flags: was the event pushed (``extracted_at``) in the calendar month of ``event_date``.

    ``event_date`` is the registrar's local date (核准日期); ``extracted_at`` is an instant — naive
    values are read as UTC, as the Avro ``timestamp-millis`` they come from is — converted to ``tz``
    before its month is taken. An unparseable or missing value is *not* on time, so missing data
    can never make the share look better.
    """
    registered = pd.to_datetime(event_date, errors="coerce")
    if isinstance(registered.dtype, pd.DatetimeTZDtype):
        registered = registered.dt.tz_convert(tz).dt.tz_localize(None)
    pushed = pd.to_datetime(extracted_at, errors="coerce", utc=True).dt.tz_convert(tz)
    same = (registered.dt.year == pushed.dt.year) & (registered.dt.month == pushed.dt.month)
    return same.fillna(False).astype(bool)


def _bool_series(values: Iterable[bool], index: pd.Index) -> pd.Series:
    return pd.Series(list(values), index=index, dtype=bool)


# --------------------------------------------------------------------------------------------------
# Metrics (registered for the pandas engine when the classes are defined)


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    """Row condition: the value is a valid USCC."""

    condition_metric_name = "column_values.regsync_valid_uscc"
    condition_value_keys = ("allow_legacy_pilot",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, allow_legacy_pilot: bool = True, **_: Any) -> pd.Series:
        flag = True if allow_legacy_pilot is None else bool(allow_legacy_pilot)
        return _bool_series((uscc_valid(v, allow_legacy_pilot=flag) for v in column), column.index)


class ColumnValuesKnownDivision(ColumnMapMetricProvider):
    """Row condition: the value is a current (or mapped-forward) division code."""

    condition_metric_name = "column_values.regsync_known_division"
    condition_value_keys = ("require_routing_unit",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, require_routing_unit: bool = True, **_: Any) -> pd.Series:
        flag = True if require_routing_unit is None else bool(require_routing_unit)
        return _bool_series((division_known(v, require_routing_unit=flag) for v in column), column.index)


class ColumnPairRegistrarPrefixConsistent(ColumnPairMapMetricProvider):
    """Row condition: column_A (registrar) may issue the USCC prefix in column_B."""

    condition_metric_name = "column_pair_values.regsync_registrar_prefix_consistent"
    condition_value_keys = ("registrar_prefixes",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        column_A: pd.Series,
        column_B: pd.Series,
        registrar_prefixes: Mapping[str, Iterable[str]] | None = None,
        **_: Any,
    ) -> pd.Series:
        table = _prefix_table(registrar_prefixes)
        return _bool_series(
            (prefix_consistent(r, c, table) for r, c in zip(column_A, column_B, strict=True)), column_A.index
        )


class ColumnPairUsccSingleRegistrar(ColumnPairMapMetricProvider):
    """Row condition: the USCC in column_A is reported by no other non-exempt registrar (column_B)."""

    condition_metric_name = "column_pair_values.regsync_uscc_single_registrar"
    condition_value_keys = ("exempt_registrars",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        column_A: pd.Series,
        column_B: pd.Series,
        exempt_registrars: Iterable[str] | None = None,
        **_: Any,
    ) -> pd.Series:
        exempt = DEFAULT_EXEMPT_REGISTRARS if exempt_registrars is None else exempt_registrars
        present = column_A.notna() & column_B.notna()
        flagged = pd.Series(False, index=column_A.index)
        flagged[present] = _duplicated_mask(column_A[present], column_B[present], exempt)[0]
        return ~flagged


class ColumnPairCrossRegistrarUsccs(MetricProvider):
    """Aggregate over a column pair: ``{uscc: [registrars]}`` for every cross-registrar duplicate.

    A map metric only yields a sample of unexpected rows; auditors need *every* offending USCC, so
    :class:`ExpectUsccToComeFromSingleRegistrar` depends on this metric as well and puts the full
    list in its result's ``details``.
    """

    metric_name = "column_pair.regsync_cross_registrar_usccs"
    domain_keys = ColumnPairMapMetricProvider.condition_domain_keys
    value_keys = ("exempt_registrars",)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        execution_engine: PandasExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, list[str]]:
        frame, _, accessor = execution_engine.get_compute_domain(
            domain_kwargs=metric_domain_kwargs, domain_type=MetricDomainTypes.COLUMN_PAIR
        )
        exempt = metric_value_kwargs.get("exempt_registrars")
        return cross_registrar_duplicates(
            frame[accessor["column_A"]],
            frame[accessor["column_B"]],
            DEFAULT_EXEMPT_REGISTRARS if exempt is None else exempt,
        )


class ColumnPairPushedInRegistrationMonth(ColumnPairMapMetricProvider):
    """Row condition: column_B (push instant) falls in the calendar month of column_A (event date)."""

    condition_metric_name = "column_pair_values.regsync_pushed_in_registration_month"
    condition_value_keys = ("timezone",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        column_A: pd.Series,
        column_B: pd.Series,
        timezone: str | None = None,
        **_: Any,
    ) -> pd.Series:
        return pushed_in_registration_month(column_A, column_B, timezone or DEFAULT_TIMEZONE)


def condition_text(condition: Any) -> str | None:
    """A GX row condition as readable text (``registrar == 'BIANZHI'``), whatever form it arrives in."""
    if condition is None or condition == "":
        return None
    if not isinstance(condition, (Mapping, str)) and callable(getattr(condition, "dict", None)):
        condition = condition.dict()  # a GX Condition model
    if isinstance(condition, Mapping):
        if "conditions" in condition:
            joiner = " AND " if condition.get("type") == "and" else " OR "
            return joiner.join(filter(None, (condition_text(c) for c in condition["conditions"])))
        column = condition.get("column")
        name = column.get("name") if isinstance(column, Mapping) else column
        if "operator" in condition:
            return f"{name} {condition['operator']} {condition.get('parameter')!r}"
        if "is_null" in condition:
            return f"{name} IS {'NULL' if condition['is_null'] else 'NOT NULL'}"
        if "pass_through_filter" in condition:
            return str(condition["pass_through_filter"])
    return str(condition)


def _prefix_table(table: Mapping[str, Iterable[str]] | None) -> Mapping[str, frozenset[str]]:
    if table is None:
        return REGISTRAR_PREFIXES
    return {str(k).upper(): frozenset(map(str, v)) for k, v in table.items()}


# --------------------------------------------------------------------------------------------------
# Expectations


def _template(template: str, params: dict[str, Any]) -> list[RenderedStringTemplateContent]:
    """A Data Docs sentence ending with the expectation type.

    The type is shown so auditors can match a Data Docs row to the ``expectation_type`` stored in
    ``quality_results``.
    """
    return [
        RenderedStringTemplateContent(
            content_block_type="string_template",
            string_template={
                "template": template + " ($expectation_type)",
                "params": params,
                "styling": _RESULT_STYLE,
            },
        )
    ]


def _mostly_clause(params: dict[str, Any]) -> str:
    mostly = params.get("mostly")
    if isinstance(mostly, (int, float)) and mostly < 1:
        params["mostly_pct"] = f"{mostly * 100:g}"
        return ", at least $mostly_pct % of the time"
    return ""


def _kwargs(configuration: Any) -> dict[str, Any]:
    return dict(configuration.kwargs) if configuration is not None else {}


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Expect column values to be valid 统一社会信用代码 (GB 32100-2015).

    Checks the alphabet, the GB 11714 organisation check (position 17) and the GB 32100 check
    character (position 18) with :func:`schemas.uscc.parse`, which — unlike python-stdnum — accepts
    registrar codes ``A``/``N``/``Y``. Known early pilot codes count as valid unless
    ``allow_legacy_pilot`` is false. Missing values are left to ``expect_column_values_to_not_be_null``.
    """

    allow_legacy_pilot: bool = True

    map_metric = "column_values.regsync_valid_uscc"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "allow_legacy_pilot")
    args_keys: ClassVar[tuple[str, ...]] = ("column",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["regsync", "uscc"]}

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: Any = None,
        result: Any = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> list[RenderedStringTemplateContent]:
        params = _kwargs(configuration) | {"expectation_type": "expect_column_values_to_be_valid_uscc"}
        text = "$column values must be valid unified social credit codes (GB 32100 + GB 11714 check digits)"
        if params.get("allow_legacy_pilot", True) is not False:
            text += "; known pilot codes accepted"
        return _template(text + _mostly_clause(params), params)


class ExpectColumnValuesToBeKnownDivision(ColumnMapExpectation):
    """Expect column values to be GB/T 2260 county codes that are current, or abolished and mapped forward.

    Uses :func:`schemas.divisions.check_code` (vendored 民政部 table and change history). With
    ``require_routing_unit`` (default) the code must reach a unit with a county-level health
    department; unknown codes and development-zone codes are the usual findings.
    """

    require_routing_unit: bool = True

    map_metric = "column_values.regsync_known_division"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "require_routing_unit")
    args_keys: ClassVar[tuple[str, ...]] = ("column",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["regsync", "gb2260"]}

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: Any = None,
        result: Any = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> list[RenderedStringTemplateContent]:
        params = _kwargs(configuration) | {"expectation_type": "expect_column_values_to_be_known_division"}
        text = "$column values must be current GB/T 2260 county codes or abolished codes mapped forward"
        return _template(text + _mostly_clause(params), params)


class ExpectColumnPairValuesRegistrarPrefixConsistent(ColumnPairMapExpectation):
    """Expect the registrar in column_A to be one that issues the USCC prefix in column_B.

    编制→12, 民政→52, 市场监管→91/92, 行政审批→91/92/52, 教育→12/52/91 by default
    (:data:`REGISTRAR_PREFIXES`); pass ``registrar_prefixes`` to use a province's own table.
    """

    registrar_prefixes: dict[str, list[str]] | None = None
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )

    map_metric = "column_pair_values.regsync_registrar_prefix_consistent"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "registrar_prefixes", "ignore_row_if")
    args_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["regsync", "uscc"]}

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: Any = None,
        result: Any = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> list[RenderedStringTemplateContent]:
        params = _kwargs(configuration) | {
            "expectation_type": "expect_column_pair_values_registrar_prefix_consistent"
        }
        table = _prefix_table(params.get("registrar_prefixes"))
        params["table"] = ", ".join(f"{k}→{'/'.join(sorted(v))}" for k, v in table.items())
        text = "registrar $column_A must issue the USCC prefix in $column_B ($table)"
        return _template(text + _mostly_clause(params), params)


class ExpectUsccToComeFromSingleRegistrar(ColumnPairMapExpectation):
    """Expect each USCC (column_A) to be reported by one registrar (column_B) only.

    The same institution pushed by two registrars (e.g. 市场监管 and 行政审批 in a city where the
    registration moved) is counted twice by the health bureau. Registrars in ``exempt_registrars``
    (教育 by default, whose 托班 events concern an entity registered elsewhere) are not compared.
    Every offending USCC, with its registrars, is in ``result.details.offending_usccs``.
    """

    exempt_registrars: list[str] = pydantic.Field(default_factory=lambda: list(DEFAULT_EXEMPT_REGISTRARS))
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )

    map_metric = "column_pair_values.regsync_uscc_single_registrar"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "exempt_registrars", "ignore_row_if")
    args_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["regsync", "duplicates"]}

    _DETAILS_METRIC: ClassVar[str] = ColumnPairCrossRegistrarUsccs.metric_name

    def get_validation_dependencies(
        self, execution_engine: Any = None, runtime_configuration: dict | None = None, **kwargs: Any
    ) -> Any:
        """Add the aggregate metric listing every offending USCC to the map metric's dependencies."""
        dependencies = super().get_validation_dependencies(
            execution_engine=execution_engine, runtime_configuration=runtime_configuration
        )
        metric_kwargs = get_metric_kwargs(
            metric_name=self._DETAILS_METRIC,
            configuration=self.configuration,
            runtime_configuration=runtime_configuration,
        )
        dependencies.set_metric_configuration(
            metric_name=self._DETAILS_METRIC,
            metric_configuration=MetricConfiguration(
                metric_name=self._DETAILS_METRIC,
                metric_domain_kwargs=metric_kwargs["metric_domain_kwargs"],
                metric_value_kwargs=metric_kwargs["metric_value_kwargs"],
            ),
        )
        return dependencies

    def _validate(
        self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None
    ) -> dict[str, Any] | Any:
        outcome = super()._validate(
            metrics=metrics, runtime_configuration=runtime_configuration, execution_engine=execution_engine
        )
        offending = metrics.get(self._DETAILS_METRIC) or {}
        if isinstance(outcome, dict):
            outcome.setdefault("result", {})["details"] = {
                "offending_usccs": offending,
                "offending_uscc_count": len(offending),
            }
        return outcome

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: Any = None,
        result: Any = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> list[RenderedStringTemplateContent]:
        params = _kwargs(configuration) | {"expectation_type": "expect_uscc_to_come_from_single_registrar"}
        params["exempt"] = ", ".join(params.get("exempt_registrars") or DEFAULT_EXEMPT_REGISTRARS) or "none"
        text = "each $column_A must be reported by a single $column_B (exempt: $exempt)"
        return _template(text + _mostly_clause(params), params)


class ExpectColumnPairValuesToBePushedInRegistrationMonth(ColumnPairMapExpectation):
    """Expect registrations (event date in column_A) to be pushed (instant in column_B) in the same month.

    Local rules require the registrar to push a registration to the health department within the
    calendar month of registration (登记当月推送). Months are taken in ``timezone`` (Asia/Shanghai).
    Set ``mostly`` to the required share and a ``row_condition`` to judge one registrar or county.
    Missing values count as late (``ignore_row_if="neither"``).
    """

    timezone: str = DEFAULT_TIMEZONE
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = "neither"

    map_metric = "column_pair_values.regsync_pushed_in_registration_month"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "timezone", "ignore_row_if")
    args_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["regsync", "timeliness"]}

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: Any = None,
        result: Any = None,
        runtime_configuration: dict | None = None,
        **kwargs: Any,
    ) -> list[RenderedStringTemplateContent]:
        params = _kwargs(configuration) | {
            "expectation_type": "expect_column_pair_values_to_be_pushed_in_registration_month"
        }
        condition = condition_text(params.get("row_condition"))
        params["condition"] = condition or ""
        params.setdefault("timezone", DEFAULT_TIMEZONE)
        text = "$column_B must fall in the calendar month ($timezone) of $column_A"
        text += _mostly_clause(params)
        if condition is not None:
            text += " where $condition"
        return _template(text, params)
