"""Unified Social Credit Code (统一社会信用代码, GB 32100-2015).

Hand-written rather than taken from ``stdnum.cn.uscc``: python-stdnum requires positions 1–8 to be
digits, so it rejects legal codes issued by registrars ``A`` (中央军委改革和编制办公室), ``N`` (农业) and
``Y`` (其他), and it never checks the embedded GB 11714 organisation-code check digit (position 17).
The gate needs both, and it needs *why* a code failed, so :func:`parse` returns a result object with
stable finding ids instead of only raising.

Layout of the 18 characters (1-based positions)::

    1      registrar (登记管理部门代码)
    2      category (机构类别代码), meaning depends on the registrar
    3–8    division code of the issuing registrar at issue time (informational only!)
    9–17   organisation code (GB 11714): 8 body characters + 1 check character
    18     check character over positions 1–17
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from operator import mul
from typing import Final

from schemas.errors import RecordError

__all__ = [
    "ALPHABET",
    "CATEGORIES",
    "LEGACY_PILOT_CODES",
    "REGISTRARS",
    "Finding",
    "InvalidUsccError",
    "Severity",
    "UsccResult",
    "compute_check_digit",
    "compute_org_check_digit",
    "is_valid",
    "make_uscc",
    "normalize",
    "parse",
    "random_uscc",
    "validate",
]

ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters GB 32100 allows; I, O, S, V and Z are excluded to avoid misreading."""

_VALUE: Final = {ch: i for i, ch in enumerate(ALPHABET)}
_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))  # Wi = 3^(i-1) mod 31

# GB 11714 values the body over the *full* Latin alphabet (A=10 … Z=35), not the 31-char one.
_ORG_VALUE: Final = {ch: i for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)

REGISTRARS: Final[dict[str, str]] = {
    "1": "机构编制",
    "2": "外交",
    "3": "司法行政",
    "4": "文化",
    "5": "民政",
    "6": "旅游",
    "7": "宗教",
    "8": "工会",
    "9": "工商/市场监管",
    "A": "中央军委改革和编制办公室",
    "N": "农业",
    "Y": "其他",
}
"""Position 1: the registration authority (登记管理部门)."""

