"""The portal's pages, downloads and API, each declared with its access policy (:mod:`portal.policy`)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import UploadFile

from portal import accounts, filing, packages, queries
from portal.app import client_ip
from portal.backend import dlq_rows, reports_dir
from portal.models import audit, receipts
from portal.policy import API, AUDIT, BUREAU, PUBLIC, SIGNED_IN, STAFF, principal, route
from portal.scope import Principal
from schemas.events import EventType, InstitutionStatus, LegalForm, ProfitNature, Registrar, ServiceForm

router = APIRouter()
_TZ = ZoneInfo("Asia/Shanghai")
LABELS = {
    "event_type": {e.value: e.label_zh for e in EventType},
    "registrar": {r.value: r.label_zh for r in Registrar},
    "status": {s.value: s.label_zh for s in InstitutionStatus},
    "form": {f.value: f.label_zh for f in ServiceForm},
    "legal_form": {f.value: f.label_zh for f in LegalForm},
    "profit": {p.value: p.label_zh for p in ProfitNature},
}


def _engine(request: Request) -> sa.Engine:
    return request.app.state.engine


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    base = {
        "who": principal(request),
        "csrf": request.state.session.get("csrf", ""),
        "labels": LABELS,
        "division": queries.division_name,
    }
    return request.app.state.templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def _audit(
    request: Request, action: str, target: str, outcome: str = "ok", detail: str | None = None
) -> None:
    accounts.record(
        _engine(request),
        principal(request),
        action,
        target,
        ip=client_ip(request),
        outcome=outcome,
        detail=detail,
    )


def _today() -> date:
    return datetime.now(_TZ).date()


def _month(text: str | None, months: list[str]) -> str:
    if text and len(text) == 7 and text[4] == "-" and text.replace("-", "").isdigit():
        return text
    return months[0] if months else _today().strftime("%Y-%m")


# ---------------------------------------------------------------- public, login


@route(router, "GET", "/", PUBLIC, response_class=RedirectResponse)
def home(request: Request) -> RedirectResponse:
    """Signed-in staff land in their inbox (auditors in the report archive), everyone else on 公示."""
    who = principal(request)
    target = (
        "/public"
        if not who.is_staff
        else ("/audit/reports" if who.sees_all and who.role == "auditor" else "/inbox")
    )
    return RedirectResponse(target, status_code=303)


@route(router, "GET", "/healthz", PUBLIC)
def healthz(request: Request) -> dict[str, str]:
    """Liveness and database reachability, for the compose health check."""
    with _engine(request).connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return {"status": "ok"}


@route(router, "GET", "/login", PUBLIC, response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    """The login form."""
    return _page(
        request, "login.html", next=next if next.startswith("/") and not next.startswith("//") else "/"
    )


@route(router, "POST", "/login", PUBLIC, response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the password with throttling; a new session (and CSRF token) on success."""
    form = await request.form()
    username = str(form.get("username") or "").strip()[:64]
    password = str(form.get("password") or "")
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    settings = request.app.state.settings
    result = accounts.authenticate(
        _engine(request),
        username,
        password,
        client_ip(request),
        max_failures=settings.max_failures,
        lockout=request.app.state.lockout,
    )
    if result.principal is None:
        accounts.record(
            _engine(request), username or "-", "login", username, ip=client_ip(request), outcome=result.reason
        )
        if result.reason == "locked" and result.locked_until is not None:
            until = result.locked_until.astimezone(_TZ).strftime("%H:%M")
            message = (
                f"登录失败次数过多，账户已锁定至 {until}（北京时间）；如需提前解锁请联系管理员。"
                f" / Too many failed logins: the account is locked until {until} (Beijing time); "
                "ask an administrator to unlock it sooner."
            )
            return _page(
                request, "login.html", status_code=429, error=message, next=target, username=username
            )
        message = "用户名或密码错误 / wrong user name or password"
        return _page(request, "login.html", status_code=401, error=message, next=target, username=username)
    from portal.security import new_csrf

    who = result.principal
    request.state.session = {"uid": who.id, "epoch": result.epoch, "csrf": new_csrf()}
    request.state.session_changed = True
    request.state.principal = who
    _audit(request, "login", who.name)
    return RedirectResponse(target if target != "/login" else "/", status_code=303)


