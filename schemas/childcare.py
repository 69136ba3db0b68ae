"""Is this registration a childcare institution (托育机构, under-3s)? A keyword classifier that explains itself.

The market register holds every company; the pipeline must pick the childcare slice without losing
real ones (家庭托育点 with only 家庭托育服务 in scope) or admitting look-alikes: school-age 托管/午托,
disability 托养, elder 托老, and 早教 centres. Auditors must see *why* a record was or was not taken, so
the verdict carries the matched terms, the exclusions, and any negated mentions.

Rules (docs/domain.md "Recognising childcare"):

* A *strong* include (托育, 婴幼儿照护, 3岁以下婴幼儿, 托儿所, 托班, 乳儿班/托小班/托大班, 家庭托育…) makes it
  childcare, whatever exclusions also appear.
* A *weak* include (the service forms 全日托/半日托/计时托/临时托, also used for elder or school-age care)
  counts only when no exclusion appears.
* Exclusions (托管, 午托, 晚托, 托养, 早教/早期教育; plus 托老 and 托运, which docs/domain.md does not list) decide
  "not childcare" when no strong include is present.
* Industry code 8020 (托儿所服务, GB/T 4754-2017) counts as a strong include; 8310 (学前教育) alone does not.

Substring traps are handled by spans: an include that overlaps an exclusion (全日托|管, 午|托班,
临时托|运) is dropped, and a more specific term hides the one it contains (家庭托育 hides 托育).

Negation: a term inside "不含/不包含/不包括/不得从事/不从事/不涉及/不开展/不提供/禁止 …" (up to the end of the
clause: ，；。 or a closing bracket), inside "除…外/以外/之外", or in a clause ending with "除外" is reported
as negated and ignored. Limits: "非" is not treated as negation (非营利性托育机构 is childcare), double
negations and negations spanning clauses are not understood, and a phrase such as "未经许可不得开展托育" is
read as negated — such records come out "not childcare" with the negated term shown, for review.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "CHILDCARE_INDUSTRY_CODES",
    "EXCLUDE_TERMS",
    "INCLUDE_TERMS",
    "NON_CHILDCARE_INDUSTRY_CODES",
    "ChildcareVerdict",
    "Term",
    "TermMatch",
    "classify",
]


@dataclass(frozen=True, slots=True)
class Term:
    """A keyword: ``label`` is what auditors see, ``pattern`` a regular expression."""

    label: str
    pattern: str
    strong: bool = True

    @classmethod
    def literal(cls, text: str, *, strong: bool = True) -> Term:
        """A term matched as plain text."""
        return cls(text, re.escape(text), strong)


INCLUDE_TERMS: Final[tuple[Term, ...]] = (
    Term.literal("托育"),
    Term.literal("托育园"),
    Term.literal("托育中心"),
    Term.literal("托育点"),
    Term.literal("托育机构"),
    Term.literal("家庭托育"),
    Term.literal("婴幼儿照护"),
    Term("3岁以下婴幼儿", r"(?:3|三)周?岁以下(?:的)?婴幼儿|0\s*[-~～至到—–]\s*3\s*周?岁"),
    Term.literal("托儿所"),
    Term.literal("托班"),
    Term.literal("乳儿班"),
    Term.literal("托小班"),
    Term.literal("托大班"),
    Term.literal("全日托", strong=False),
    Term.literal("半日托", strong=False),
    Term.literal("计时托", strong=False),
    Term.literal("临时托", strong=False),
)
"""Default include keywords; weak ones only count when no exclusion is present."""

EXCLUDE_TERMS: Final[tuple[Term, ...]] = (
    Term.literal("托管"),
    Term.literal("学生托管"),
    Term.literal("课后托管"),
    Term.literal("午托"),
    Term.literal("晚托"),
    Term.literal("托养"),
    Term.literal("早教"),
    Term.literal("早期教育"),
    Term.literal("托老"),  # elder day care (日间托老); not in docs/domain.md, guards 全日托老
    Term.literal("托运"),  # freight; not in docs/domain.md, guards 临时托运
)
"""Default exclusion keywords (false positives unless a strong include also appears)."""

CHILDCARE_INDUSTRY_CODES: Final[Mapping[str, str]] = {"8020": "托儿所服务"}
NON_CHILDCARE_INDUSTRY_CODES: Final[Mapping[str, str]] = {"8310": "学前教育"}
"""Industry codes mentioned in reasons but never counted on their own (a kindergarten needs 托班)."""

_FULLWIDTH_ALNUM: Final = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_NEGATION: Final = re.compile(
    r"(?:不含|不包含|不包括|不得从事|不从事|不涉及|不开展|不提供|禁止)[^，,；;。）)\]】]*"
    r"|除[^，,；;。）)\]】]*?(?:以外|之外|外)"
    r"|[^，,；;。（(）)\[\]【】、]*除外"
)


@dataclass(frozen=True, slots=True)
class TermMatch:
    """One keyword occurrence: where it was found (``scope``, ``name`` or ``industry``) and the text."""

    term: str
    where: str
    text: str
    start: int


@dataclass(frozen=True, slots=True)
class ChildcareVerdict:
    """The decision and its evidence.

    ``rule`` is a stable id: ``include``, ``industry``, ``weak_include``, ``weak_include_excluded``,
    ``excluded``, ``no_include``.
    """

    is_childcare: bool
    rule: str
    reason: str
    includes: tuple[TermMatch, ...] = ()
    excludes: tuple[TermMatch, ...] = ()
    negated: tuple[TermMatch, ...] = ()

    @property
    def include_terms(self) -> tuple[str, ...]:
        """Distinct include labels, in order of appearance."""
        return _labels(self.includes)

    @property
    def exclude_terms(self) -> tuple[str, ...]:
        """Distinct exclusion labels, in order of appearance."""
        return _labels(self.excludes)

    @property
    def negated_terms(self) -> tuple[str, ...]:
        """Distinct include labels that appeared only under a negation."""
        return _labels(self.negated)

    @property
    def in_scope(self) -> bool:
        """Whether an include term was found in the business scope itself (Art. 5 wants 托育服务 there)."""
        return any(m.where == "scope" for m in self.includes)


def classify(
    scope: str | None,
    name: str | None = None,
    industry_code: str | None = None,
    *,
    include: Sequence[Term | str] = INCLUDE_TERMS,
    exclude: Sequence[Term | str] = EXCLUDE_TERMS,
    industry_codes: Mapping[str, str] = CHILDCARE_INDUSTRY_CODES,
) -> ChildcareVerdict:
    """Decide whether a registration is a childcare institution, from scope, name and industry code.

    Custom keyword lists may mix :class:`Term` objects and plain strings (plain strings are strong).
    """
    if include is INCLUDE_TERMS and exclude is EXCLUDE_TERMS:
        lexicon = _DEFAULT_LEXICON
    else:
        lexicon = _lexicon(tuple(include), tuple(exclude))
    includes: list[TermMatch] = []
    excludes: list[TermMatch] = []
    negated: list[TermMatch] = []
    for where, raw in (("scope", scope), ("name", name)):
        if raw:
            kept, dropped_exc, neg = _scan(_normalize(raw), where, lexicon)
            includes += kept
            excludes += dropped_exc
            negated += neg

    industry = _normalize_industry(industry_code)
    if industry is not None and industry in industry_codes:
        includes.append(TermMatch(f"行业{industry} {industry_codes[industry]}", "industry", industry, 0))

    strong = [m for m in includes if m.where == "industry" or m.term in lexicon.strong_labels]
    weak = [m for m in includes if m not in strong]
    notes = _notes(negated, industry, industry_codes)
    if strong:
        rule = "industry" if all(m.where == "industry" for m in strong) else "include"
        reason = f"include {_join(strong)}"
        if excludes:
            reason += f"; overrides exclusion {_join(excludes)}"
        return ChildcareVerdict(True, rule, reason + notes, tuple(includes), tuple(excludes), tuple(negated))
    if weak and not excludes:
        reason = f"service-form include {_join(weak)} and no exclusion"
        return ChildcareVerdict(True, "weak_include", reason + notes, tuple(includes), (), tuple(negated))
    if weak:
        reason = f"only service-form include {_join(weak)} alongside exclusion {_join(excludes)}"
        rule = "weak_include_excluded"
    elif excludes:
        reason, rule = f"exclusion {_join(excludes)} and no include term", "excluded"
    else:
        reason, rule = "no include term", "no_include"
    return ChildcareVerdict(False, rule, reason + notes, tuple(includes), tuple(excludes), tuple(negated))


@dataclass(frozen=True, slots=True)
class _Lexicon:
    include: tuple[Term, ...]
    exclude: tuple[Term, ...]
    strong_labels: frozenset[str]
    any_term: re.Pattern[str]


@lru_cache(maxsize=32)
def _lexicon(include: tuple[Term | str, ...], exclude: tuple[Term | str, ...]) -> _Lexicon:
    """Compile a keyword configuration once; classify() is called millions of times in a backfill."""
    inc = tuple(_as_term(t) for t in include)
    exc = tuple(_as_term(t) for t in exclude)
    combined = "|".join(f"(?:{t.pattern})" for t in (*inc, *exc)) or r"(?!)"
    return _Lexicon(inc, exc, frozenset(t.label for t in inc if t.strong), re.compile(combined))


def _scan(
    text: str, where: str, lexicon: _Lexicon
) -> tuple[list[TermMatch], list[TermMatch], list[TermMatch]]:
    if lexicon.any_term.search(text) is None:
        return [], [], []  # the common case in a market register: one regex pass, nothing to explain
    inc_terms, exc_terms = lexicon.include, lexicon.exclude
    negated_spans = [m.span() for m in _NEGATION.finditer(text)]

    def is_negated(span: tuple[int, int]) -> bool:
        return any(s <= span[0] and span[1] <= e for s, e in negated_spans)

    exc = _most_specific([(span, t) for t in exc_terms for span in _find(t, text) if not is_negated(span)])
    inc_all = _most_specific([(span, t) for t in inc_terms for span in _find(t, text)])
    kept: list[TermMatch] = []
    neg: list[TermMatch] = []
    for span, term in inc_all:
        if any(span[0] < e and s < span[1] for (s, e), _ in exc):
            continue  # part of an exclusion word: 全日托|管, 午|托班
        target = neg if is_negated(span) else kept
        target.append(TermMatch(term.label, where, text[span[0] : span[1]], span[0]))
    excludes = [TermMatch(t.label, where, text[s:e], s) for (s, e), t in exc]
    return kept, excludes, neg


def _most_specific(found: list[tuple[tuple[int, int], Term]]) -> list[tuple[tuple[int, int], Term]]:
    """Drop matches contained in a longer match (家庭托育 hides 托育), sorted by position."""
    found.sort(key=lambda x: (x[0][0], -(x[0][1] - x[0][0])))
    result: list[tuple[tuple[int, int], Term]] = []
    for span, term in found:
        if any(s <= span[0] and span[1] <= e and (s, e) != span for (s, e), _ in found):
            continue
        if any(other == span and t.label == term.label for other, t in result):
            continue
        result.append((span, term))
    return result


def _find(term: Term, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _compile(term.pattern).finditer(text) if m.end() > m.start()]


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _as_term(term: Term | str) -> Term:
    return term if isinstance(term, Term) else Term.literal(term)


def _normalize(text: str) -> str:
    """Fold full-width digits/letters (３岁 → 3岁) and drop whitespace: registrars' exports vary.

    NFKC only runs when full-width letters or digits are present: it costs more than the whole
    classification otherwise. Full-width punctuation (；，（）) is kept; the negation rules know both forms.
    """
    if _FULLWIDTH_ALNUM.search(text):
        text = unicodedata.normalize("NFKC", text)
    return "".join(text.split())


def _normalize_industry(code: str | None) -> str | None:
    """Accept 8020, O8020, 'O 8020' or 802 0; the GB/T 4754 section letter is optional."""
    if not code:
        return None
    digits = re.sub(r"\D", "", code)
    return digits or None


def _notes(negated: list[TermMatch], industry: str | None, codes: Mapping[str, str]) -> str:
    notes = ""
    if negated:
        notes += f"; negated {_join(negated)}"
    if industry is not None and industry in NON_CHILDCARE_INDUSTRY_CODES and industry not in codes:
        notes += f"; industry {industry} {NON_CHILDCARE_INDUSTRY_CODES[industry]} alone is not childcare"
    return notes


def _labels(matches: tuple[TermMatch, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.term for m in matches))


def _join(matches: Sequence[TermMatch]) -> str:
    """Labels for a reason; terms found only in the name are marked, e.g. ``托育园(name)``."""
    return "、".join(dict.fromkeys(m.term + ("(name)" if m.where == "name" else "") for m in matches))


_DEFAULT_LEXICON: Final = _lexicon(INCLUDE_TERMS, EXCLUDE_TERMS)
