"""The input of the monthly audit report: plain, frozen facts the renderer only has to lay out.

Why a model of its own: the numbers come from two places (Kafka offsets and gate runs, the filing store)
and the report is read by auditors who must trust it, so the composition root gathers everything first
and hands the renderer one immutable value. The renderer then does no I/O and no counting of records,
which keeps it deterministic (same metrics, same bytes) and testable without the stack.

What the model checks and what it does not:

* It fails fast on values that are *malformed* (negative counts, a share outside 0–1, a month that is
  not ``YYYY-MM``, a naive timestamp, a Data Docs link that is not relative), because those are bugs
  in the code that filled it.
* It never rejects values that are merely *bad news*. ``extracted = valid + rejected`` failing for a
  registrar is exactly what the report exists to show (``✗``), so :class:`ReconRow` accepts it and
  exposes :attr:`ReconRow.balanced`.

Sequences are typed ``Sequence`` so the caller may pass lists. The renderer keeps their order (it only
groups timeliness rows by registrar, total first), so the caller decides how rows are sorted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Protocol
from urllib.parse import quote, urlsplit

from schemas.events import EventType, Registrar, Severity

__all__ = [
    "DEFAULT_TIMELINESS_THRESHOLD",
    "BeyondGate",
    "CatalogRule",
    "CountyVolume",
    "CrossRegistrar",
    "FailedExpectation",
    "GapRow",
    "GapSummary",
    "LatePush",
    "LoadRecon",
    "MonthlyMetrics",
    "PackageRow",
    "PushLateness",
    "ReconRow",
    "ReconTotal",
    "RejectedRow",
    "ReplayEntry",
    "RuleCount",
    "SuiteSummary",
    "Timeliness",
    "TrendPoint",
    "UnfiledRow",
    "share_of",
]

DEFAULT_TIMELINESS_THRESHOLD = 0.95
"""Share of registrations that should reach the health department within their registration month.

The rule itself ("push within the month", docs/domain.md) is national; the target share auditors hold it
to is not, so this is only a default the caller can override per report.
"""

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def share_of(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when there is nothing to divide (a share of 0 would be a claim)."""
    return part / whole if whole > 0 else None