CATEGORIES: Final[dict[str, dict[str, str]]] = {
    "1": {"1": "机关", "2": "事业单位", "3": "群众团体", "9": "其他"},
    "5": {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"},
    "9": {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"},
}
"""Position 2 per registrar, as far as this project needs them (docs/domain.md); others are 'unknown'."""

LEGACY_PILOT_CODES: Final[frozenset[str]] = frozenset(
    {
        # Fujian/Xiamen pilot (2015): org check digit is fine, the GB 32100 check digit is not
        # (computed '1', printed 'M'), yet the code was issued and is in use. Cited in docs/domain.md.
        "91350100M0001TGQXM",
    }
)
"""Codes issued during the early pilots that fail a check digit but are legal.

Kept deliberately small: only add a code with a source showing it was really issued. A match is a
``legacy_pilot`` warning, never a rejection.
"""

_WHITESPACE = re.compile(r"\s+")
_IN_ALPHABET = re.compile(f"[{ALPHABET}]{{18}}")
#: GB 11714's check character by the weighted sum mod 11: 11 - r, with 10 as X and 11 as 0.
_ORG_CHECK: Final[tuple[str, ...]] = tuple({10: "X", 11: "0"}.get(11 - r, str(11 - r)) for r in range(11))


class Severity(StrEnum):
    """How a finding should be treated by callers (the gate maps these onto its rule severities)."""

    ERROR = "error"
    WARN = "warn"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation about a code; ``id`` is stable so rules and reports can key on it."""

    id: str
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class UsccResult:
    """Everything :func:`parse` learned about a code, so callers never re-derive it.

    ``division_code`` is the issuing registrar's division *at issue time*. It never changes when
    counties are merged or renamed and is often prefecture-level: **never route an institution to a
    county by it**; route by the premises address or the division the source system states.
    """

    raw: str
    code: str
    registrar_code: str | None = None
    registrar_name: str | None = None
    category_code: str | None = None
    category_name: str | None = None
    division_code: str | None = None
    org_code: str | None = None
    findings: tuple[Finding, ...] = field(default=())

    @property
    def is_valid(self) -> bool:
        """True when no finding is an error (warnings such as ``legacy_pilot`` do not invalidate)."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def finding_ids(self) -> tuple[str, ...]:
        """The ids of all findings, in the order they were raised."""
        return tuple(f.id for f in self.findings)

    def has(self, finding_id: str) -> bool:
        """Whether a finding with this id was raised."""
        return finding_id in self.finding_ids


class InvalidUsccError(RecordError, ValueError):
    """Raised by :func:`validate`; carries the full result so the caller can report every finding."""

    def __init__(self, result: UsccResult) -> None:
        self.result = result
        ids = ", ".join(f.id for f in result.findings if f.severity is Severity.ERROR)
        super().__init__(f"invalid USCC {result.code!r}: {ids}")


def normalize(value: str) -> str:
    """Fold full-width characters, drop all whitespace and upper-case, as registrars' exports vary."""
    if value.isascii():  # NFKC leaves ASCII as it is; most codes are ASCII letters and digits already
        return (value if value.isalnum() else _WHITESPACE.sub("", value)).upper()
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", value)).upper()


def compute_check_digit(first17: str) -> str:
    """Return the GB 32100 check character (position 18) for the first 17 characters.

    Raises ValueError on bad input: this is a building block for generators, not for data checks.
    """
    if len(first17) != 17 or any(ch not in _VALUE for ch in first17):
        raise ValueError(f"need 17 characters from the USCC alphabet, got {first17!r}")
    return _check_digit(first17)


def _check_digit(first17: str) -> str:
    """:func:`compute_check_digit` of characters already checked (:func:`parse` checks all 18 first)."""
    total: int = sum(map(mul, map(_VALUE.__getitem__, first17), _WEIGHTS))
    return ALPHABET[-total % 31]  # (31 - total mod 31) mod 31


def compute_org_check_digit(body8: str) -> str:
    """Return the GB 11714 check character for an 8-character organisation-code body."""
    if len(body8) != 8 or any(ch not in _ORG_VALUE for ch in body8):
        raise ValueError(f"need 8 characters 0-9/A-Z, got {body8!r}")
    return _org_check_digit(body8)


def _org_check_digit(body8: str) -> str:
    """:func:`compute_org_check_digit` of characters already checked (the USCC alphabet is within 0-9/A-Z)."""
    total: int = sum(map(mul, map(_ORG_VALUE.__getitem__, body8), _ORG_WEIGHTS))
    return _ORG_CHECK[total % 11]


def parse(value: object) -> UsccResult:
    """Parse and check a code without raising; every problem becomes a :class:`Finding`."""
    raw = value if isinstance(value, str) else ("" if value is None else str(value))
    code = normalize(raw)
    if len(code) != 18:
        return UsccResult(raw, code, findings=(_err("format", f"length {len(code)}, expected 18"),))
    bad = [] if _IN_ALPHABET.fullmatch(code) else sorted({ch for ch in code if ch not in _VALUE})
    if bad:
        return UsccResult(
            raw, code, findings=(_err("format", f"characters outside the GB 32100 alphabet: {''.join(bad)}"),)
        )

    findings: list[Finding] = []
    registrar, category, division, org = code[0], code[1], code[2:8], code[8:17]
    registrar_name = REGISTRARS.get(registrar)
    if registrar_name is None:
        findings.append(_err("registrar", f"unknown registrar code {registrar!r}"))
    category_name = CATEGORIES.get(registrar, {}).get(category)
    if registrar_name is not None and category_name is None:
        findings.append(
            Finding("unknown_category", Severity.INFO, f"category {registrar}{category} not in the table")
        )
    if not division.isdigit():
        findings.append(_err("division_format", f"positions 3-8 must be digits, got {division!r}"))

    failed: list[Finding] = []
    expected_org = _org_check_digit(org[:8])
    if org[8] != expected_org:
        failed.append(_err("org_check_digit", f"position 17 is {org[8]!r}, GB 11714 gives {expected_org!r}"))
    expected = _check_digit(code[:17])
    if code[17] != expected:
        failed.append(_err("check_digit", f"position 18 is {code[17]!r}, GB 32100 gives {expected!r}"))
    if failed and code in LEGACY_PILOT_CODES:
        ids = "+".join(f.id for f in failed)
        findings.append(Finding("legacy_pilot", Severity.WARN, f"known early pilot code; fails {ids}"))
    else:
        findings.extend(failed)

    return UsccResult(
        raw=raw,
        code=code,
        registrar_code=registrar,
        registrar_name=registrar_name,
        category_code=category,
        category_name=category_name,
        division_code=division,
        org_code=org,
        findings=tuple(findings),
    )


def is_valid(value: object) -> bool:
    """Shorthand for ``parse(value).is_valid``."""
    return parse(value).is_valid


def validate(value: object) -> str:
    """Return the normalized code or raise :class:`InvalidUsccError` (for callers that must stop)."""
    result = parse(value)
    if not result.is_valid:
        raise InvalidUsccError(result)
    return result.code


def make_uscc(registrar: str, category: str, division6: str, org_body8: str) -> str:
    """Build a fully valid code (both check digits), e.g. for the registrar simulators.

    ``org_body8`` must use the 31-character alphabet too, because the whole USCC does.
    """
    if registrar not in REGISTRARS:
        raise ValueError(f"unknown registrar code {registrar!r}")
    if len(category) != 1 or category not in _VALUE:
        raise ValueError(f"category must be one character of the alphabet, got {category!r}")
    if len(division6) != 6 or not division6.isdigit():
        raise ValueError(f"division must be 6 digits, got {division6!r}")
    if len(org_body8) != 8 or any(ch not in _VALUE for ch in org_body8):
        raise ValueError(f"org body must be 8 characters of the USCC alphabet, got {org_body8!r}")
    first17 = registrar + category + division6 + org_body8 + compute_org_check_digit(org_body8)
    return first17 + compute_check_digit(first17)


def random_uscc(
    rng: random.Random, *, registrar: str = "9", category: str = "1", division6: str = "110105"
) -> str:
    """Fabricate a realistic valid code with a random org body; pass a seeded ``rng`` for determinism."""
    return make_uscc(registrar, category, division6, "".join(rng.choice(ALPHABET) for _ in range(8)))


def _err(finding_id: str, message: str) -> Finding:
    return Finding(finding_id, Severity.ERROR, message)
