"""Synthetic events for the sink's tests and benchmarks — generated lazily, never held whole.

The registrar simulators (``simulators/``) model the source systems; the sink only needs events as
they arrive from ``registrations.valid``, in volumes up to a million per month, without Kafka. So:
:func:`make_event` builds one realistic event, and :func:`synthetic_month` yields a month of
positioned records (USCC-keyed partitions, per-partition increasing offsets, partitions
interleaved as a consumer would see them) from a seed, in constant memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    LegalRepresentative,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    ServiceForm,
)
from schemas.month import DEFAULT_TIMEZONE
from schemas.uscc import ALPHABET, make_uscc
from sink.loader import PositionedEvent

__all__ = ["COUNTIES", "make_event", "synthetic_month", "uscc_for"]

COUNTIES: tuple[str, ...] = ("441802", "441803", "370102", "370103")
"""Current county codes used by default (清城区, 清新区, 历下区, 市中区)."""

_SHANGHAI = ZoneInfo(DEFAULT_TIMEZONE)
_PREFIX = {Registrar.SHICHANG: ("9", "1"), Registrar.SHENPI: ("9", "1"), Registrar.MINZHENG: ("5", "2")}
_FORM = {"1": LegalForm.ENTERPRISE, "2": LegalForm.PRIVATE_NON_ENTERPRISE}


def uscc_for(serial: int, *, registrar: Registrar = Registrar.SHICHANG, division: str = "441800") -> str:
    """A valid USCC (both check digits) derived from a serial number."""
    reg, cat = _PREFIX.get(registrar, ("1", "2"))
    body, n = [], serial
    for _ in range(8):
        n, digit = divmod(n, len(ALPHABET))
        body.append(ALPHABET[digit])
    return make_uscc(reg, cat, division, "".join(reversed(body)))


def make_event(
    uscc: str,
    event_type: EventType = EventType.ESTABLISHED,
    event_date: date = date(2025, 3, 10),
    *,
    registrar: Registrar = Registrar.SHICHANG,
    county: str | None = "441802",
    version: int | str = 1,
    extracted_at: datetime | None = None,
    name: str | None = None,
    status: InstitutionStatus = InstitutionStatus.ACTIVE,
    scope: str = "托育服务；3岁以下婴幼儿照护服务",
    rep: LegalRepresentative | None = None,
    address: str | None = None,
    changed: Sequence[FieldChange] = (),
    move: JurisdictionMove | None = None,
    record_id: str | None = None,
) -> RegistrationEvent:
    """One event with a plausible institution snapshot; the id follows registrar/record/version."""
    _, cat = _PREFIX.get(registrar, ("1", "2"))
    institution = Institution(
        uscc=uscc,
        name=name or f"清远市{uscc[-6:]}托育有限公司",
        legal_form=_FORM.get(cat, LegalForm.PUBLIC_INSTITUTION),
        profit_nature=ProfitNature.FOR_PROFIT if cat == "1" else ProfitNature.NON_PROFIT,
        address=address or f"广东省清远市清城区凤城街道{int(uscc[-4:], 36) % 200 + 1}号",
        business_scope=scope,
        status=status,
        county_code=county,
        county_resolution=CountyResolution(CountyResolutionMethod.ADDRESS, 0.9)
        if county
        else CountyResolution(CountyResolutionMethod.UNRESOLVED, 0.0),
        legal_representative=rep or LegalRepresentative("张三", "441802********123X", True, "138****5678"),
        registered_capital=Decimal("50.000000"),
        service_forms=(ServiceForm.FULL_DAY, ServiceForm.HOURLY),
        capacity=60,
    )
    moment = extracted_at or datetime.combine(event_date, datetime.min.time(), _SHANGHAI) + timedelta(
        hours=10
    )
    return RegistrationEvent.build(
        event_type=event_type,
        registrar=registrar,
        event_date=event_date,
        extracted_at=moment,
        institution=institution,
        lineage=Lineage(
            f"{registrar.value.lower()}-sim", record_id or uscc, str(version), "sink.synthetic", None
        ),
        changed_fields=changed,
        jurisdiction=move,
    )


def synthetic_month(
    n_events: int,
    *,
    month: str = "2025-03",
    partitions: int = 3,
    seed: int = 0,
    late_rate: float = 0.1,
    counties: Sequence[str] = COUNTIES,
    start_serial: int = 0,
    first_offset: int = 0,
    record_prefix: str = "R",
) -> Iterator[PositionedEvent]:
    """Yield ``n_events`` records of one month: each institution 设立, then maybe 变更 and 注销.

    Each institution's events go to one partition (``serial % partitions``), as a USCC key would,
    and are yielded in order; consecutive institutions alternate partitions, so the stream
    interleaves them. ``late_rate`` of the 设立 events carry a date in the previous month. The same
    ``seed`` and ``start_serial`` give the same institutions; vary ``record_prefix`` to get new
    event ids for them (a later month), and ``first_offset`` to place them later in the partitions.
    """
    rng = random.Random(seed)
    year, mon = int(month[:4]), int(month[5:])
    first = date(year, mon, 1)
    offsets = [first_offset] * partitions
    produced, serial = 0, start_serial
    while produced < n_events:
        registrar = rng.choice((Registrar.SHICHANG, Registrar.SHENPI, Registrar.MINZHENG))
        county = counties[serial % len(counties)]
        uscc = uscc_for(serial, registrar=registrar, division=county[:4] + "00")
        partition = serial % partitions
        day = first + timedelta(days=rng.randrange(27))
        established = first - timedelta(days=rng.randint(3, 20)) if rng.random() < late_rate else day
        kinds = [(EventType.ESTABLISHED, established)]
        if rng.random() < 0.3:
            kinds.append((EventType.CHANGED, day))
            if rng.random() < 0.2:
                kinds.append((EventType.DEREGISTERED, day + timedelta(days=1)))
        for version, (kind, when) in enumerate(kinds[: n_events - produced], start=1):
            status = (
                InstitutionStatus.DEREGISTERED if kind is EventType.DEREGISTERED else InstitutionStatus.ACTIVE
            )
            changed = (
                (FieldChange("legal_representative.name", "张三", "李四"),)
                if kind is EventType.CHANGED
                else ()
            )
            pushed = datetime.combine(max(when, day), datetime.min.time(), _SHANGHAI) + timedelta(
                hours=9 + version
            )
            event = make_event(
                uscc,
                kind,
                when,
                registrar=registrar,
                county=county,
                version=version,
                extracted_at=pushed,
                status=status,
                changed=changed,
                record_id=f"{record_prefix}{serial:09d}",
            )
            yield PositionedEvent(
                partition, offsets[partition], int(pushed.astimezone(UTC).timestamp() * 1000), event
            )
            offsets[partition] += 1
            produced += 1
        serial += 1
