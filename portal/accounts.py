"""Accounts, tokens, login throttling and the audit log, as functions over an engine.

Shared by the CLI (``users``/``tokens``) and the web app, so the rules (region shape per role,
lockout, what an audit row holds) are written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from portal.models import ROLES, audit, login_failures, tokens, users
from portal.scope import Principal
from portal.security import hash_password, hash_token, new_password, new_token, verify_password

__all__ = [
    "AccountError",
    "LoginResult",
    "add_token",
    "add_user",
    "authenticate",
    "disable_user",
    "list_tokens",
    "list_users",
    "record",
    "reset_user",
    "revoke_token",
    "token_principal",
    "user_principal",
]

_REGION_DIGITS = {"bureau": 6, "city": 4, "province": 2, "auditor": 0, "admin": 0}


class AccountError(ValueError):
    """A refused account operation (bad role or region, unknown or duplicate user)."""


def _now() -> datetime:
    return datetime.now(UTC)


def check_region(role: str, region: str | None) -> str:
    """The region a role needs: bureau 6 digits, city 4, province 2, auditor/admin none."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    digits = _REGION_DIGITS[role]
    value = (region or "").strip()
    if digits == 0:
        if value:
            raise AccountError(f"role {role} sees every county; give no --county/--prefix")
        return ""
    if not re.fullmatch(rf"\d{{{digits}}}", value):
        what = "--county (6 digits)" if digits == 6 else f"--prefix ({digits} digits)"
        raise AccountError(f"role {role} needs {what}, got {value!r}")
    return value


def add_user(
    engine: sa.Engine, username: str, role: str, region: str | None, password: str | None = None
) -> str:
    """Create an account; returns the password (generated when not given), to be shown once."""
    region = check_region(role, region)
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{2,64}", username):
        raise AccountError("user names are 2–64 letters, digits or _ . @ -")
    password = password or new_password()
    with engine.begin() as conn:
        if conn.scalar(sa.select(users.c.id).where(users.c.username == username)) is not None:
            raise AccountError(f"user {username!r} exists")
        conn.execute(
            users.insert().values(
                username=username,
                role=role,
                region=region,
                password_hash=hash_password(password),
                disabled=False,
                session_epoch=0,
                created_at=_now(),
            )
        )
    return password


def list_users(engine: sa.Engine) -> list[dict[str, Any]]:
    """Accounts without their hashes, by name."""
    cols = [c for c in users.c if c.name != "password_hash"]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(*cols).order_by(users.c.username)).mappings()]


def disable_user(engine: sa.Engine, username: str) -> None:
    """Disable an account and end its sessions."""
    with engine.begin() as conn:
        done = conn.execute(
            users.update()
            .where(users.c.username == username)
            .values(disabled=True, session_epoch=users.c.session_epoch + 1)
        )
        if done.rowcount == 0:
            raise AccountError(f"no user {username!r}")


def reset_user(engine: sa.Engine, username: str, password: str | None = None) -> str:
    """New password, re-enabled, lockout cleared, sessions ended; returns the password."""
    password = password or new_password()
    with engine.begin() as conn:
        done = conn.execute(
            users.update()
            .where(users.c.username == username)
            .values(
                password_hash=hash_password(password),
                disabled=False,
                session_epoch=users.c.session_epoch + 1,
            )
        )
        if done.rowcount == 0:
            raise AccountError(f"no user {username!r}")
        conn.execute(login_failures.delete().where(login_failures.c.username == username))
    return password


