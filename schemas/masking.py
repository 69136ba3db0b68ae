"""Masking of personal data (PIPL) for logs, reports and exports, applied by default.

Legal representatives' resident ID numbers and phone numbers must never leave the pipeline in full
unless a consumer explicitly needs them. Every function here is total (never raises) and idempotent:
masking an already masked value gives the same value, so layers can mask defensively without
coordinating.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MASK", "mask_phone", "mask_resident_id", "mask_text"]

MASK: Final = "*"

# 18-digit resident IDs (last char may be X), fully or already masked in the middle; 15-digit
# first-generation IDs. Letters/digits around them mean "part of a longer token" (e.g. a USCC).
_ID18 = re.compile(r"(?<![0-9A-Za-z*])(\d{6})([\d*]{8})([\d*]{3}[\dXx*])(?![0-9A-Za-z*])")
_ID15 = re.compile(r"(?<![0-9A-Za-z*])(\d{6})([\d*]{5})(\d{4})(?![0-9A-Za-z*])")
_DATE8 = re.compile(r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_DATE6 = re.compile(r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
# Mobile: optional +86/86, 11 digits starting 1[3-9], optional single space/hyphen groups 3-4-4.
_MOBILE = re.compile(
    r"(?<![0-9A-Za-z*+])((?:\+?86[- ]?)?1[3-9]\d)([- ]?)([\d*]{4})([- ]?)(\d{4})(?![0-9A-Za-z*])"
)
# Landline: 0 + 2-3 digit area code, separator or parentheses, 7-8 digit local number.
_LANDLINE = re.compile(r"(?<![0-9A-Za-z*])(\(?0\d{2,3}\)?[- ]?)([\d*]{3,4})([- ]?)(\d{4})(?![0-9A-Za-z*])")


def mask_resident_id(value: str | None) -> str:
    """Keep the first 6 (region) and last 4 characters: ``110105********123X``.

    15-digit legacy IDs keep 6 + 4 as well. Anything else is masked conservatively: 2 + 2 kept for
    8–14 characters, nothing kept below 8, so a malformed ID never leaks more than a valid one.
    """
    if not value:
        return ""
    text = value.strip()
    n = len(text)
    if n >= 15:
        return text[:6] + MASK * (n - 10) + text[-4:]
    if n >= 8:
        return text[:2] + MASK * (n - 4) + text[-2:]
    return MASK * n


def mask_phone(value: str | None) -> str:
    """Mask a phone number: mobile ``138****5678``, landline ``010-****5678`` (area code kept).

    Separators and a ``+86`` prefix are preserved. A value that is neither keeps only its last 4
    digits visible.
    """
    if not value:
        return ""
    text = value.strip()
    mobile = _MOBILE.fullmatch(text)
    if mobile is not None:
        return _mask_mobile(mobile)
    landline = _LANDLINE.fullmatch(text)
    if landline is not None:
        return _mask_landline(landline)
    hide = set([i for i, ch in enumerate(text) if ch.isdigit()][:-4])
    return "".join(MASK if i in hide else ch for i, ch in enumerate(text))


def mask_text(text: str | None) -> str:
    """Mask resident IDs and phone numbers embedded in free text (log lines, remarks, addresses).

    A digit run is treated as an ID only when its birth-date part looks like a date (characters 7–14
    of 18, YYYYMMDD 1900–2099; 7–12 of 15, YYMMDD), so all-digit credit codes and old 15-digit business
    registration numbers mostly survive. Limits: IDs or phones split by other characters, written
    with full-width digits, or glued to letters (``tel13812345678``) are not recognised.
    """
    if not text:
        return ""
    text = _ID18.sub(_mask_id18_match, text)
    text = _ID15.sub(_mask_id15_match, text)
    text = _MOBILE.sub(_mask_mobile, text)
    return _LANDLINE.sub(_mask_landline, text)


def _mask_id18_match(match: re.Match[str]) -> str:
    head, middle, tail = match.groups()
    if MASK not in middle and _DATE8.fullmatch(middle) is None:
        return match.group(0)  # not an ID (e.g. an all-digit credit code)
    return head + MASK * len(middle) + tail


def _mask_id15_match(match: re.Match[str]) -> str:
    head, middle, tail = match.groups()
    if MASK not in middle and _DATE6.fullmatch(match.group(0)[6:12]) is None:
        return match.group(0)
    return head + MASK * len(middle) + tail


def _mask_mobile(match: re.Match[str]) -> str:
    head, sep1, middle, sep2, tail = match.groups()
    return head + sep1 + MASK * len(middle) + sep2 + tail


def _mask_landline(match: re.Match[str]) -> str:
    area, middle, sep, tail = match.groups()
    return area + MASK * len(middle) + sep + tail
