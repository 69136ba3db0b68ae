"""``regsync demo --serve``: after the pipeline demo filled the store, serve the portal on it.

:func:`serve_demo` makes three demo accounts (a county bureau for the county with the most
institutions, its city, an auditor) and a roster token, prints the URL and the credentials, and
serves on 127.0.0.1 until Ctrl-C. :func:`demo_and_serve` is the whole path in one call: the
pipeline demo with its stack kept up, the portal, then the stack stopped.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoAccounts:
    """What the demo prints: who can log in to what."""

    url: str
    bureau: tuple[str, str, str]  # user, password, county
    city: tuple[str, str, str]
    auditor: tuple[str, str]
    token: str
    token_prefix: str


def _busiest_county(engine: sa.Engine) -> str:
    from sink.models import institutions

    with engine.connect() as conn:
        row = conn.execute(
            sa.select(institutions.c.county_code, sa.func.count().label("n"))
            .where(institutions.c.county_code.is_not(None), institutions.c.county_code != "000000")
            .group_by(institutions.c.county_code)
            .order_by(sa.desc("n"), institutions.c.county_code)
            .limit(1)
        ).first()
    return row[0] if row else "370102"


def make_accounts(engine: sa.Engine, url: str) -> DemoAccounts:
    """Create (or reset) the demo accounts and a fresh roster token."""
    from portal import accounts

    county = _busiest_county(engine)
    city = county[:4]
    made: dict[str, str] = {}
    for name, role, region in (
        ("demo-bureau", "bureau", county),
        ("demo-city", "city", city),
        ("demo-auditor", "auditor", None),
    ):
        password = secrets.token_urlsafe(9)
        try:
            accounts.add_user(engine, name, role, region, password)
        except accounts.AccountError:
            accounts.reset_user(engine, name, password)
        made[name] = password
    _, token = accounts.add_token(engine, "消防(演示)", city)
    return DemoAccounts(
        url,
        ("demo-bureau", made["demo-bureau"], county),
        ("demo-city", made["demo-city"], city),
        ("demo-auditor", made["demo-auditor"]),
        token,
        city,
    )


def serve_demo(
    database_url: str, output_dir: Path, *, host: str = "127.0.0.1", port: int = 8000, say: Say = print
) -> None:
    """Serve the portal over a demo store until Ctrl-C, after printing the demo accounts."""
    import uvicorn

    from portal.app import create_app
    from portal.settings import PortalSettings

    settings = PortalSettings(output_dir=output_dir, host=host, port=port)
    app = create_app(database_url, settings)
    demo = make_accounts(app.state.engine, f"http://{host}:{port}/")
    for line in describe(demo):
        say(line)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def describe(demo: DemoAccounts) -> list[str]:
    """The lines printed for the person trying the demo (these are throwaway demo credentials)."""
    return [
        f"portal: {demo.url}   (Ctrl-C stops it and the demo stack)",
        f"  county bureau  {demo.bureau[0]} / {demo.bureau[1]}   county {demo.bureau[2]}",
        f"  city           {demo.city[0]} / {demo.city[1]}   prefix {demo.city[2]}",
        f"  auditor        {demo.auditor[0]} / {demo.auditor[1]}",
        f"  roster API     curl -H 'Authorization: Bearer {demo.token}' {demo.url}api/v1/institutions",
        f"  public 公示     {demo.url}public      API docs {demo.url}docs",
    ]


def demo_and_serve(
    *,
    months: tuple[str, ...] = ("2026-01", "2026-02", "2026-03", "2026-04"),
    per_month: int = 60,
    root: Path = Path(".regsync/demo"),
    port: int = 8000,
    say: Say = print,
) -> None:
    """The pipeline demo with its stack kept up, the portal on its store, then the stack stopped."""
    import os
    import signal

    from regsync.demo import run_demo
    from regsync.settings import StackSettings
    from regsync.stack.launcher import Stack

    summary = run_demo(root=root, months=months, per_month=per_month, keep_stack=True, say=say)
    stack = Stack(StackSettings(state_dir=root.absolute() / "stack"))
    try:
        endpoints = stack.endpoints()
        if endpoints is None or not endpoints.database_url:
            raise RuntimeError("the demo stack is not running")
        # The auditors' DLQ pages read Kafka through the pipeline's settings: point them at this stack.
        os.environ["REGSYNC_KAFKA_BOOTSTRAP"] = endpoints.bootstrap_servers
        os.environ["REGSYNC_REGISTRY_URL"] = endpoints.registry_url
        os.environ["REGSYNC_DATABASE_URL"] = endpoints.database_url
        from regsync.settings import get_settings

        get_settings.cache_clear()
        # uvicorn re-raises the signal that stopped it once it has shut down; make both Ctrl-C and
        # SIGTERM end as KeyboardInterrupt here, so the stack below is always stopped.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            serve_demo(endpoints.database_url, summary.output_dir or root / "output", port=port, say=say)
    finally:
        say("stopping the stack…")
        stack.down()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C."""
    raise KeyboardInterrupt
