"""The batch suites, as code: which expectations run over a gate batch and over a loaded month.

Suites live here rather than as JSON in the GX project so that a change to a rule is a reviewed code
change with tests, and a suite's parameters (volume bounds, the timeliness threshold, the registrar
prefix table) are typed values the caller passes per run. The runner upserts the built suite into its
working copy of the GX project before each run, so Data Docs always show the suite that ran.

* ``gate_batch`` — over each gate batch (flattened events plus the gate's verdict): required columns
  present, event ids unique, USCC valid, county known, registrar/prefix consistent, enum columns
  within their symbols.
* ``monthly`` — over one loaded month: the same institution from two registrars, the month's volume
  against bounds from history, and per registrar the share of registrations pushed within their
  registration month.

Every expectation is critical (its failure fails the DAG's quality task) except the ones in
:data:`WARNING_ONLY`: the volume bound is a statistical guess from history, so a month outside it is
shown, not stopped.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Generic, TypeVar

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.row_conditions import Column

from quality.expectations import (
    DEFAULT_EXEMPT_REGISTRARS,
    DEFAULT_TIMEZONE,
    REGISTRAR_PREFIXES,
    ExpectColumnPairValuesRegistrarPrefixConsistent,
    ExpectColumnPairValuesToBePushedInRegistrationMonth,
    ExpectColumnValuesToBeKnownDivision,
    ExpectColumnValuesToBeValidUscc,
    ExpectUsccToComeFromSingleRegistrar,
)
from schemas.events import EventType, Registrar

__all__ = [
    "GATE_BATCH",
    "MONTHLY",
    "SUITES",
    "WARNING_ONLY",
    "GateBatchParams",
    "MonthlyParams",
    "SuiteSpec",
    "get_suite",
    "is_critical",
    "volume_bounds",
]

GATE_BATCH: Final = "gate_batch"
MONTHLY: Final = "monthly"

P = TypeVar("P")

WARNING_ONLY: Final[Mapping[str, frozenset[str]]] = {
    MONTHLY: frozenset({"expect_table_row_count_to_be_between"}),
}
"""Per suite, the expectation types whose failure is a warning (task stays green, failure shown)."""


def is_critical(suite: str, expectation_type: str) -> bool:
    """Whether a failure of ``expectation_type`` in ``suite`` must stop the month (fail the task)."""
    return expectation_type not in WARNING_ONLY.get(suite, frozenset())


@dataclass(frozen=True, slots=True)
class GateBatchParams:
    """Knobs of the ``gate_batch`` suite; the defaults are the national rules."""

    required_columns: tuple[str, ...] = (
        "event_id",
        "event_type",
        "registrar",
        "event_date",
        "extracted_at",
        "uscc",
        "name",
        "verdict",
    )
    """Columns that must be non-null in every row (``county_code`` may be unresolved: that is a
    routing finding the known-division check and the filing-gap lists report, not a missing field)."""
    registrar_prefixes: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: {k: sorted(v) for k, v in REGISTRAR_PREFIXES.items()}
    )
    allow_legacy_pilot: bool = True
    require_routing_unit: bool = True
    verdicts: tuple[str, ...] = ("accepted", "rejected")


@dataclass(frozen=True, slots=True)
class MonthlyParams:
    """Knobs of the ``monthly`` suite.

    ``volume_bounds`` are computed by the caller from previous months (:func:`volume_bounds`); with
    no history there are no bounds and the volume check is left out (the outcome's ``metrics`` say so).
    """

    volume_bounds: tuple[int, int] | None = None
    timeliness_threshold: float = 0.9
    """Share of a registrar's registrations that must be pushed within their registration month."""
    timezone: str = DEFAULT_TIMEZONE
    exempt_registrars: tuple[str, ...] = DEFAULT_EXEMPT_REGISTRARS
    registrars: tuple[str, ...] = tuple(r.value for r in Registrar)
    """Registrars judged for timeliness; one expectation each, so every month has the same rows."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.timeliness_threshold <= 1.0:
            raise ValueError(f"timeliness_threshold must be within [0, 1], got {self.timeliness_threshold}")
        if self.volume_bounds is not None and self.volume_bounds[0] > self.volume_bounds[1]:
            raise ValueError(f"volume_bounds must be (low, high) with low <= high, got {self.volume_bounds}")


@dataclass(frozen=True, slots=True)
class SuiteSpec(Generic[P]):
    """A named suite: its parameter type, the columns it needs, and how to build its expectations."""

    name: str
    description: str
    params_type: type[P]
    required_columns: Callable[[P], tuple[str, ...]]
    build: Callable[[P], list[Expectation]]

    def coerce_params(self, params: P | Mapping[str, Any] | None) -> P:
        """Accept the params object, a mapping of its fields (e.g. from TOML/Airflow), or ``None``."""
        if params is None:
            return self.params_type()
        if isinstance(params, self.params_type):
            return params
        if isinstance(params, Mapping):
            known = {f.name for f in fields(self.params_type)}  # type: ignore[arg-type]  # P is bound to dataclasses; mypy has no DataclassInstance bound
            unknown = sorted(set(params) - known)
            if unknown:
                raise ValueError(f"suite {self.name!r}: unknown parameters {unknown}; known: {sorted(known)}")
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
            return self.params_type(**values)
        raise TypeError(f"suite {self.name!r}: params must be {self.params_type.__name__} or a mapping")

    def params_dict(self, params: P) -> dict[str, Any]:
        """JSON-friendly view of the params, kept in the suite's ``meta`` and the stored results."""
        return _jsonable(asdict(params))  # type: ignore[call-overload]  # as above: P is always a dataclass


def volume_bounds(
    history: Sequence[int],
    *,
    sigmas: float = 3.0,
    min_months: int = 3,
    min_months_for_sigma: int = 6,
    fallback_ratio: float = 0.5,
) -> tuple[int, int] | None:
    """Row-count bounds for a month from previous months' counts.

    Empty months are not history: a catchup over months before the registrars were connected loads
    zeros, and bounds of [0, 0] learned from them would fail the first real month. Fewer than
    ``min_months`` non-empty months is partial history: no bounds (the check is left out). With at
    least ``min_months_for_sigma`` months: mean ± ``sigmas`` × sample standard deviation; with fewer,
    mean ± ``fallback_ratio`` × mean, because a standard deviation of a few points says little. The
    lower bound never goes below zero; bounds are widened to whole rows (floor/ceil) so an integer
    count on the edge passes.
    """
    counts = [float(c) for c in history if c > 0]
    if len(counts) < max(min_months, 1):
        return None
    mean = statistics.fmean(counts)
    if len(counts) >= max(min_months_for_sigma, 2):
        spread = sigmas * statistics.stdev(counts)
    else:
        spread = fallback_ratio * mean
    return max(0, math.floor(mean - spread)), math.ceil(mean + spread)


def _gate_columns(params: GateBatchParams) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*params.required_columns, "event_id", "uscc", "registrar", "county_code")))


