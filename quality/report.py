"""Render the monthly audit report: one self-contained HTML file auditors can archive and read offline.

Why it is built this way:

* **One file, nothing fetched.** Auditors archive the report and open it years later, often on machines
  without network access. So the CSS is inline, the charts are inline SVG drawn here in Python, there
  is no JavaScript and no web font, and a Content-Security-Policy forbids the page from loading
  anything even if a value slipped a URL in. Printing from the browser gives the PDF (``@media print``).
* **Escaped and masked twice over.** Jinja2's autoescape is on, every free-text field goes through the
  ``mask`` filter (:func:`schemas.masking.mask_text`), and the environment's ``finalize`` masks any other
  plain string as well, so a field added to the template later without the filter still cannot leak
  an ID number or a mobile number. Values that must stay verbatim (USCCs, the SVG) are ``Markup``.
* **Deterministic.** No clock, no random ids, no set iteration: the same metrics give the same bytes,
  so a re-generated report can be compared with the archived one.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from quality.report_model import MonthlyMetrics, RejectedRow
from schemas.divisions import lookup
from schemas.events import Registrar
from schemas.masking import mask_text

__all__ = [
    "APPENDIX_TABLES",
    "REPORT_FILE_MODE",
    "appendix_csv_name",
    "appendix_xlsx_name",
    "render_html",
    "report_filename",
    "write_report",
]

TEMPLATE: Final = "audit_report.html.j2"
REPORT_FILE_MODE: Final = 0o644
"""Reports are read by other accounts (a web server, an archiver), like the county packages."""

APPENDIX_TABLES: Final[dict[str, tuple[str, str]]] = {
    "rejected": ("拒收记录", "Rejected records"),
    "late": ("逾期推送", "Late pushes"),
    "misses": ("当月登记未当月推送", "Timeliness misses"),
    "unfiled": ("登记未备案", "Registered, not filed"),
    "packages": ("县区数据包", "County packages"),
}
"""The per-record appendix tables: key → (sheet / section title, English title)."""

REGISTRAR_EN: Final[dict[Registrar, str]] = {
    Registrar.BIANZHI: "Staffing office",
    Registrar.MINZHENG: "Civil affairs",
    Registrar.SHICHANG: "Market regulation",
    Registrar.SHENPI: "Administrative approval",
    Registrar.JIAOYU: "Education",
}
"""Short English names of the registrars for bilingual labels (the Chinese ones live on the enum)."""

_REGISTRAR_ORDER: Final = {r: i for i, r in enumerate(Registrar)}
_TOP_RULES: Final = 12  # the rejection chart shows the most frequent rules; the table shows all


def report_filename(month: str) -> str:
    """``audit-YYYY-MM.html``: one file per month, so re-running a month replaces its report."""
    return f"audit-{month}.html"


def appendix_csv_name(month: str, table: str) -> str:
    """``audit-YYYY-MM-<table>.csv``, beside the report (one CSV per appendix table)."""
    return f"audit-{month}-{table}.csv"


def appendix_xlsx_name(month: str) -> str:
    """``audit-YYYY-MM-appendix.xlsx``: every appendix table, one sheet each."""
    return f"audit-{month}-appendix.xlsx"


def render_html(metrics: MonthlyMetrics) -> str:
    """The whole report as one HTML document (a pure function of ``metrics``)."""
    zone = ZoneInfo(metrics.timezone)
    total, previous = metrics.total, metrics.previous
    change = share_change(total.extracted, previous.extracted) if previous is not None else None
    template = _environment().get_template(TEMPLATE)
    return template.render(
        m=metrics,
        total=total,
        extracted_change=change,
        timeliness_rows=list(metrics.timeliness),
        charts=_charts(metrics),
        appendix={
            key: (zh, en, appendix_csv_name(metrics.month, key)) for key, (zh, en) in APPENDIX_TABLES.items()
        },
        appendix_xlsx=appendix_xlsx_name(metrics.month),
        rejected_by_rule=_rejected_by_rule(metrics),
        zone=zone,
        local=lambda value: _local(value, zone),
        registrars=sorted(metrics.volumes_by_registrar.items(), key=lambda kv: _REGISTRAR_ORDER[kv[0]]),
    )


def share_change(now: int, before: int) -> float | None:
    """Relative change ``now / before - 1``; ``None`` when there is no base to compare with."""
    return now / before - 1 if before > 0 else None


def write_report(metrics: MonthlyMetrics, out_dir: Path | str) -> Path:
    """Write ``audit-<month>.html`` into ``out_dir`` (created if needed) and return its path.

    The file is written to a temporary name and renamed, so a reader (or an Airflow sensor) never
    sees half a report. It is made 0644 (``mkstemp`` creates 0600), like the county packages.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / report_filename(metrics.month)
    html = render_html(metrics)
    fd, tmp = tempfile.mkstemp(prefix=".audit-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(html)
        os.chmod(tmp, REPORT_FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------------
# Template environment and filters


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("quality", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        mask=_mask,
        num=_num,
        signed=_signed,
        pct=_pct,
        pct_signed=lambda v: "—" if v is None else f"{v * 100:+.1f}%",
        registrar=_registrar,
        registrar_zh=lambda r: "未知" if r is None else r.label_zh,
        county=_county,
        uscc=lambda value: Markup("<code>{}</code>").format(value),
        check=_check,
        isodate=lambda d: d.isoformat() if isinstance(d, date) else "—",
    )
    return env


def _finalize(value: object) -> object:
    """Safety net: mask every plain string reaching the page (``Markup`` was built deliberately)."""
    if value is None:
        return "—"
    if isinstance(value, str) and not isinstance(value, Markup):
        return mask_text(value)
    return value


def _mask(value: object) -> str:
    """The ``mask`` filter for free-text fields (names, descriptions, the replay trail)."""
    return mask_text("" if value is None else str(value))


def _num(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _signed(value: int) -> str:
    return f"{value:+,}"


def _count_tick(value: float) -> str:
    """Axis labels for counts: whole numbers without a spurious ``.0``."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _registrar(value: Registrar | None) -> Markup:
    if value is None:
        return Markup('未知登记机关<span class="en">unknown registrar</span>')
    return Markup('{}<span class="en">{}</span>').format(value.label_zh, REGISTRAR_EN[value])


def _county(code: str | None) -> Markup:
    """``name`` + code from the current division table; unknown codes are shown as such, not hidden."""
    if code is None:
        return Markup('<span class="muted">未解析 unresolved</span>')
    division = lookup(code)
    name = division.name if division is not None else "未知代码 unknown code"
    return Markup('{} <span class="code">{}</span>').format(name, code)


def _check(ok: bool) -> Markup:
    if ok:
        return Markup('<span class="ok" title="balanced / 平衡">✓</span>')
    return Markup('<span class="bad" title="mismatch / 不平衡">✗</span>')


def _local(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _rejected_by_rule(m: MonthlyMetrics) -> list[tuple[str, list[RejectedRow]]]:
    """Rejected records grouped by rejecting rule (a record breaking two rules is under both)."""
    groups: dict[str, list[RejectedRow]] = {}
    for row in m.rejected_records:
        for rule_id in row.rule_ids:
            groups.setdefault(rule_id, []).append(row)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


# --------------------------------------------------------------------------------------------------
# Charts: small inline SVG, styled by the page's CSS classes (so print and screen share one palette)


def _charts(m: MonthlyMetrics) -> dict[str, Markup]:
    last = len(_REGISTRAR_ORDER)
    recon = sorted(
        m.reconciliation, key=lambda r: last if r.registrar is None else _REGISTRAR_ORDER[r.registrar]
    )
    volumes = sorted(m.volumes_by_registrar.items(), key=lambda kv: _REGISTRAR_ORDER[kv[0]])
    totals = [t for t in m.timeliness if t.is_registrar]
    rules = sorted(m.rejection_reasons, key=lambda r: -r.count)[:_TOP_RULES]
    months = [p.month for p in m.trend]
    return {
        "volumes": _hbar(
            "chart-volumes",
            "各登记机关推送量 / Events by registrar",
            _HALF,
            [(r.label_zh, n, "c-extracted") for r, n in volumes],
        ),
        "verdicts": _stacked(
            "chart-verdicts",
            "有效与拒收 / Valid and rejected by registrar",
            _HALF,
            [
                (
                    r.registrar.label_zh if r.registrar else "未知",
                    [(r.valid, "c-valid"), (r.rejected, "c-rejected")],
                )
                for r in recon
            ],
            legend=[("有效 valid", "c-valid"), ("拒收 rejected", "c-rejected")],
        ),
        "timeliness": _share_bars(
            "chart-timeliness",
            "当月登记当月推送率 / Registrations of the month pushed within it",
            _FULL,
            [(t.registrar.label_zh, t.share) for t in totals if t.registrar is not None],
            threshold=m.timeliness_threshold,
        ),
        "rejections": _hbar(
            "chart-rejections",
            "拒收原因 / Rejection reasons",
            _FULL,
            [(r.rule_id, r.count, "c-rejected") for r in rules],
        ),
        "trend_counts": _lines(
            "chart-trend-counts",
            "月度趋势：记录数 / Monthly trend: records",
            _HALF,
            months,
            [
                ("抽取 extracted", [p.extracted for p in m.trend], "c-extracted"),
                ("有效 valid", [p.valid for p in m.trend], "c-valid"),
                ("拒收 rejected", [p.rejected for p in m.trend], "c-rejected"),
            ],
            fmt=_count_tick,
            tick_fmt=_count_tick,
        ),
        "trend_shares": _lines(
            "chart-trend-shares",
            "月度趋势：及时率与 GX 通过率 / Monthly trend: timeliness and GX success",
            _HALF,
            months,
            [
                ("(a) 当月登记当月推送率", [p.timeliness_share for p in m.trend], "c-time"),
                (
                    "(b) 当月推送未逾期率",
                    [None if p.late_share is None else 1 - p.late_share for p in m.trend],
                    "c-valid",
                ),
                ("GX 通过率 GX success", [p.gx_success_rate for p in m.trend], "c-gx"),
            ],
            fmt=_pct,
            tick_fmt=lambda v: _pct(v, 0),
            y_max=1.0,
            threshold=m.timeliness_threshold,
        ),
    }


_HALF: Final = 520  # natural widths in CSS px: text stays 12 px unless the column is narrower
_FULL: Final = 880
_LABEL_W: Final = 120
_ROW_H: Final = 28
_BAR_H: Final = 18


def _t(value: object) -> Markup:
    """Escaped and masked text for SVG labels (chart labels are ours, but defence in depth is cheap)."""
    return escape(mask_text(str(value)))


def _f(value: float) -> str:
    """Coordinates with one decimal: short markup and identical bytes on every platform."""
    return f"{value:.1f}"


def _svg(chart_id: str, title: str, width: int, height: float, body: Iterable[Markup | str]) -> Markup:
    """The chart's frame: natural size in px (CSS shrinks it to narrow columns), labelled for readers."""
    head = Markup(
        '<svg id="{id}" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-labelledby="{id}-title" preserveAspectRatio="xMinYMin meet">'
        '<title id="{id}-title">{title}</title>'
    ).format(id=chart_id, w=width, h=_f(height), title=title)
    return head + Markup("").join(Markup(part) for part in body) + Markup("</svg>")


def _empty(chart_id: str, title: str, width: int) -> Markup:
    return _svg(
        chart_id,
        title,
        width,
        40,
        [Markup('<text x="0" y="24" class="muted">{}</text>').format(_t("无数据 / no data"))],
    )


def _nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2, 2.5 or 5 × 10ⁿ, so gridlines land on readable numbers."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 2.5, 5.0, 10.0) if value <= step * power)


def _hbar(chart_id: str, title: str, width: int, rows: Sequence[tuple[str, int, str]]) -> Markup:
    """Horizontal bars: long Chinese labels stay readable, and many rules fit without rotation."""
    if not rows:
        return _empty(chart_id, title, width)
    top = _nice_max(max(value for _, value, _ in rows))
    plot = width - _LABEL_W - 60
    parts: list[Markup | str] = []
    for i, (label, value, css) in enumerate(rows):
        y = 8 + i * _ROW_H
        bar = plot * value / top
        parts.append(
            Markup(
                '<text x="{lx}" y="{ty}" class="label" text-anchor="end">{label}</text>'
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" class="{css}"><title>{label}: {v}</title></rect>'
                '<text x="{vx}" y="{ty}" class="value">{v}</text>'
            ).format(
                lx=_LABEL_W - 8,
                ty=_f(y + _BAR_H - 4),
                label=_t(label),
                x=_LABEL_W,
                y=_f(y),
                w=_f(bar),
                h=_BAR_H,
                css=css,
                v=_num(value),
                vx=_f(_LABEL_W + bar + 6),
            )
        )
    return _svg(chart_id, title, width, 16 + len(rows) * _ROW_H, parts)


def _stacked(
    chart_id: str,
    title: str,
    width: int,
    rows: Sequence[tuple[str, Sequence[tuple[int, str]]]],
    legend: Sequence[tuple[str, str]],
) -> Markup:
    """Stacked horizontal bars (valid + rejected), with the rejected share written at the end."""
    if not rows:
        return _empty(chart_id, title, width)
    top = _nice_max(max(sum(v for v, _ in segs) for _, segs in rows))
    plot = width - _LABEL_W - 130
    parts: list[Markup | str] = [_legend(legend, _LABEL_W, 14)]
    for i, (label, segs) in enumerate(rows):
        y = 30 + i * _ROW_H
        x = float(_LABEL_W)
        parts.append(
            Markup('<text x="{lx}" y="{ty}" class="label" text-anchor="end">{label}</text>').format(
                lx=_LABEL_W - 8, ty=_f(y + _BAR_H - 4), label=_t(label)
            )
        )
        for value, css in segs:
            bar = plot * value / top
            parts.append(
                Markup(
                    '<rect x="{x}" y="{y}" width="{w}" height="{h}" class="{css}"><title>{v}</title></rect>'
                ).format(x=_f(x), y=_f(y), w=_f(bar), h=_BAR_H, css=css, v=_num(value))
            )
            x += bar
        total = sum(v for v, _ in segs)
        rejected = segs[-1][0]
        note = f"{_num(total)}（拒收 {_pct(rejected / total) if total else '—'}）"
        parts.append(
            Markup('<text x="{x}" y="{ty}" class="value">{note}</text>').format(
                x=_f(x + 6), ty=_f(y + _BAR_H - 4), note=_t(note)
            )
        )
    return _svg(chart_id, title, width, 38 + len(rows) * _ROW_H, parts)


def _share_bars(
    chart_id: str, title: str, width: int, rows: Sequence[tuple[str, float | None]], threshold: float
) -> Markup:
    """Bars on a 0–100 % axis with the threshold as a dashed line; bars below it change colour."""
    if not rows:
        return _empty(chart_id, title, width)
    plot = width - _LABEL_W - 90
    height = 44 + len(rows) * _ROW_H
    parts: list[Markup | str] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _LABEL_W + plot * tick
        parts.append(
            Markup(
                '<line x1="{x}" y1="18" x2="{x}" y2="{y2}" class="grid"/>'
                '<text x="{x}" y="{ty}" class="tick" text-anchor="middle">{label}</text>'
            ).format(x=_f(x), y2=_f(height - 18), ty=_f(height - 4), label=_pct(tick, 0))
        )
    for i, (label, share) in enumerate(rows):
        y = 22 + i * _ROW_H
        ok = share is not None and share >= threshold
        bar = plot * (share or 0.0)
        parts.append(
            Markup(
                '<text x="{lx}" y="{ty}" class="label" text-anchor="end">{label}</text>'
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" class="{css}"><title>{label}: {v}</title></rect>'
                '<text x="{vx}" y="{ty}" class="value">{v} {mark}</text>'
            ).format(
                lx=_LABEL_W - 8,
                ty=_f(y + _BAR_H - 4),
                label=_t(label),
                x=_LABEL_W,
                y=_f(y),
                w=_f(bar),
                h=_BAR_H,
                css="c-time" if ok else "c-bad",
                v=_pct(share),
                vx=_f(_LABEL_W + plot + 8),
                mark="✓" if ok else "✗",
            )
        )
    tx = _LABEL_W + plot * threshold
    parts.append(
        Markup(
            '<line x1="{x}" y1="10" x2="{x}" y2="{y2}" class="threshold"/>'
            '<text x="{x}" y="10" class="threshold-label" text-anchor="end">{label}</text>'
        ).format(x=_f(tx), y2=_f(height - 18), label=_t(f"阈值 threshold {_pct(threshold, 0)}"))
    )
    return _svg(chart_id, title, width, height, parts)


def _lines(
    chart_id: str,
    title: str,
    width: int,
    months: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None], str]],
    fmt: Callable[[float], str],
    tick_fmt: Callable[[float], str],
    y_max: float | None = None,
    threshold: float | None = None,
) -> Markup:
    """Lines across months; a missing value breaks the line rather than drawing a false zero.

    The threshold, when given, is a dashed line named in the legend (a label on the line itself would
    collide with points sitting near 100 %).
    """
    values = [v for _, vals, _ in series for v in vals if v is not None]
    if not months or not values:
        return _empty(chart_id, title, width)
    top = y_max if y_max is not None else _nice_max(max(values))
    left, right, upper, lower = 64.0, 36.0, 34.0, 30.0
    height = 260.0
    plot_w, plot_h = width - left - right, height - upper - lower
    step = plot_w / max(len(months) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (i * step if len(months) > 1 else plot_w / 2)
        return x, upper + plot_h * (1 - v / top)

    legend = [(name, css) for name, _, css in series]
    if threshold is not None:
        legend.append((f"阈值 threshold {_pct(threshold, 0)}", "threshold"))
    parts: list[Markup | str] = [_legend(legend, left, 14)]
    for k in range(5):
        tick = top * k / 4
        _, y = xy(0, tick)
        parts.append(
            Markup(
                '<line x1="{l}" y1="{y}" x2="{r}" y2="{y}" class="grid"/>'
                '<text x="{tx}" y="{ty}" class="tick" text-anchor="end">{label}</text>'
            ).format(
                l=_f(left), r=_f(width - right), y=_f(y), tx=_f(left - 6), ty=_f(y + 4), label=tick_fmt(tick)
            )
        )
    for i, month in enumerate(months):
        x, _ = xy(i, 0)
        parts.append(
            Markup('<text x="{x}" y="{y}" class="tick" text-anchor="middle">{m}</text>').format(
                x=_f(x), y=_f(height - 10), m=_t(month)
            )
        )
    if threshold is not None:
        _, ty = xy(0, threshold)
        parts.append(
            Markup('<line x1="{l}" y1="{y}" x2="{r}" y2="{y}" class="threshold"/>').format(
                l=_f(left), r=_f(width - right), y=_f(ty)
            )
        )
    for name, vals, css in series:
        segment: list[str] = []
        for i, v in enumerate(vals):
            if v is None:
                parts.append(_polyline(segment, css))
                segment = []
                continue
            x, y = xy(i, v)
            segment.append(f"{_f(x)},{_f(y)}")
            parts.append(
                Markup('<circle cx="{x}" cy="{y}" r="3.5" class="{css}"><title>{t}</title></circle>').format(
                    x=_f(x), y=_f(y), css=css, t=_t(f"{name} {months[i]}: {fmt(v)}")
                )
            )
        parts.append(_polyline(segment, css))
    return _svg(chart_id, title, width, height, parts)


def _polyline(points: Sequence[str], css: str) -> Markup:
    if len(points) < 2:
        return Markup("")
    return Markup('<polyline points="{p}" class="line {css}"/>').format(p=" ".join(points), css=css)


def _text_width(text: str, size: float = 12) -> float:
    """Rough rendered width: CJK glyphs are square, Latin ones a bit over half as wide."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.58 for ch in text)


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> Markup:
    parts: list[Markup] = []
    for name, css in items:
        if css == "threshold":  # a dashed line, as drawn in the chart
            key = Markup('<line x1="{x}" y1="{y}" x2="{x2}" y2="{y}" class="threshold"/>').format(
                x=_f(x), x2=_f(x + 12), y=_f(y - 4)
            )
        else:
            key = Markup('<rect x="{x}" y="{y}" width="12" height="12" class="{css}"/>').format(
                x=_f(x), y=_f(y - 10), css=css
            )
        parts.append(
            key
            + Markup('<text x="{x}" y="{y}" class="legend">{name}</text>').format(
                x=_f(x + 16), y=_f(y), name=_t(name)
            )
        )
        x += 36 + _text_width(name)
    return Markup("").join(parts)
