"""Resident identity card numbers (居民身份证号码, GB 11643) of legal representatives.

Built on ``stdnum.cn.ric``, which is correct for this (length, digits, GB 11643 check digit, birth date,
and the region code valid in the birth year). Unlike stdnum it never raises: the gate needs every
problem as a stable finding id, and a bad ID in source data is a quality finding, not a crash.

The result is personal information (PIPL): its ``repr`` shows only the masked number, so logging a
result never leaks the ID or the birth date.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from schemas.masking import mask_resident_id

__all__ = ["ResidentIdResult", "is_valid", "parse_resident_id"]

_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True, slots=True)
class ResidentIdResult:
    """What :func:`parse_resident_id` found; findings are stable ids.

    Finding ids: ``empty``, ``legacy_15_digit`` (first-generation IDs, expired since 2013), ``length``,
    ``format``, ``check_digit``, ``birth_date``, ``birth_date_future``, ``region`` (the first six digits
    were not a region code in the birth year).
    """

    masked: str
    findings: tuple[str, ...] = ()
    number: str = field(default="", repr=False)
    birth_date: dt.date | None = field(default=None, repr=False)

    @property
    def is_valid(self) -> bool:
        """True when nothing was found wrong."""
        return not self.findings


def parse_resident_id(value: object, *, today: dt.date | None = None) -> ResidentIdResult:
    """Check a resident ID number and extract the birth date; never raises.

    ``today`` makes the future-birth-date check reproducible (the pipeline replays history "as of").
    """
    text = "" if value is None else str(value)
    number = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()
    masked = mask_resident_id(number)
    if not number:
        return ResidentIdResult(masked, ("empty",), number)
    if len(number) == 15 and number.isdigit():
        return ResidentIdResult(masked, ("legacy_15_digit",), number)
    if len(number) != 18:
        return ResidentIdResult(masked, ("length",), number)
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return ResidentIdResult(masked, ("format",), number)

    findings: list[str] = []
    if ric.calc_check_digit(number) != number[17]:
        findings.append("check_digit")
    birth: dt.date | None
    try:
        birth = ric.get_birth_date(number)
    except ValidationError:
        birth = None
        findings.append("birth_date")
    if birth is not None:
        if birth > (today or dt.date.today()):
            findings.append("birth_date_future")
        # The region is where the number was *issued*, which can be decades after birth (18-digit
        # numbers date from 1999): a county created after the birth year is normal. Accept a code
        # that existed in any year from the birth year to now (sampled at birth, 1999, 2010, now).
        now = (today or dt.date.today()).year
        years = {birth.year, max(birth.year, 1999), max(birth.year, 2010), now}
        if not any(_region_valid_in(number[:6], year) for year in sorted(years)):
            findings.append("region")
    return ResidentIdResult(masked, tuple(findings), number, birth)


@lru_cache(maxsize=65536)
def _region_valid_in(region: str, year: int) -> bool:
    """Whether ``region`` was a county code in ``year``, as ``ric.get_birth_place`` decides.

    stdnum's lookup walks its region table on every call (~70 µs, most of a validation); only the
    region and the birth year matter, and they repeat across a register, so the answer is cached.
    """
    try:
        ric.get_birth_place(f"{region}{year:04d}0101000X")
    except (ValidationError, KeyError):  # KeyError: stdnum lacks a county for e.g. 330113 临平区
        return False
    return True


def is_valid(value: object) -> bool:
    """Shorthand for ``parse_resident_id(value).is_valid``."""
    return parse_resident_id(value).is_valid
