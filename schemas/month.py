"""A calendar month as a value, and the one place the default time zone is written down.

Month strings (``2026-03``) used to be parsed in the loader, the load stage, the exports and the
demo, each its own way. :class:`Month` parses once, fails with a :class:`ConfigurationError` that
names the bad value, and gives the half-open instant range ``[start, end)`` a month covers in a
zone — the window the monthly load, the report and the packages all cut by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.errors import ConfigurationError

__all__ = ["DEFAULT_TIMEZONE", "Month", "zone"]

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
"""Beijing time: the registrars' calendar months (登记当月) are counted in it unless configured."""

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def zone(name: str | None = None) -> tzinfo:
    """The named zone (default :data:`DEFAULT_TIMEZONE`); an unknown name is a configuration error."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Asia/Shanghai"
        ) from exc


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """One calendar month; ``str(Month(2026, 3)) == "2026-03"``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (1 <= self.month <= 12 and 1900 <= self.year <= 9999):
            raise ConfigurationError(
                f"no such month: {self.year:04d}-{self.month:02d}", hint="write it as YYYY-MM"
            )

    @classmethod
    def parse(cls, text: str | Month) -> Month:
        """``"2026-03"`` → ``Month(2026, 3)``; anything else is a :class:`ConfigurationError`."""
        if isinstance(text, Month):
            return text
        match = _MONTH.match(str(text).strip())
        if not match:
            raise ConfigurationError(
                f"month must look like 2026-03, got {text!r}", hint="write it as YYYY-MM"
            )
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, moment: datetime, tz: str | None = None) -> Month:
        """The month an aware instant falls in, in ``tz``."""
        local = moment.astimezone(zone(tz))
        return cls(local.year, local.month)

    def next(self) -> Month:
        """The month after this one."""
        return Month(self.year + (self.month == 12), self.month % 12 + 1)

    def previous(self) -> Month:
        """The month before this one."""
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def bounds(self, tz: str | None = None) -> tuple[datetime, datetime]:
        """First instant of this month and of the next, in ``tz``: the half-open range ``[start, end)``."""
        where = zone(tz)
        nxt = self.next()
        return datetime(self.year, self.month, 1, tzinfo=where), datetime(
            nxt.year, nxt.month, 1, tzinfo=where
        )

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
