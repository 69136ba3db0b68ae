"""Who is asking, and which part of the country they may see — the one place scope is decided.

:class:`Principal` is the caller (a signed-in user, a roster-API token, or anonymous). Its
``region`` is a division-code prefix: a county bureau's 6 digits, a city's 4, a province's 2, and
``""`` for auditors and admins (everything). :meth:`Principal.where` turns it into the SQL predicate
that every query of institutions, events, packages, filings, gap lists and receipts applies to its
county column, so no page decides scope on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

__all__ = ["ANONYMOUS", "Principal", "prefix_range"]

STAFF = ("bureau", "city", "province", "auditor", "admin")


def prefix_range(prefix: str) -> tuple[str, str]:
    """``[low, high)`` bounds of the codes starting with ``prefix`` (an index range, any collation).

    Division codes are digit strings of equal length, so ``3701`` → ``["3701", "3702")``.
    """
    high = str(int(prefix) + 1).zfill(len(prefix))
    return prefix, high


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: kind ``user`` / ``token`` / ``anonymous``, role, region prefix, display name."""

    kind: str
    role: str
    region: str
    name: str
    id: int | None = None

    @property
    def is_staff(self) -> bool:
        """A signed-in account (any role)."""
        return self.kind == "user" and self.role in STAFF

    @property
    def sees_all(self) -> bool:
        """Auditors and admins see every county."""
        return self.role in ("auditor", "admin")

    def covers(self, county_code: str | None) -> bool:
        """Whether a county lies in this principal's region (the Python twin of :meth:`where`)."""
        if self.kind == "anonymous":
            return False
        if self.sees_all:
            return True
        return bool(county_code) and str(county_code).startswith(self.region) and bool(self.region)

    def where(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """The predicate restricting ``column`` (a county code) to this principal's region."""
        if self.kind == "anonymous":
            return sa.false()
        if self.sees_all:
            return sa.true()
        if not self.region:
            return sa.false()
        if len(self.region) == 6:
            return column == self.region
        low, high = prefix_range(self.region)
        return sa.and_(column >= low, column < high)


ANONYMOUS = Principal("anonymous", "anonymous", "", "-")