def bump_epoch(engine: sa.Engine, user_id: int) -> None:
    """End every session of a user (logout)."""
    with engine.begin() as conn:
        conn.execute(
            users.update().where(users.c.id == user_id).values(session_epoch=users.c.session_epoch + 1)
        )


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The outcome of a login attempt: the principal and epoch, or why not."""

    principal: Principal | None
    epoch: int = 0
    locked_until: datetime | None = None
    reason: str = ""


def authenticate(
    engine: sa.Engine,
    username: str,
    password: str,
    ip: str | None,
    *,
    max_failures: int,
    lockout: timedelta,
) -> LoginResult:
    """Check a login with throttling: ``max_failures`` within ``lockout`` lock the name for ``lockout``.

    The lock applies to the name whether or not the account exists, so the answer does not reveal
    which names are accounts; a correct password during a lockout is refused too.
    """
    now = _now()
    with engine.begin() as conn:
        recent = conn.execute(
            sa.select(login_failures.c.at)
            .where(login_failures.c.username == username, login_failures.c.at > now - lockout)
            .order_by(login_failures.c.at.desc())
            .limit(max_failures)
        ).scalars()
        recent_list = [_aware(t) for t in recent]
        if len(recent_list) >= max_failures:
            until = recent_list[0] + lockout
            return LoginResult(None, locked_until=until, reason="locked")
        row = conn.execute(sa.select(users).where(users.c.username == username)).mappings().first()
        ok = row is not None and verify_password(row["password_hash"], password) and not row["disabled"]
        if not ok:
            conn.execute(login_failures.insert().values(username=username, at=now, ip=ip))
            if len(recent_list) + 1 >= max_failures:
                return LoginResult(None, locked_until=now + lockout, reason="locked")
            return LoginResult(None, reason="disabled" if row is not None and row["disabled"] else "bad")
        assert row is not None  # ``ok`` implies a row
        conn.execute(login_failures.delete().where(login_failures.c.username == username))
        conn.execute(users.update().where(users.c.id == row["id"]).values(last_login_at=now))
        return LoginResult(_principal(row), epoch=row["session_epoch"])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _principal(row: Any) -> Principal:
    return Principal("user", row["role"], row["region"], row["username"], row["id"])


def user_principal(conn: sa.Connection, user_id: int, epoch: int) -> Principal | None:
    """The signed-in user of a session cookie, if the account is enabled and the epoch is current."""
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
    if row is None or row["disabled"] or row["session_epoch"] != epoch:
        return None
    return _principal(row)


def add_token(engine: sa.Engine, department: str, prefix: str) -> tuple[int, str]:
    """A roster-API token for a department and region prefix (2, 4 or 6 digits); (id, secret)."""
    if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", prefix or ""):
        raise AccountError("--prefix must be 2, 4 or 6 digits (province, city, county)")
    if not department.strip():
        raise AccountError("--department is required")
    secret = new_token()
    with engine.begin() as conn:
        new_id = conn.execute(
            tokens.insert()
            .values(
                department=department.strip(),
                region=prefix,
                token_sha256=hash_token(secret),
                hint=secret[:8],
                revoked=False,
                created_at=_now(),
            )
            .returning(tokens.c.id)
        ).scalar_one()
    return new_id, secret


def list_tokens(engine: sa.Engine) -> list[dict[str, Any]]:
    """Tokens without their hashes."""
    cols = [c for c in tokens.c if c.name != "token_sha256"]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(*cols).order_by(tokens.c.id)).mappings()]


def revoke_token(engine: sa.Engine, token_id: int) -> None:
    """Revoke a token at once."""
    with engine.begin() as conn:
        if conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked=True)).rowcount == 0:
            raise AccountError(f"no token {token_id}")


def token_principal(conn: sa.Connection, secret: str) -> Principal | None:
    """The principal of a bearer token, if it exists and is not revoked."""
    row = (
        conn.execute(sa.select(tokens).where(tokens.c.token_sha256 == hash_token(secret))).mappings().first()
    )
    if row is None or row["revoked"]:
        return None
    conn.execute(tokens.update().where(tokens.c.id == row["id"]).values(last_used_at=_now()))
    return Principal("token", "token", row["region"], f"token:{row['id']} {row['department']}", row["id"])


def record(
    engine: sa.Engine | sa.Connection,
    who: Principal | str,
    action: str,
    target: str,
    *,
    ip: str | None,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """Write one audit row (in its own transaction, or the caller's connection)."""
    actor, role = (who, "-") if isinstance(who, str) else (who.name, who.role)
    values = {
        "at": _now(),
        "actor": actor,
        "role": role,
        "action": action,
        "target": target[:500],
        "outcome": outcome,
        "ip": ip,
        "detail": detail,
    }
    if isinstance(engine, sa.Connection):
        engine.execute(audit.insert().values(**values))
        return
    with engine.begin() as conn:
        conn.execute(audit.insert().values(**values))
