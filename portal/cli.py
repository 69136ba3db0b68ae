"""The portal's commands: ``users``, ``tokens`` and ``serve`` (wired into ``regsync`` by :func:`register`).

Passwords and tokens are printed once, when made, and never stored or logged in clear.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer

users_app = typer.Typer(help="Portal accounts: bureau (--county), city/province (--prefix), auditor, admin.")
tokens_app = typer.Typer(help="Roster-API bearer tokens for other departments (stored hashed).")


def _engine(database_url: str | None = None) -> sa.Engine:
    from portal.db import database_url as resolve
    from portal.db import open_engine

    return open_engine(resolve(database_url))


def upgrade_database(database_url: str) -> str | None:
    """The portal's tables to head as the owner (``regsync db upgrade``); returns the revision now.

    Run before the grants, so a portal that then logs in with its own role (no DDL) finds its tables.
    """
    from alembic.migration import MigrationContext

    from portal import db
    from sink import store

    engine = store.create_engine(database_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table": db.VERSION_TABLE}
            ).get_current_revision()
    finally:
        engine.dispose()


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="bureau | city | province | auditor | admin")],
    county: Annotated[str | None, typer.Option(help="6-digit county code (role bureau).")] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Division prefix: 4 digits (city), 2 (province).")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
) -> None:
    """Create an account; prints a generated password once unless --password-stdin."""
    from portal.accounts import AccountError, add_user

    password = typer.get_text_stream("stdin").readline().rstrip("\n") if password_stdin else None
    try:
        made = add_user(_engine(), name, role, county or prefix, password)
    except AccountError as exc:
        _fail(str(exc))
        return
    typer.echo(f"user {name} ({role}{' ' + (county or prefix or '') if county or prefix else ''}) created")
    if not password_stdin:
        typer.echo(f"password (shown once): {made}")


@users_app.command("list")
def users_list() -> None:
    """Accounts, roles, regions, state."""
    from portal.accounts import list_users

    for u in list_users(_engine()):
        state = "disabled" if u["disabled"] else "active"
        last = u["last_login_at"].isoformat(timespec="seconds") if u["last_login_at"] else "-"
        typer.echo(f"{u['username']:<20} {u['role']:<9} {u['region'] or '*':<7} {state:<8} last login {last}")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable an account and end its sessions."""
    from portal.accounts import AccountError, disable_user

    try:
        disable_user(_engine(), name)
    except AccountError as exc:
        _fail(str(exc))
    typer.echo(f"user {name} disabled")


@users_app.command("reset")
def users_reset(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the new password from standard input.")] = False,
) -> None:
    """New password, lockout cleared, account enabled, sessions ended."""
    from portal.accounts import AccountError, reset_user

    password = typer.get_text_stream("stdin").readline().rstrip("\n") if password_stdin else None
    try:
        made = reset_user(_engine(), name, password)
    except AccountError as exc:
        _fail(str(exc))
        return
    typer.echo(f"user {name} reset")
    if not password_stdin:
        typer.echo(f"password (shown once): {made}")


@tokens_app.command("add")
def tokens_add(
    department: Annotated[str, typer.Option(help="Who uses it, e.g. 消防, 市场监管, 信用.")],
    prefix: Annotated[str, typer.Option(help="Region: 2 (province), 4 (city) or 6 (county) digits.")],
) -> None:
    """Make a token; prints it once (only its SHA-256 is stored)."""
    from portal.accounts import AccountError, add_token

    try:
        token_id, secret = add_token(_engine(), department, prefix)
    except AccountError as exc:
        _fail(str(exc))
        return
    typer.echo(f"token {token_id} for {department} ({prefix}) created")
    typer.echo(f"token (shown once): {secret}")


@tokens_app.command("list")
def tokens_list() -> None:
    """Tokens: id, department, region, state (never the secret)."""
    from portal.accounts import list_tokens

    for t in list_tokens(_engine()):
        state = "revoked" if t["revoked"] else "active"
        used = t["last_used_at"].isoformat(timespec="seconds") if t["last_used_at"] else "-"
        typer.echo(
            f"{t['id']:>4} {t['department']:<12} {t['region']:<7} {t['hint']}… {state:<8} last used {used}"
        )


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="Token id from `tokens list`.")]) -> None:
    """Revoke a token at once."""
    from portal.accounts import AccountError, revoke_token

    try:
        revoke_token(_engine(), token_id)
    except AccountError as exc:
        _fail(str(exc))
    typer.echo(f"token {token_id} revoked")


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default REGSYNC_PORTAL_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REGSYNC_PORTAL_PORT, 8000).")] = None,
) -> None:
    """Serve the portal (pages, downloads, roster API) with uvicorn until Ctrl-C."""
    import os

    import uvicorn

    from portal.app import create_app
    from portal.settings import get_portal_settings

    settings = get_portal_settings()
    app = create_app(settings=settings)
    if "REGSYNC_PORTAL_SESSION_SECRET" not in os.environ:
        typer.secho(
            "REGSYNC_PORTAL_SESSION_SECRET is not set: a random secret signs sessions (they end on restart) "
            "and the package-signing key changes with it; set both for a lasting deployment",
            fg="yellow",
            err=True,
        )
    bind_host, bind_port = host or settings.host, port or settings.port
    typer.echo(f"portal on http://{bind_host}:{bind_port}/  (public 公示 /public, API docs /docs)")
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="info", proxy_headers=False)


def register(app: typer.Typer) -> None:
    """Add ``users``, ``tokens`` and ``serve`` to a Typer app (``regsync``'s)."""
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
    app.command("serve")(serve)


main = typer.Typer(
    help="The health department's portal (also reachable as `regsync users|tokens|serve`).",
    no_args_is_help=True,
)
register(main)


@main.command("demo")
def demo(
    months: Annotated[int, typer.Option(help="How many months to replay (from 2026-01).")] = 4,
    per_month: Annotated[int, typer.Option(help="New institutions per month.")] = 60,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
) -> None:
    """`regsync demo`, then the portal on its store until Ctrl-C (what `regsync demo --serve` runs)."""
    from portal.demo import demo_and_serve

    demo_and_serve(
        months=tuple(f"2026-{m:02d}" for m in range(1, months + 1)), per_month=per_month, port=port
    )
