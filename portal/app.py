"""The ASGI application: FastAPI with server-rendered Jinja2 pages, Chinese first, English second.

``create_app(url)`` opens the database (both migration histories to head) and wires the guard,
the session middleware and the routes of :mod:`portal.routes`. Sessions are signed cookies
(HttpOnly, SameSite=Lax, Secure when configured); every POST from a browser carries the session's
CSRF token; API calls carry a bearer token and no cookie is set for them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from portal import accounts
from portal.packages import signing_key
from portal.policy import CsrfRejected, LoginRequired, Policy, deny, set_guard
from portal.scope import ANONYMOUS, Principal
from portal.security import SessionCodec, check_csrf, new_csrf
from portal.settings import PortalSettings, get_portal_settings
from schemas.masking import mask_phone, mask_resident_id, mask_text

COOKIE = "regsync_portal"
TEMPLATES = Path(__file__).with_name("templates")


def client_ip(request: Request) -> str | None:
    """The caller's address as the server sees it (no proxy headers are trusted)."""
    return request.client.host if request.client else None


class SessionMiddleware(BaseHTTPMiddleware):
    """Reads the signed session cookie into ``request.state.session``; writes it back when changed.

    Every browser visitor gets a session (anonymous ones too) so the login form has a CSRF token.
    """

    def __init__(self, app: Any, codec: SessionCodec, settings: PortalSettings) -> None:
        super().__init__(app)
        self.codec = codec
        self.settings = settings

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Load, run, save, and add the security headers every page wants."""
        api = request.url.path.startswith("/api/")
        payload = None if api else self.codec.loads(request.cookies.get(COOKIE))
        changed = payload is None and not api
        request.state.session = payload if payload is not None else {"csrf": new_csrf()}
        request.state.session_changed = changed
        response = await call_next(request)
        if not api and request.state.session_changed:
            response.set_cookie(
                COOKIE,
                self.codec.dumps(request.state.session),
                max_age=int(self.settings.session_hours * 3600),
                httponly=True,
                samesite="lax",
                secure=self.settings.secure_cookies or request.url.scheme == "https",
                path="/",
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/docs", "/redoc")):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                "frame-ancestors 'none'",
            )
        return response


def _guard(policy: Policy) -> Any:
    async def guard(request: Request) -> Principal:
        app = request.app
        engine: sa.Engine = app.state.engine
        who: Principal = ANONYMOUS
        if policy.api:
            header = request.headers.get("authorization", "")
            scheme, _, secret = header.partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                with engine.begin() as conn:
                    who = accounts.token_principal(conn, secret.strip()) or ANONYMOUS
            if who.kind != "token":
                accounts.record(
                    engine, "-", "api_call", request.url.path, ip=client_ip(request), outcome="unauthorized"
                )
                raise HTTPException(
                    401, "需要有效令牌 / a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
                )
        else:
            session = request.state.session
            if session.get("uid") is not None:
                with engine.connect() as conn:
                    who = (
                        accounts.user_principal(conn, int(session["uid"]), int(session.get("epoch", -1)))
                        or ANONYMOUS
                    )
                if who.kind == "anonymous":  # ended elsewhere (logout, disable, reset): drop it
                    request.state.session = {"csrf": new_csrf()}
                    request.state.session_changed = True
        request.state.principal = who
        if not policy.allows(who):
            if who.kind != "anonymous":
                accounts.record(
                    engine, who, "forbidden", request.url.path, ip=client_ip(request), outcome="denied"
                )
            deny(who)
        if request.method == "POST" and not policy.api:
            form = await request.form()
            given = form.get("csrf")
            if not check_csrf(request.state.session.get("csrf"), given if isinstance(given, str) else None):
                raise CsrfRejected
        return who

    return guard


set_guard(_guard)


def _local_time(moment: Any) -> str:
    """A timestamp as Beijing time, to the minute (the store keeps UTC)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    if not isinstance(moment, datetime):
        return "" if moment is None else str(moment)
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


def create_app(url: str | None = None, settings: PortalSettings | None = None) -> FastAPI:
    """The portal on the database at ``url`` (default: the configured one), migrated to head."""
    from portal import routes
    from portal.db import database_url, open_engine

    settings = settings or get_portal_settings()
    engine = open_engine(database_url(url))
    app = FastAPI(
        title="regsync 托育机构备案门户 / childcare filing portal",
        description=(
            "卫生健康部门托育机构登记备案门户的名册接口（只读）。/ The read-only roster API of the health "
            "department's childcare filing portal. Authenticate with `Authorization: Bearer <token>` "
            "(`regsync tokens add --department 消防 --prefix 3701`)."
        ),
        version="1",
    )
    secret = settings.session_secret.get_secret_value()
    codec = SessionCodec(secret, settings.session_hours * 3600)
    app.state.engine = engine
    app.state.settings = settings
    app.state.key = signing_key(
        settings.signing_key.get_secret_value() if settings.signing_key else None, secret
    )
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["mask"] = mask_text
    templates.env.filters["mask_id"] = mask_resident_id
    templates.env.filters["mask_phone"] = mask_phone
    from portal.queries import division_name

    templates.env.globals["division"] = division_name
    templates.env.filters["local"] = _local_time
    templates.env.globals["csrf"] = ""
    app.state.templates = templates
    app.state.lockout = timedelta(minutes=settings.lockout_minutes)
    app.add_middleware(SessionMiddleware, codec=codec, settings=settings)
    app.include_router(routes.router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        return HTMLResponse(
            "<h1>403</h1><p>表单已失效，请刷新后重试 / CSRF token missing or wrong</p>", status_code=403
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "who": getattr(request.state, "principal", ANONYMOUS),
                "status": exc.status_code,
                "detail": exc.detail,
            },
            status_code=exc.status_code,
            headers=exc.headers,
        )

    return app
