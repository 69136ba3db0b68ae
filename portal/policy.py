"""Every route's access decision, declared in one table the tests enumerate.

A route is added with :func:`route`, which records ``(method, path) → Policy`` in :data:`POLICIES`
and attaches the guard that enforces it. The authorization-matrix test walks ``app.routes`` and fails
on any route missing from the table, so a new page cannot ship without an access decision. Region
scope is not decided here but by :class:`portal.scope.Principal` inside every query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from portal.scope import ANONYMOUS, Principal

STAFF_ROLES = frozenset({"bureau", "city", "province", "auditor", "admin"})


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may call a route: roles (``anonymous``/``token`` included when allowed), and why."""

    name: str
    roles: frozenset[str]
    api: bool = False  # bearer token instead of the session cookie

    def allows(self, who: Principal) -> bool:
        """Whether the principal's role is admitted."""
        return who.role in self.roles


PUBLIC = Policy("public", frozenset({"anonymous", *STAFF_ROLES}))
SIGNED_IN = Policy("signed-in", STAFF_ROLES)
STAFF = Policy("staff, region-scoped", STAFF_ROLES)
BUREAU = Policy("county bureau, own county", frozenset({"bureau"}))
AUDIT = Policy("auditors and admins", frozenset({"auditor", "admin"}))
API = Policy("roster token, region-scoped", frozenset({"token"}), api=True)

POLICIES: dict[tuple[str, str], Policy] = {
    # FastAPI's own documentation routes: the API's shape is public, its data is not.
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("HEAD", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("HEAD", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("HEAD", "/redoc"): PUBLIC,
}
"""``(method, path) → Policy`` for every route of the app."""


class LoginRequired(Exception):
    """An anonymous visitor asked for a page that needs an account (answered with a redirect)."""


class CsrfRejected(Exception):
    """A state-changing form without the session's CSRF token."""


GuardFactory = Callable[[Policy], Callable[..., Any]]
_guard_factory: list[GuardFactory] = []


def set_guard(factory: GuardFactory) -> None:
    """Install the guard (the app module supplies it: it needs the database and the session)."""
    _guard_factory[:] = [factory]


def route(router: APIRouter, method: str, path: str, policy: Policy, **kwargs: Any) -> Callable[[Any], Any]:
    """Decorator: add an endpoint with its policy recorded and enforced."""

    def add(fn: Any) -> Any:
        key = (method, path)
        if key in POLICIES and POLICIES[key] is not policy:
            raise RuntimeError(f"route {method} {path} declared twice")
        POLICIES[key] = policy
        router.add_api_route(
            path,
            fn,
            methods=[method],
            dependencies=[Depends(_guard_factory[0](policy))],
            **kwargs,
        )
        return fn

    return add


def principal(request: Request) -> Principal:
    """The caller the guard established for this request."""
    return getattr(request.state, "principal", ANONYMOUS)


def deny(who: Principal) -> None:
    """Refuse: anonymous visitors are sent to log in, everyone else gets 403."""
    if who.kind == "anonymous":
        raise LoginRequired
    raise HTTPException(status_code=403, detail="无权访问 / forbidden")