def _check_counts(owner: object, **counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{type(owner).__name__}.{name} must be >= 0, got {value}")


def _check_share(owner: object, name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(owner).__name__}.{name} must be within 0..1, got {value}")


def _check_month(owner: object, value: str) -> None:
    if _MONTH.fullmatch(value) is None:
        raise ValueError(f"{type(owner).__name__}.month must be YYYY-MM, got {value!r}")


@dataclass(frozen=True, slots=True)
class ReconRow:
    """Per-registrar accounting for the month: every extracted event is either valid or rejected.

    ``connector_dlq`` counts source records a connector could not turn into an event at all; they are
    outside ``extracted`` and shown beside it so nothing disappears between source and gate.
    """

    registrar: Registrar | None
    """``None`` for records that name no known registrar (their own row: a finding, not a log line)."""
    extracted: int
    valid: int
    rejected: int
    connector_dlq: int = 0
    sources: tuple[str, ...] = ()
    """For the unknown-registrar row: the ``regsync.source`` header values seen (``(none)`` if absent)."""

    def __post_init__(self) -> None:
        _check_counts(
            self,
            extracted=self.extracted,
            valid=self.valid,
            rejected=self.rejected,
            connector_dlq=self.connector_dlq,
        )

    @property
    def difference(self) -> int:
        """``extracted - (valid + rejected)``: events lost (positive) or double-counted (negative)."""
        return self.extracted - (self.valid + self.rejected)

    @property
    def balanced(self) -> bool:
        """Whether ``extracted = valid + rejected`` holds for this registrar."""
        return self.difference == 0


@dataclass(frozen=True, slots=True)
class ReconTotal:
    """The sum over all registrars.

    ``balanced`` requires every row to balance, not only the sums: a registrar that lost 3 events and
    one that double-counted 3 must not add up to a green total.
    """

    extracted: int
    valid: int
    rejected: int
    connector_dlq: int
    unbalanced_rows: int

    @property
    def difference(self) -> int:
        """``extracted - (valid + rejected)`` over all registrars."""
        return self.extracted - (self.valid + self.rejected)

    @property
    def balanced(self) -> bool:
        """True only when every registrar balances (and therefore the sums do)."""
        return self.unbalanced_rows == 0 and self.difference == 0

    @classmethod
    def of(cls, rows: Iterable[ReconRow]) -> ReconTotal:
        """Add up reconciliation rows."""
        rows = list(rows)
        return cls(
            extracted=sum(r.extracted for r in rows),
            valid=sum(r.valid for r in rows),
            rejected=sum(r.rejected for r in rows),
            connector_dlq=sum(r.connector_dlq for r in rows),
            unbalanced_rows=sum(not r.balanced for r in rows),
        )


@dataclass(frozen=True, slots=True)
class CountyVolume:
    """What one county's health department received this month, by kind of event and by verdict."""

    county_code: str
    county_name: str
    registrations: int
    changes: int
    deregistrations: int
    valid: int
    rejected: int

    def __post_init__(self) -> None:
        _check_counts(
            self,
            registrations=self.registrations,
            changes=self.changes,
            deregistrations=self.deregistrations,
            valid=self.valid,
            rejected=self.rejected,
        )


class CatalogRule(Protocol):
    """What the report needs of a rule-catalog entry (``quality.rules.Rule`` has these attributes)."""

    @property
    def id(self) -> str: ...  # noqa: D102

    @property
    def severity(self) -> Severity: ...  # noqa: D102

    @property
    def description_zh(self) -> str: ...  # noqa: D102

    @property
    def description_en(self) -> str: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class RuleCount:
    """How often one catalog rule fired this month; the descriptions come from the rule catalog."""

    rule_id: str
    severity: Severity
    description_zh: str
    description_en: str
    count: int

    def __post_init__(self) -> None:
        _check_counts(self, count=self.count)

    @classmethod
    def of(cls, rule: CatalogRule, count: int) -> RuleCount:
        """A count for a catalog rule, so the report's wording is always the catalog's."""
        return cls(rule.id, rule.severity, rule.description_zh, rule.description_en, count)


@dataclass(frozen=True, slots=True)
class Timeliness:
    """Measure (a): of the registrations *dated* in the month, how many were pushed within it.

    One row per scope: ``registrar`` and ``county_code`` both ``None`` is the overall row; only a
    registrar is that registrar's row; only a county is that county's row (all registrars). Build rows
    with :meth:`of` so ``share`` is computed, not copied. ``registrations - pushed_in_month`` were
    pushed in a later month (as far as the loaded months show).
    """

    registrar: Registrar | None
    county_code: str | None
    registrations: int
    pushed_in_month: int
    share: float | None

    def __post_init__(self) -> None:
        _check_counts(self, registrations=self.registrations, pushed_in_month=self.pushed_in_month)
        if self.pushed_in_month > self.registrations:
            raise ValueError(
                f"Timeliness.pushed_in_month ({self.pushed_in_month}) exceeds registrations "
                f"({self.registrations}) for {self.registrar}/{self.county_code}"
            )
        _check_share(self, "share", self.share)

    @classmethod
    def of(
        cls, registrar: Registrar | None, county_code: str | None, registrations: int, pushed_in_month: int
    ) -> Timeliness:
        """A row whose share is derived from the counts (``None`` when there were no registrations)."""
        share = share_of(pushed_in_month, registrations)
        return cls(registrar, county_code, registrations, pushed_in_month, share)

    @property
    def pushed_later(self) -> int:
        """Registrations of the month pushed in a later month."""
        return self.registrations - self.pushed_in_month

    @property
    def is_total(self) -> bool:
        """Whether this is the overall row (all registrars, all counties)."""
        return self.registrar is None and self.county_code is None

    @property
    def is_registrar(self) -> bool:
        """Whether this is one registrar's row (all its counties)."""
        return self.registrar is not None and self.county_code is None


@dataclass(frozen=True, slots=True)
class PushLateness:
    """Measure (b): of the pushes *received* in the month (every event type), how many were late.

    Late means the event date's month is before the month it was pushed in — the rule the loader
    stores as ``institution_events.late`` and the county packages show as 逾期推送, so this count
    equals the packages'. ``registrations``/``registrations_late`` are the registration events among
    them (what the GX ``monthly`` suite's timeliness expectation judges). Scopes as in
    :class:`Timeliness`.
    """

    registrar: Registrar | None
    county_code: str | None
    pushes: int
    late: int
    registrations: int = 0
    registrations_late: int = 0

    def __post_init__(self) -> None:
        _check_counts(
            self,
            pushes=self.pushes,
            late=self.late,
            registrations=self.registrations,
            registrations_late=self.registrations_late,
        )
        if self.late > self.pushes or self.registrations_late > self.registrations:
            raise ValueError(f"PushLateness: more late than pushed for {self.registrar}/{self.county_code}")

    @property
    def late_share(self) -> float | None:
        """Late pushes as a share of the month's pushes."""
        return share_of(self.late, self.pushes)

    @property
    def on_time_share(self) -> float | None:
        """``1 - late_share``: what the threshold is held against."""
        late = self.late_share
        return None if late is None else 1.0 - late

    @property
    def is_total(self) -> bool:
        """Whether this is the overall row."""
        return self.registrar is None and self.county_code is None

    @property
    def is_registrar(self) -> bool:
        """Whether this is one registrar's row."""
        return self.registrar is not None and self.county_code is None


@dataclass(frozen=True, slots=True)
class CrossRegistrar:
    """One institution (same USCC) reported by more than one registrar: a duplicate or a handover."""

    uscc: str
    name: str
    registrars: tuple[Registrar, ...]
    county_code: str | None


@dataclass(frozen=True, slots=True)
class LatePush:
    """One event pushed after the month of its event date (a late push, or a timeliness miss).

    ``warned`` says whether the gate attached ``LATE_PUSH`` to it. The gate judges the event's
    ``extracted_at``; the late flag uses the push instant (the Kafka timestamp), which differs for a
    DLQ replay (pushed when replayed), so the two can disagree on a record — the report lists them.
    """

    uscc: str
    name: str
    registrar: Registrar
    event_date: date
    pushed_at: datetime
    months_late: int
    event_type: EventType = EventType.ESTABLISHED
    county_code: str | None = None
    warned: bool = True

    def __post_init__(self) -> None:
        _check_counts(self, months_late=self.months_late)

    @property
    def is_late(self) -> bool:
        """Pushed in a later calendar month than its event date (the packages' 逾期推送)."""
        return self.months_late > 0


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One record rejected this month, with every violation it carries (messages masked)."""

    uscc: str | None
    name: str | None
    registrar: Registrar | None
    source: str | None
    county_code: str | None
    event_type: EventType | None
    pushed_at: datetime
    violations: tuple[tuple[str, Severity, str], ...]
    """``(rule id, severity, message in Chinese)`` in the order the gate found them."""
    connector_dlq: bool = False

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The rejecting rules (reject severity), or every rule when none is (connector DLQ)."""
        rejecting = tuple(r for r, sev, _ in self.violations if sev is Severity.REJECT)
        return rejecting or tuple(r for r, _, _ in self.violations)


@dataclass(frozen=True, slots=True)
class UnfiledRow:
    """登记未备案: a registered childcare institution with no filing in force, as of the month's end."""

    county_code: str
    uscc: str
    name: str
    registered_on: date
    days_since: int
    registrars: str

    def __post_init__(self) -> None:
        _check_counts(self, days_since=self.days_since)


@dataclass(frozen=True, slots=True)
class LoadRecon:
    """The month's load: what the manifest says it read, stored and checksummed."""

    manifest_id: int
    run_id: str
    checksum: str
    records: int
    inserted: int
    duplicates: int
    late: int
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class PackageRow:
    """One county package written for the month (the latest one per county), with its hashes."""

    county_code: str
    county_name: str
    rows: int
    late: int
    csv_sha256: str
    xlsx_sha256: str
    manifest_sha256: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BeyondGate:
    """Reconciliation past the gate: valid (Kafka) → loaded (manifest) → stored → packaged per county.

    ``load`` is ``None`` when the month is not loaded; ``packages`` is empty before the export ran.
    ``stored`` counts the store's events of the month (what the packages are cut from).
    """

    valid: int
    load: LoadRecon | None
    stored: int
    packages: Sequence[PackageRow] = ()

    @property
    def loaded_matches(self) -> bool | None:
        """Whether the manifest read exactly the valid records of the month."""
        return None if self.load is None else self.load.records == self.valid

    @property
    def packaged(self) -> int:
        """Rows over all county packages."""
        return sum(p.rows for p in self.packages)

    @property
    def packaged_matches(self) -> bool | None:
        """Whether the packages hold every stored event of the month, once."""
        return None if not self.packages else self.packaged == self.stored


@dataclass(frozen=True, slots=True)
class FailedExpectation:
    """A GX expectation that failed this month, with the USCCs (or values) it found; sample masked."""

    suite: str
    expectation_type: str
    column: str | None
    condition: str | None
    element_count: int | None
    unexpected_count: int | None
    found: Sequence[str]
    """GX's partial unexpected list, or every offending USCC for the cross-registrar check."""
    observed: str | None = None
    exception: str | None = None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One month of history, so auditors see a direction and not a single snapshot."""

    month: str
    extracted: int
    valid: int
    rejected: int
    timeliness_share: float | None
    """Measure (a) of the month: registrations dated in it, share pushed within it."""
    gx_success_rate: float | None
    late_share: float | None = None
    """Measure (b) of the month: pushes received in it, share late."""
    timeliness_provisional: bool = False
    """Measure (a) can still change: the next month is not loaded yet."""

    def __post_init__(self) -> None:
        _check_month(self, self.month)
        _check_counts(self, extracted=self.extracted, valid=self.valid, rejected=self.rejected)
        _check_share(self, "timeliness_share", self.timeliness_share)
        _check_share(self, "gx_success_rate", self.gx_success_rate)
        _check_share(self, "late_share", self.late_share)


@dataclass(frozen=True, slots=True)
class SuiteSummary:
    """One Great Expectations suite's result; ``data_docs_href`` is relative to the report's folder.

    Only relative links are accepted: the report is archived and read offline, so a link to a host or
    an absolute path would break (or leak a host name) the moment the folder moves.
    """

    suite: str
    success: bool
    evaluated: int
    failed: int
    data_docs_href: str | None = None
    failures: Sequence[FailedExpectation] = ()

    def __post_init__(self) -> None:
        _check_counts(self, evaluated=self.evaluated, failed=self.failed)
        href = self.data_docs_href
        if href is not None:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("/", "\\")):
                raise ValueError(f"SuiteSummary.data_docs_href must be a relative path, got {href!r}")

    @staticmethod
    def href_to(docs_page: Path | str, report_dir: Path | str) -> str:
        """The relative link from a report in ``report_dir`` to a Data Docs page on the same disk.

        GX gives absolute paths; the report must link relatively (see the class docstring), with ``/``
        separators and URL-quoting so a space or ``#`` in a folder name does not break the link.
        """
        relative = os.path.relpath(Path(docs_page).resolve(), Path(report_dir).resolve())
        return quote(PurePath(relative).as_posix())


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """One DLQ replay from the audit trail: who replayed what, when, and how many records."""

    who: str
    when: datetime
    what: str
    count: int

    def __post_init__(self) -> None:
        _check_counts(self, count=self.count)


@dataclass(frozen=True, slots=True)
class GapRow:
    """One county's filing gap: registered but not filed (登记未备案), and filed but not registered."""

    county_code: str
    registered_not_filed: int
    oldest_days: int | None
    filed_not_registered: int

    def __post_init__(self) -> None:
        _check_counts(
            self,
            registered_not_filed=self.registered_not_filed,
            filed_not_registered=self.filed_not_registered,
        )
        if self.oldest_days is not None:
            _check_counts(self, oldest_days=self.oldest_days)


@dataclass(frozen=True, slots=True)
class GapSummary:
    """The filing gap per county, as of the end of the report month."""

    rows: Sequence[GapRow]

    @property
    def registered_not_filed(self) -> int:
        """All counties' 登记未备案."""
        return sum(r.registered_not_filed for r in self.rows)

    @property
    def filed_not_registered(self) -> int:
        """All counties' 备案未登记."""
        return sum(r.filed_not_registered for r in self.rows)

    @property
    def oldest_days(self) -> int | None:
        """The longest any registered institution has waited to file, in days."""
        days = [r.oldest_days for r in self.rows if r.oldest_days is not None]
        return max(days) if days else None


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthlyMetrics:
    """Everything the audit report for one month shows.

    ``generated_at`` must be timezone-aware; it is shown in ``timezone`` (an IANA name such as
    ``Asia/Shanghai``, the zone whose calendar months the report counts in). ``trend`` holds the
    previous months *and* this one, oldest first. ``filing_gap`` is ``None`` when the filing store has
    no filing data yet; the report then says so instead of showing zeros.
    """

    month: str
    generated_at: datetime
    timezone: str
    reconciliation: Sequence[ReconRow]
    volumes_by_registrar: Mapping[Registrar, int] = field(default_factory=dict)
    volumes_by_county: Sequence[CountyVolume] = ()
    rejection_reasons: Sequence[RuleCount] = ()
    warnings: Sequence[RuleCount] = ()
    timeliness: Sequence[Timeliness] = ()
    cross_registrar: Sequence[CrossRegistrar] = ()
    late_pushes: Sequence[LatePush] = ()
    trend: Sequence[TrendPoint] = ()
    gx_suites: Sequence[SuiteSummary] = ()
    dlq_replays: Sequence[ReplayEntry] = ()
    filing_gap: GapSummary | None = None
    timeliness_threshold: float = DEFAULT_TIMELINESS_THRESHOLD
    timeliness_provisional: bool = True
    """Measure (a) is provisional until month M+1 is loaded (a registration of M may be pushed then)."""
    push_lateness: Sequence[PushLateness] = ()
    timeliness_misses: Sequence[LatePush] = ()
    """Registrations dated in the month pushed in a later one (measure (a)'s misses, known so far)."""
    late_warnings: int = 0
    """Valid events of the month carrying the gate's ``LATE_PUSH`` warning."""
    rejected_records: Sequence[RejectedRow] = ()
    unfiled: Sequence[UnfiledRow] = ()
    beyond_gate: BeyondGate | None = None

    def __post_init__(self) -> None:
        _check_month(self, self.month)
        if self.generated_at.tzinfo is None or self.generated_at.utcoffset() is None:
            raise ValueError("MonthlyMetrics.generated_at must be timezone-aware")
        _check_share(self, "timeliness_threshold", self.timeliness_threshold)
        _check_counts(self, **{f"volumes_by_registrar[{r}]": n for r, n in self.volumes_by_registrar.items()})

    @property
    def total(self) -> ReconTotal:
        """Reconciliation summed over registrars."""
        return ReconTotal.of(self.reconciliation)

    @property
    def rejected_share(self) -> float | None:
        """Rejected events as a share of extracted ones."""
        total = self.total
        return share_of(total.rejected, total.extracted)

    @property
    def timeliness_share(self) -> float | None:
        """Measure (a) over all registrars: the overall row's share."""
        return next((t.share for t in self.timeliness if t.is_total), None)

    @property
    def push_total(self) -> PushLateness | None:
        """Measure (b)'s overall row."""
        return next((p for p in self.push_lateness if p.is_total), None)

    @property
    def empty(self) -> bool:
        """Nothing was extracted, judged or rejected this month: the report says so, not "balanced"."""
        total = self.total
        return total.extracted == 0 and total.valid == 0 and total.rejected == 0 and total.connector_dlq == 0

    @property
    def late_flag_mismatches(self) -> list[LatePush]:
        """Late pushes the gate did not warn about (pushed later than extracted: a replay)."""
        return [p for p in self.late_pushes if not p.warned]

    @property
    def top_rejection(self) -> RuleCount | None:
        """The rule that rejected most events (first in the given order on a tie)."""
        fired = [r for r in self.rejection_reasons if r.count > 0]
        return max(fired, key=lambda r: r.count) if fired else None

    @property
    def previous(self) -> TrendPoint | None:
        """The latest trend point before this report's month (normally the month before), if any."""
        earlier = [p for p in self.trend if p.month < self.month]
        return max(earlier, key=lambda p: p.month) if earlier else None