@route(router, "POST", "/logout", SIGNED_IN)
def logout(request: Request) -> RedirectResponse:
    """End the session here and everywhere (the account's session epoch moves on)."""
    from portal.security import new_csrf

    who = principal(request)
    if who.id is not None:
        accounts.bump_epoch(_engine(request), who.id)
    _audit(request, "logout", who.name)
    request.state.session = {"csrf": new_csrf()}
    request.state.session_changed = True
    return RedirectResponse("/login", status_code=303)


@route(router, "GET", "/public", PUBLIC, response_class=HTMLResponse)
def public(
    request: Request,
    q: str = "",
    region: str = Query("", pattern=r"^(\d{2}|\d{4}|\d{6})?$"),
    page: int = Query(1, ge=1, le=100000),
) -> HTMLResponse:
    """公示: filed childcare institutions by region, searchable by name, USCC or address; no personal data."""
    per_page = 20
    with _engine(request).connect() as conn:
        rows, total = queries.public_page(conn, q=q, region=region, page=page, per_page=per_page)
        regions = _public_regions(request, conn)
    provinces = sorted({c[:2] for c in regions})
    cities = sorted({c[:4] for c in regions})
    return _page(
        request,
        "public.html",
        rows=rows,
        total=total,
        q=q,
        region=region,
        page=page,
        pages=max(1, -(-total // per_page)),
        provinces=provinces,
        cities=cities,
        counties=regions,
    )


_REGIONS: dict[int, tuple[float, list[str]]] = {}


def _public_regions(request: Request, conn: sa.Connection) -> list[str]:
    """The 公示 region picker's counties, cached a minute (it changes with filings, not per request)."""
    import time

    key = id(request.app)
    cached = _REGIONS.get(key)
    if cached is not None and time.monotonic() - cached[0] < 60:
        return cached[1]
    regions = queries.public_regions(conn)
    _REGIONS[key] = (time.monotonic(), regions)
    return regions


@route(router, "GET", "/packages/public-key.pem", PUBLIC, response_class=PlainTextResponse)
def public_key(request: Request) -> PlainTextResponse:
    """The Ed25519 public key that verifies package manifests."""
    return PlainTextResponse(packages.public_pem(request.app.state.key), media_type="application/x-pem-file")


# ---------------------------------------------------------------- county bureau and region pages


@route(router, "GET", "/inbox", STAFF, response_class=HTMLResponse)
def inbox(
    request: Request,
    month: str = "",
    registrar: str = "",
    event_type: str = "",
    status: str = "",
    page: int = Query(1, ge=1, le=100000),
) -> HTMLResponse:
    """The registrations pushed to the caller's region in a month, newest first, unseen marked."""
    who = principal(request)
    per_page = 100
    with _engine(request).connect() as conn:
        months = queries.months(conn)
        chosen = _month(month, months)
        flt = queries.InboxFilter(
            chosen,
            registrar if registrar in LABELS["registrar"] else "",
            event_type if event_type in LABELS["event_type"] else "",
            status if status in ("unseen", "late") else "",
        )
        rows, total = queries.inbox(conn, who, flt, limit=per_page, offset=(page - 1) * per_page)
    return _page(
        request,
        "inbox.html",
        rows=rows,
        total=total,
        months=months,
        flt=flt,
        page=page,
        pages=max(1, -(-total // per_page)),
    )


@route(router, "POST", "/inbox/seen", STAFF)
async def inbox_seen(request: Request) -> RedirectResponse:
    """Mark every event of a month in the caller's region as seen by the caller."""
    form = await request.form()
    who = principal(request)
    month = str(form.get("month") or "")
    with _engine(request).begin() as conn:
        queries.mark_seen(conn, who, queries.month_event_ids(conn, who, month))
    return RedirectResponse(f"/inbox?month={month}", status_code=303)


@route(router, "GET", "/institutions/{uscc}", STAFF, response_class=HTMLResponse)
def institution(request: Request, uscc: str) -> HTMLResponse:
    """Current state, event history and filings of one institution of the caller's region."""
    who = principal(request)
    key = uscc.strip().upper()
    with _engine(request).begin() as conn:
        row = queries.institution(conn, who, key)
        if row is None:
            accounts.record(conn, who, "view_institution", key, ip=client_ip(request), outcome="not_found")
            raise HTTPException(404, "无此机构或不在本辖区 / no such institution in your region")
        events = queries.history(conn, key)
        filed = queries.filings_of(conn, key)
        queries.mark_seen(conn, who, [e["event_id"] for e in events])
        accounts.record(conn, who, "view_institution", key, ip=client_ip(request))
    for e in events:
        e["changes"] = [
            f"{c.get('field')}: {queries_mask(c.get('old'))} → {queries_mask(c.get('new'))}"
            for c in (e["event_json"] or {}).get("changed_fields") or ()
        ]
    return _page(
        request,
        "institution.html",
        inst=row,
        events=events,
        filings=filed,
        today=_today(),
        statuses=filing.STATUSES,
    )


def queries_mask(value: Any) -> str:
    """Free text from an event document, masked (IDs and phones) for display."""
    from schemas.masking import mask_text

    return mask_text(None if value is None else str(value)) or "（空）"


@route(router, "GET", "/gap", STAFF, response_class=HTMLResponse)
def gap(
    request: Request,
    sort: str = "-days",
    view: str = Query("unfiled", pattern="^(unfiled|orphans)$"),
    page: int = Query(1, ge=1, le=100000),
) -> HTMLResponse:
    """登记未备案 (sortable, days since registration) or 备案未登记, in the caller's region."""
    who = principal(request)
    per_page = 100
    today = _today()
    rows: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    total = 0
    with _engine(request).connect() as conn:
        if view == "orphans":
            orphans = queries.unregistered(conn, who, today)
        else:
            rows, total = queries.unfiled(
                conn, who, today, sort=sort, limit=per_page, offset=(page - 1) * per_page
            )
    return _page(
        request,
        "gap.html",
        rows=rows,
        total=total,
        orphans=orphans,
        view=view,
        sort=sort,
        page=page,
        pages=max(1, -(-total // per_page)),
        today=today,
    )


GAP_HEADERS = ("统一社会信用代码", "机构名称", "县级行政区划代码", "登记日期", "登记天数", "登记机关", "住所")


def _gap_rows(request: Request) -> list[list[Any]]:
    who = principal(request)
    with _engine(request).connect() as conn:
        rows, _ = queries.unfiled(conn, who, _today(), sort="-days", limit=None)
    _audit(request, "download_gap", who.region or "all", detail=f"{len(rows)} rows")
    return [
        [
            r["uscc"],
            r["name"],
            r["county_code"],
            r["registered_on"],
            r["days_since"],
            "、".join(LABELS["registrar"].get(x, x) for x in (r["registrars"] or "").split(",") if x),
            queries_mask(r["address"]),
        ]
        for r in rows
    ]


def _defuse(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@route(router, "GET", "/gap.csv", STAFF)
def gap_csv(request: Request) -> Response:
    """登记未备案 as CSV (UTF-8 with BOM for Excel)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(GAP_HEADERS)
    for row in _gap_rows(request):
        writer.writerow(["" if v is None else _defuse(str(v)) for v in row])
    return Response(
        ("\ufeff" + buffer.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename=gap.csv"},
    )


@route(router, "GET", "/gap.xlsx", STAFF)
def gap_xlsx(request: Request) -> Response:
    """登记未备案 as an Excel workbook."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("登记未备案")
    sheet.append(list(GAP_HEADERS))
    for row in _gap_rows(request):
        sheet.append([_defuse(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return Response(
        buffer.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": "attachment; filename=gap.xlsx"},
    )


# ---------------------------------------------------------------- 网上备案 (county bureau only)


def _form_values(form: Any) -> dict[str, Any]:
    raw_date = str(form.get("filed_date") or "").strip()
    try:
        filed: date | None = date.fromisoformat(raw_date)
    except ValueError:
        filed = None
    return {
        "uscc": str(form.get("uscc") or "").strip(),
        "filing_number": str(form.get("filing_number") or "").strip(),
        "filed_date": filed,
        "status": str(form.get("status") or "").strip(),
    }


@route(router, "GET", "/filings/new", BUREAU, response_class=HTMLResponse)
def filing_form(request: Request, uscc: str = "") -> HTMLResponse:
    """The 网上备案 form."""
    return _page(request, "filing_form.html", values={"uscc": uscc}, statuses=filing.STATUSES, today=_today())


@route(router, "POST", "/filings", BUREAU, response_class=HTMLResponse)
async def filing_create(request: Request) -> Response:
    """Validate and record one filing; the gap reflects it on the next page view."""
    who = principal(request)
    values = _form_values(await request.form())
    if values["status"] not in filing.STATUSES:
        values["status"] = ""
    with _engine(request).begin() as conn:
        checked = filing.check(conn, who, values)
        if checked.row is None:
            accounts.record(
                conn,
                who,
                "filing_online",
                values["uscc"],
                ip=client_ip(request),
                outcome="refused",
                detail=checked.reason,
            )
        else:
            counts = filing.write(conn, [checked.row], f"网上备案 {who.name}")
            accounts.record(
                conn,
                who,
                "filing_online",
                checked.row["uscc"],
                ip=client_ip(request),
                detail=f"{checked.row['filing_number']} {checked.row['status']} (inserted, updated, unchanged)={counts}",
            )
    if checked.row is None:
        return _page(
            request,
            "filing_form.html",
            status_code=422,
            values=values,
            error=checked.reason,
            statuses=filing.STATUSES,
            today=_today(),
        )
    return RedirectResponse(f"/institutions/{checked.row['uscc']}?filed=1", status_code=303)


def _upload_signer(request: Request) -> URLSafeSerializer:
    secret = request.app.state.settings.session_secret.get_secret_value()
    return URLSafeSerializer(secret, salt="regsync-portal-upload")


@route(router, "GET", "/filings/upload", BUREAU, response_class=HTMLResponse)
def upload_form(request: Request) -> HTMLResponse:
    """The CSV upload form, with the expected columns."""
    return _page(request, "upload.html", checked=None)


@route(router, "POST", "/filings/upload", BUREAU, response_class=HTMLResponse)
async def upload_preview(request: Request) -> HTMLResponse:
    """Check every line of the uploaded export and show accepted and refused rows; nothing written."""
    form = await request.form()
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    name = upload.filename if isinstance(upload, UploadFile) and upload.filename else "upload.csv"
    if len(data) > 5_000_000:
        raise HTTPException(413, "文件过大（上限 5 MB）/ file too large (5 MB)")
    who = principal(request)
    with _engine(request).connect() as conn:
        checked = filing.preview(conn, who, data)
    ticket = _upload_signer(request).dumps(
        {
            "uid": who.id,
            "name": name,
            "data": base64.b64encode(data).decode(),
            "sha": hashlib.sha256(data).hexdigest(),
        }
    )
    return _page(request, "upload.html", checked=checked, ticket=ticket, name=name)


@route(router, "POST", "/filings/upload/commit", BUREAU, response_class=HTMLResponse)
async def upload_commit(request: Request) -> HTMLResponse:
    """Write the accepted rows of the previewed file (checked again: the store may have moved on)."""
    form = await request.form()
    who = principal(request)
    try:
        ticket = _upload_signer(request).loads(str(form.get("ticket") or ""))
    except BadSignature:
        raise HTTPException(
            400, "预览已失效，请重新上传 / the preview is no longer valid, upload again"
        ) from None
    if ticket.get("uid") != who.id:
        raise HTTPException(403, "不是您的预览 / not your preview")
    data = base64.b64decode(ticket["data"])
    with _engine(request).begin() as conn:
        checked = filing.preview(conn, who, data)
        rows = [c.row for c in checked if c.row is not None]
        counts = filing.write(conn, rows, f"CSV {ticket['name']} {who.name}")
        accounts.record(
            conn,
            who,
            "filing_import",
            ticket["name"],
            ip=client_ip(request),
            detail=f"sha256 {ticket['sha']}; accepted {len(rows)}, refused {len(checked) - len(rows)}; "
            f"(inserted, updated, unchanged)={counts}",
        )
    return _page(request, "upload.html", checked=checked, committed=counts, name=ticket["name"])


# ---------------------------------------------------------------- packages and receipts


@route(router, "GET", "/packages", STAFF, response_class=HTMLResponse)
def package_index(request: Request) -> HTMLResponse:
    """Every county × month of the caller's region: package rows, or 本月无推送; receipt status."""
    who = principal(request)
    with _engine(request).connect() as conn:
        months = queries.months(conn)
        counties = queries.counties(conn, who)
        pushed = queries.pushes(conn, who)
        got = queries.receipts_of(conn, who)
    return _page(
        request,
        "packages.html",
        months=months,
        counties=counties,
        pushed=pushed,
        got=got,
        public_key=packages.public_pem(request.app.state.key),
    )


@route(router, "GET", "/packages/{month}/{county}.zip", STAFF)
def package_download(request: Request, month: str, county: str) -> Response:
    """The zip; a bureau's first download of its county's month is the receipt."""
    who = principal(request)
    if not who.covers(county):
        _audit(request, "download_package", f"{month}/{county}", outcome="not_found")
        raise HTTPException(404, "无此数据包或不在本辖区 / no such package in your region")
    with _engine(request).begin() as conn:
        months = queries.months(conn)
        if month not in months:
            raise HTTPException(404, "该月份尚未装载 / month not loaded")
        push = queries.pushes(conn, who, month).get((month, county))
        try:
            package = packages.build(
                request.app.state.key,
                month,
                county,
                queries.division_name(county),
                push,
                queries.month_loaded_at(conn, month),
            )
        except FileNotFoundError as exc:
            raise HTTPException(410, f"数据包文件已不在服务器上 / {exc}") from exc
        first = False
        if who.role == "bureau" and who.region == county:
            have = conn.scalar(
                sa.select(receipts.c.id).where(receipts.c.month == month, receipts.c.county_code == county)
            )
            if have is None:
                conn.execute(
                    receipts.insert().values(
                        month=month,
                        county_code=county,
                        username=who.name,
                        received_at=datetime.now(UTC),
                        sha256=package.sha256,
                        rows=package.rows,
                    )
                )
                first = True
        accounts.record(
            conn,
            who,
            "download_package",
            f"{month}/{county}",
            ip=client_ip(request),
            detail=f"sha256 {package.sha256}; rows {package.rows}{'; receipt' if first else ''}",
        )
    name = f"regsync-{month}-{county}.zip"
    return Response(
        package.data,
        media_type="application/zip",
        headers={"Content-Disposition": f"attachment; filename={name}", "X-Content-SHA256": package.sha256},
    )


# ---------------------------------------------------------------- auditors


@route(router, "GET", "/audit/reports", AUDIT, response_class=HTMLResponse)
def report_archive(request: Request) -> HTMLResponse:
    """The monthly audit reports the pipeline wrote, newest first, with drill-down links."""
    folder = reports_dir(request.app.state.settings.output_dir)
    found = (
        sorted((p.stem.removeprefix("audit-") for p in folder.glob("audit-????-??.html")), reverse=True)
        if folder.is_dir()
        else []
    )
    with _engine(request).connect() as conn:
        months = queries.months(conn)
    return _page(request, "reports.html", reports=found, months=months)


@route(router, "GET", "/audit/reports/{month}", AUDIT)
def report_file(request: Request, month: str) -> Response:
    """One month's self-contained HTML report."""
    if not (len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit()):
        raise HTTPException(404, "no such report")
    path = reports_dir(request.app.state.settings.output_dir) / f"audit-{month}.html"
    if not path.is_file():
        raise HTTPException(404, "该月无报告 / no report for this month")
    _audit(request, "view_report", month)
    return FileResponse(path, media_type="text/html; charset=utf-8")


@route(router, "GET", "/audit/months/{month}", AUDIT, response_class=HTMLResponse)
def audit_month(request: Request, month: str, rule: str = "") -> HTMLResponse:
    """A month's records at fault: late pushes, unfiled institutions, rejected records by rule."""
    who = principal(request)
    ev = queries.ev
    with _engine(request).connect() as conn:
        late = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    ev.c.uscc,
                    ev.c.event_type,
                    ev.c.registrar,
                    ev.c.event_date,
                    ev.c.pushed_at,
                    ev.c.county_code,
                    queries.inst.c.name,
                )
                .select_from(ev.outerjoin(queries.inst, queries.inst.c.uscc == ev.c.uscc))
                .where(ev.c.load_month == month, ev.c.late.is_(True), who.where(ev.c.county_code))
                .order_by(ev.c.county_code, ev.c.event_date)
                .limit(500)
            ).mappings()
        ]
        unfiled, unfiled_total = queries.unfiled(conn, who, _today(), sort="-days", limit=500)
    dlq = dlq_rows(month=month, rule=rule or None)
    by_rule: dict[str, int] = {}
    for row in dlq.rows:
        for r in (row["rules"] or "").split(","):
            if r:
                by_rule[r] = by_rule.get(r, 0) + 1
    _audit(request, "view_audit_month", month)
    return _page(
        request,
        "audit_month.html",
        month=month,
        late=late,
        unfiled=unfiled,
        unfiled_total=unfiled_total,
        dlq=dlq,
        by_rule=sorted(by_rule.items()),
        rule=rule,
    )


@route(router, "GET", "/audit/dlq", AUDIT, response_class=HTMLResponse)
def dlq_browse(request: Request, rule: str = "", month: str = "") -> HTMLResponse:
    """The dead-letter queue, read-only and masked (replays stay with ``regsync dlq replay``)."""
    view = dlq_rows(month=month or None, rule=rule or None)
    _audit(request, "view_dlq", f"{month or '*'} {rule or '*'}")
    return _page(request, "dlq.html", dlq=view, rule=rule, month=month)


def _audit_query(action: str, actor: str) -> sa.Select[Any]:
    query = sa.select(audit).order_by(audit.c.id.desc())
    if action:
        query = query.where(audit.c.action == action)
    if actor:
        query = query.where(audit.c.actor == actor)
    return query


@route(router, "GET", "/audit/log", AUDIT, response_class=HTMLResponse)
def audit_log(
    request: Request, action: str = "", actor: str = "", page: int = Query(1, ge=1, le=100000)
) -> HTMLResponse:
    """The portal's audit log, newest first."""
    with _engine(request).connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(_audit_query(action, actor).limit(200).offset((page - 1) * 200)).mappings()
        ]
    return _page(request, "audit_log.html", rows=rows, action=action, actor=actor, page=page)


@route(router, "GET", "/audit/log.csv", AUDIT)
def audit_log_csv(request: Request, action: str = "", actor: str = "") -> Response:
    """The audit log as CSV (the export is itself audited)."""
    _audit(request, "export_audit", f"{action or '*'} {actor or '*'}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    columns = [c.name for c in audit.c]
    writer.writerow(columns)
    with _engine(request).connect() as conn:
        for row in conn.execute(_audit_query(action, actor)).mappings():
            writer.writerow(["" if row[c] is None else _defuse(str(row[c])) for c in columns])
    return Response(
        ("\ufeff" + buffer.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename=portal-audit.csv"},
    )


# ---------------------------------------------------------------- roster API


def _json_ready(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def _etagged(request: Request, body: Any) -> Response:
    data = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    tag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(
        data, media_type="application/json", headers={"ETag": tag, "Cache-Control": "private, no-cache"}
    )


@route(router, "GET", "/api/v1/institutions", API, response_class=JSONResponse)
def api_institutions(
    request: Request,
    after: str = Query("", max_length=18, description="Keyset cursor: the last USCC of the previous page."),
    updated_since: date | None = Query(  # noqa: B008 - FastAPI's declaration style
        None, description="Only institutions with an event on or after this date."
    ),
    limit: int = Query(500, ge=1, le=5000),
) -> Response:
    """The roster of the token's region, USCC order, keyset-paged; ``next`` is the following page's cursor.

    Fields describe the institution as a legal entity and its filing in force; nothing about natural
    persons. Responses carry an ETag; send it back in ``If-None-Match`` to get 304 when unchanged.
    """
    who: Principal = principal(request)
    with _engine(request).begin() as conn:
        rows = queries.roster_page(conn, who, after=after.upper(), updated_since=updated_since, limit=limit)
        accounts.record(
            conn,
            who,
            "api_call",
            str(request.url.path),
            ip=client_ip(request),
            detail=f"after={after} updated_since={updated_since} limit={limit} rows={len(rows)}",
        )
    items = [_json_ready(r) for r in rows]
    return _etagged(request, {"items": items, "next": items[-1]["uscc"] if len(items) == limit else None})


@route(router, "GET", "/api/v1/institutions/{uscc}", API, response_class=JSONResponse)
def api_institution(request: Request, uscc: str) -> Response:
    """One institution of the token's region (404 outside it)."""
    who: Principal = principal(request)
    key = uscc.strip().upper()
    with _engine(request).begin() as conn:
        row = (
            conn.execute(
                sa.select(*queries.API_COLUMNS).where(
                    queries.inst.c.uscc == key, who.where(queries.inst.c.county_code)
                )
            )
            .mappings()
            .first()
        )
        accounts.record(
            conn,
            who,
            "api_call",
            str(request.url.path),
            ip=client_ip(request),
            outcome="ok" if row else "not_found",
        )
        found = None if row is None else dict(row)
        if found is not None:
            found["filings"] = [
                _json_ready({k: f[k] for k in ("filing_number", "filed_date", "status")})
                for f in queries.filings_of(conn, key)
            ]
    if found is None:
        raise HTTPException(404, "not found in your region")
    return _etagged(request, _json_ready(found))