def _build_gate_batch(params: GateBatchParams) -> list[Expectation]:
    expectations: list[Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(column=column) for column in params.required_columns
    ]
    expectations += [
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
        gxe.ExpectColumnValuesToBeInSet(column="registrar", value_set=[r.value for r in Registrar]),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=[t.value for t in EventType]),
        gxe.ExpectColumnValuesToBeInSet(column="verdict", value_set=list(params.verdicts)),
        ExpectColumnValuesToBeValidUscc(column="uscc", allow_legacy_pilot=params.allow_legacy_pilot),
        ExpectColumnValuesToBeKnownDivision(
            column="county_code", require_routing_unit=params.require_routing_unit
        ),
        ExpectColumnPairValuesRegistrarPrefixConsistent(
            column_A="registrar",
            column_B="uscc",
            registrar_prefixes={k: sorted(v) for k, v in params.registrar_prefixes.items()},
        ),
    ]
    return expectations


def _monthly_columns(params: MonthlyParams) -> tuple[str, ...]:
    return ("uscc", "registrar", "event_date", "extracted_at", "county_code")


def _build_monthly(params: MonthlyParams) -> list[Expectation]:
    expectations: list[Expectation] = [
        ExpectUsccToComeFromSingleRegistrar(
            column_A="uscc", column_B="registrar", exempt_registrars=list(params.exempt_registrars)
        )
    ]
    if params.volume_bounds is not None:
        low, high = params.volume_bounds
        expectations.append(gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high))
    expectations += [
        ExpectColumnPairValuesToBePushedInRegistrationMonth(
            column_A="event_date",
            column_B="extracted_at",
            timezone=params.timezone,
            mostly=params.timeliness_threshold,
            row_condition=Column("registrar") == registrar,
        )
        for registrar in params.registrars
    ]
    return expectations


SUITES: Final[Mapping[str, SuiteSpec[Any]]] = {
    GATE_BATCH: SuiteSpec(
        name=GATE_BATCH,
        description="Each gate batch: identifiers, division codes, registrar/prefix and required fields.",
        params_type=GateBatchParams,
        required_columns=_gate_columns,
        build=_build_gate_batch,
    ),
    MONTHLY: SuiteSpec(
        name=MONTHLY,
        description="One loaded month: cross-registrar duplicates, volume against history, timeliness.",
        params_type=MonthlyParams,
        required_columns=_monthly_columns,
        build=_build_monthly,
    ),
}
"""Every suite the runner knows, by name."""


def get_suite(name: str) -> SuiteSpec[Any]:
    """The suite called ``name``, or a ``KeyError`` naming the known ones."""
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; known: {sorted(SUITES)}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value
