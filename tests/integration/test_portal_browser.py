"""The portal in a real browser on PostgreSQL: a county clerk's round trip, and a public visitor.

Debian's chromium driven by Playwright (its own browser download is not reachable here); uvicorn
serves the app in a thread on a free loopback port. Screenshots go to ``test-artifacts/portal/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "portal"))

from portal_world import MONTHS, OWN, PASSWORD, build

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "portal"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def portal_db(stack) -> Iterator[str]:
    """A PostgreSQL database of the session stack for this module (the browser tests share it)."""
    import uuid

    admin = sa.create_engine(stack.database_url, isolation_level="AUTOCOMMIT")
    name = f"portal_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def served(portal_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    import uvicorn
    from pydantic import SecretStr

    from portal.app import create_app
    from portal.settings import PortalSettings

    out = tmp_path_factory.mktemp("portal-browser")
    world = build(portal_db, out, per_month=80)
    app = create_app(
        portal_db, PortalSettings(session_secret=SecretStr("browser-test-secret"), output_dir=out)
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(2000):  # bounded wait on the server's own flag, not a fixed sleep
        if server.started:
            started.set()
            break
        thread.join(0.01)
    assert started.is_set(), "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(10)
    world.engine.dispose()
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _count(page, selector: str) -> int:
    return int(page.locator(selector).inner_text().strip())


def test_clerk_round_trip(served, browser) -> None:
    base, world = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        accept_downloads=True, viewport={"width": 1360, "height": 900}, locale="zh-CN"
    )
    page = context.new_page()
    page.goto(f"{base}/inbox")
    assert "/login" in page.url
    page.fill("input[name=username]", "bureau_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/inbox"))
    assert _count(page, "#inbox-total") > 0
    assert page.locator("#inbox-table tr.unseen").count() > 0
    page.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=False)

    page.goto(f"{base}/gap?sort=-days")
    before = _count(page, "#unfiled-total")
    first = page.locator("#gap-table a", has_text="备案 File").first
    uscc = page.locator("#gap-table tr").nth(1).locator("td").first.inner_text().strip()
    first.click()
    page.wait_for_url(re.compile(r"/filings/new"))
    assert page.input_value("#uscc") == uscc
    page.fill("#filing_number", "BROWSER-0001")
    page.fill("#filed_date", "2026-01-06")
    page.click("#submit-filing")
    page.wait_for_url(re.compile(rf"/institutions/{uscc}"))
    assert page.locator("#filed-flash").is_visible()
    assert "BROWSER-0001" in page.locator("#filings").inner_text()
    page.screenshot(path=str(ARTIFACTS / "institution.png"), full_page=False)
    page.goto(f"{base}/gap?sort=-days")
    assert _count(page, "#unfiled-total") == before - 1
    page.screenshot(path=str(ARTIFACTS / "gap.png"), full_page=False)

    page.goto(f"{base}/packages")
    page.screenshot(path=str(ARTIFACTS / "packages.png"), full_page=False)
    with page.expect_download() as info:
        page.click(f"a[href='/packages/{MONTHS[0]}/{OWN}.zip']")
    data = Path(info.value.path()).read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["rows"] > 0 and manifest["county_code"] == OWN
    for name, meta in manifest["files"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == meta["sha256"]
    from portal.models import receipts

    with world.engine.connect() as conn:
        got = conn.execute(
            sa.select(receipts.c.sha256).where(receipts.c.month == MONTHS[0], receipts.c.county_code == OWN)
        ).scalar_one()
    assert got == hashlib.sha256(data).hexdigest()
    page.reload()
    assert "已签收 bureau_a" in page.locator("#packages-table").inner_text()

    page.click("header button[type=submit]")  # 退出 Log out
    page.wait_for_url(re.compile(r"/login"))
    page.goto(f"{base}/inbox")
    assert "/login" in page.url
    context.close()


def test_public_visitor_searches(served, browser) -> None:
    base, world = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1360, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/public")
    everything = _count(page, "#total")
    assert everything > 0
    page.fill("#q", world.own_uscc[0])
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"q="))
    assert _count(page, "#total") == 1
    assert world.own_uscc[0] in page.locator("#public-table").inner_text()
    text = page.locator("main").inner_text()
    assert "法定代表人" not in text
    page.goto(f"{base}/public")
    page.screenshot(path=str(ARTIFACTS / "public.png"), full_page=False)
    context.close()
