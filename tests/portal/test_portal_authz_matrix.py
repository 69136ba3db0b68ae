"""Every route × every role × an own (3701…) and a foreign (4418…) county.

The route list comes from ``app.routes``: a route without an entry in ``portal.policy.POLICIES``
fails :func:`test_every_route_declares_a_policy`, and a new route is exercised here automatically.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from portal_world import FOREIGN, MONTHS, OWN, csrf_of, login
from starlette.routing import Route

from portal.policy import POLICIES, PUBLIC

ROLES = ("anonymous", "bureau_a", "city_a", "prov_a", "auditor", "admin", "token_3701")
ROLE_OF = {
    "anonymous": "anonymous",
    "bureau_a": "bureau",
    "city_a": "city",
    "prov_a": "province",
    "auditor": "auditor",
    "admin": "admin",
    "token_3701": "token",
}
SCOPED_37 = {"bureau_a", "city_a", "prov_a", "token_3701"}


def _routes(app) -> list[tuple[str, str]]:
    found = []
    for r in app.routes:
        if isinstance(r, Route):
            for m in sorted(r.methods or ()):
                if m != "HEAD":
                    found.append((m, r.path))
    return found


def test_every_route_declares_a_policy(app):
    missing = [(m, p) for m, p in _routes(app) if (m, p) not in POLICIES]
    assert not missing, f"routes without an access policy: {missing}"
    assert len(_routes(app)) >= 28


def _url(path: str, scope: str, world) -> str:
    county = OWN if scope == "own" else FOREIGN
    uscc = (world.own_uscc if scope == "own" else world.foreign_uscc)[5]
    return path.replace("{uscc}", uscc).replace("{month}", MONTHS[0]).replace("{county}", county)


def _form(path: str, scope: str, world) -> dict[str, object]:
    uscc = (world.own_uscc if scope == "own" else world.foreign_uscc)[6]
    if path == "/filings":
        return {
            "data": {
                "uscc": uscc,
                "filing_number": f"MX-{scope}-{uscc[-6:]}",
                "filed_date": "2026-01-05",
                "status": "已备案",
            }
        }
    if path == "/filings/upload":
        body = f"统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态\n{uscc},UP-{scope},2026-01-05,,已备案\n"
        return {"files": {"file": ("f.csv", body.encode("utf-8"), "text/csv")}}
    if path == "/login":
        return {"data": {"username": "nobody", "password": "x"}}
    if path == "/inbox/seen":
        return {"data": {"month": MONTHS[0]}}
    return {"data": {}}


@pytest.fixture(scope="module")
def clients(app, world):
    made = {}
    for who in ROLES:
        c = TestClient(app)
        if who == "token_3701":
            c.headers["Authorization"] = f"Bearer {world.tokens['3701']}"
        elif who != "anonymous":
            login(c, who)
        made[who] = c
    yield made
    for c in made.values():
        c.close()


def test_matrix(app, world, clients):
    foreign_usccs = set(world.foreign_uscc)
    cells = 0
    failures = []
    for method, path in _routes(app):
        policy = POLICIES[(method, path)]
        for who in ROLES:
            for scope in ("own", "foreign"):
                if path in ("/logout",):
                    continue  # ends the shared session; covered by test_security
                cells += 1
                c = clients[who]
                url = _url(path, scope, world)
                if method == "GET":
                    r = c.get(url, follow_redirects=False)
                else:
                    kwargs = _form(path, scope, world)
                    if who not in ("token_3701",):
                        kwargs.setdefault("data", {})
                        kwargs["data"] = {**kwargs["data"], "csrf": csrf_of(c, "/login")}  # type: ignore[dict-item]
                    r = c.post(url, follow_redirects=False, **kwargs)  # type: ignore[arg-type]
                role = ROLE_OF[who]
                if role == "token" and not policy.api:
                    role = "anonymous"  # a bearer token is no session: pages see an anonymous visitor
                allowed = role in policy.roles
                tag = f"{method} {url} as {who}"
                if not allowed:
                    if policy.api:
                        ok = r.status_code == 401
                    elif role == "anonymous":
                        ok = r.status_code == 303 and r.headers["location"].startswith("/login")
                    else:
                        ok = r.status_code in (401, 403)
                    if not ok:
                        failures.append(f"{tag}: expected refusal, got {r.status_code}")
                    continue
                if r.status_code >= 500:
                    failures.append(f"{tag}: server error {r.status_code}")
                    continue
                body = r.content.decode("utf-8", "replace")
                if who in SCOPED_37 and policy is not PUBLIC:  # 公示 is public everywhere by design
                    typed = (
                        (world.foreign_uscc[6],) if method == "POST" else ()
                    )  # the caller's own input echoed
                    leaked = {u for u in foreign_usccs if u in body and u not in typed}
                    if leaked:
                        failures.append(f"{tag}: foreign institutions in the answer: {sorted(leaked)[:3]}")
                    targeted = "{uscc}" in path or "{county}" in path
                    if scope == "foreign" and method == "GET" and targeted and r.status_code != 404:
                        failures.append(f"{tag}: foreign object answered {r.status_code}, not 404")
                    if scope == "own" and method == "GET" and "{uscc}" in path and r.status_code != 200:
                        failures.append(f"{tag}: own object answered {r.status_code}")
    assert not failures, "\n".join(failures[:40])
    # routes × roles × scopes actually exercised
    assert cells >= 28 * 7 * 2 - 7 * 2
    print(f"authorization matrix: {cells} cells")


def test_foreign_filing_was_not_written(app, world, clients):
    import sqlalchemy as sa

    from sink.models import filings

    with world.engine.connect() as conn:
        numbers = set(
            conn.scalars(sa.select(filings.c.filing_number).where(filings.c.uscc.in_(world.foreign_uscc)))
        )
    assert not any(n.startswith(("MX-", "UP-")) for n in numbers)
