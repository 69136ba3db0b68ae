from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi.testclient import TestClient
from portal_world import OWN, PASSWORD, SECRET, csrf_of, login

from portal import accounts
from portal.models import audit, tokens, users


def test_csrf_missing_or_wrong_is_403(as_user, world):
    c = as_user("bureau_a")
    form = {
        "uscc": world.own_uscc[0],
        "filing_number": "CSRF-1",
        "filed_date": "2026-01-02",
        "status": "已备案",
    }
    assert c.post("/filings", data=form, follow_redirects=False).status_code == 403
    assert c.post("/filings", data={**form, "csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert c.post("/logout", data={}, follow_redirects=False).status_code == 403
    with world.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM filings WHERE filing_number = 'CSRF-1'")) == 0


def test_login_form_needs_csrf(client):
    r = client.post("/login", data={"username": "bureau_a", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403


def test_lockout_after_five_failures_then_reset(app, world):
    accounts.add_user(world.engine, "lockme", "bureau", OWN, PASSWORD)
    with TestClient(app) as c:
        for _ in range(4):
            r = c.post("/login", data={"username": "lockme", "password": "nope", "csrf": csrf_of(c)})
            assert r.status_code == 401 and "用户名或密码错误" in r.text
        r = c.post("/login", data={"username": "lockme", "password": "nope", "csrf": csrf_of(c)})
        assert r.status_code == 429 and "已锁定" in r.text and "locked until" in r.text
        # even the right password is refused while locked
        r = c.post(
            "/login",
            data={"username": "lockme", "password": PASSWORD, "csrf": csrf_of(c)},
            follow_redirects=False,
        )
        assert r.status_code == 429
    accounts.reset_user(world.engine, "lockme", PASSWORD)
    with TestClient(app) as c:
        login(c, "lockme")
        assert c.get("/inbox", follow_redirects=False).status_code == 200
    with world.engine.connect() as conn:
        outcomes = list(
            conn.scalars(
                sa.select(audit.c.outcome).where(audit.c.target == "lockme", audit.c.action == "login")
            )
        )
    assert outcomes.count("bad") == 4 and "locked" in outcomes and "ok" in outcomes


def test_logout_ends_the_session_everywhere(app):
    with TestClient(app) as c:
        login(c, "city_a")
        stolen = dict(c.cookies)
        assert c.get("/inbox", follow_redirects=False).status_code == 200
        assert (
            c.post("/logout", data={"csrf": csrf_of(c, "/inbox")}, follow_redirects=False).status_code == 303
        )
    with TestClient(app, cookies=stolen) as replay:
        assert replay.get("/inbox", follow_redirects=False).status_code == 303


def test_session_cookie_flags(app):
    with TestClient(app) as c:
        token = csrf_of(c)
        r = c.post(
            "/login",
            data={"username": "auditor", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie


def test_no_secret_in_clear_in_db_pages_or_logs(app, world, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(app) as c:
        login(c, "admin")
        pages = [c.get(p).text for p in ("/audit/log", "/audit/log.csv", "/inbox", "/packages", "/public")]
        api = TestClient(app, headers={"Authorization": f"Bearer {world.tokens['3701']}"})
        pages.append(api.get("/api/v1/institutions?limit=5").text)
    dump = []
    with world.engine.connect() as conn:
        for table in ("portal_users", "portal_tokens", "portal_audit", "portal_login_failures", "filings"):
            dump.extend(str(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")))
        hashes = list(conn.scalars(sa.select(users.c.password_hash)))
        assert all(h.startswith("$argon2id$") for h in hashes)
        assert len(list(conn.scalars(sa.select(tokens.c.token_sha256)))) >= 2
    haystack = "\n".join(pages + dump + [caplog.text])
    for secret in (PASSWORD, SECRET, world.tokens["3701"], world.tokens["4418"]):
        assert secret not in haystack


def test_revoked_and_wrong_tokens_get_401(app, world):
    token_id, secret = accounts.add_token(world.engine, "信用", "37")
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.get("/api/v1/institutions?limit=1").status_code == 200
        accounts.revoke_token(world.engine, token_id)
        assert c.get("/api/v1/institutions?limit=1").status_code == 401
    with TestClient(app, headers={"Authorization": "Bearer rst_not-a-token"}) as c:
        assert c.get("/api/v1/institutions").status_code == 401
