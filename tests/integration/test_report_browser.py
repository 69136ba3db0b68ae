"""Open the written audit report in a real headless Chromium, offline, and keep its screenshot.

Why a browser and not only an HTML parser: auditors read the report in a browser (and print it to PDF
from there), so the test proves a real engine lays it out with no network, and the screenshot under
``test-artifacts/`` lets a person see what the auditors see. Needs Debian's ``chromium`` and a CJK font
(``fonts-noto-cjk``); no Kafka.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from quality.report import write_report

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
WIDTH, HEIGHT = 1280, 2400
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
)


def _sample_metrics():
    """The unit tests' realistic month (test modules are not a package, so load it by path)."""
    spec = importlib.util.spec_from_file_location("report_sample", ROOT / "tests" / "unit" / "test_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sample_metrics()


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail("Debian's chromium is required for the report test: apt-get install -y chromium")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(_sample_metrics(), tmp_path_factory.mktemp("report"))


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (enough to tell a blank page)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_report_screenshot_in_headless_chromium(chromium, report, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "audit-report-2025-03.png"
    shot.unlink(missing_ok=True)

    result = _run(chromium, tmp_path / "profile", f"--screenshot={shot}", report.as_uri())

    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    width, height, pixels = _png_pixels(data)
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(data) > 100_000  # text, tables and charts; a blank page compresses to a few KB
    assert len(set(pixels[::7])) > 100  # many distinct byte values: something was drawn


def test_rendered_dom_has_the_month_and_the_reconciliation(chromium, report, tmp_path):
    result = _run(chromium, tmp_path / "profile", "--dump-dom", report.as_uri())

    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert '<strong id="report-month">2025-03</strong>' in dom
    assert '<table id="recon-table">' in dom
    assert "行政审批服务局" in dom and "✗" in dom
    assert dom.count("<svg") == 6
    assert "<script" not in dom.lower()


def test_report_prints_to_pdf(chromium, report, tmp_path):
    """ "PDF optional" means the browser's print: the print stylesheet must give a real document."""
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / "audit-report-2025-03.pdf"
    pdf.unlink(missing_ok=True)

    result = _run(
        chromium, tmp_path / "profile", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", report.as_uri()
    )

    assert pdf.exists(), result.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page>") + data.count(b"/Type/Page") >= 3


# --------------------------------------------------------------------------------------------------
# Great Expectations Data Docs, opened offline in Chromium driven by Playwright


def _gx_site(root: Path, *, offline: bool, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two real suite runs (the unit tests' frames) into a Data Docs site; returns its index."""
    from quality import batch_checks
    from quality.suites import MonthlyParams, volume_bounds

    spec = importlib.util.spec_from_file_location(
        "gx_frames", ROOT / "tests" / "unit" / "test_expectations.py"
    )
    assert spec is not None and spec.loader is not None
    frames = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frames)
    with monkeypatch.context() as patch:
        if not offline:  # GX's own output, to prove the browser check below can fail
            patch.setattr(batch_checks, "make_offline", lambda site: None)
        batch_checks.run_suite("gate_batch", frames.gate_frame(), context_root=root, run_id="gate-run-1")
        outcome = batch_checks.run_suite(
            "monthly",
            frames.monthly_frame(),
            context_root=root,
            run_id="month-run-1",
            month="2024-03",
            params=MonthlyParams(volume_bounds=volume_bounds([4, 5, 6])),
        )
    assert outcome.data_docs_path is not None
    return outcome.data_docs_path


def _open_offline(index: Path, shot: Path | None = None) -> dict[str, object]:
    """Open ``index`` with every non-file request aborted; what the page shows, and what it asked for."""
    from playwright.sync_api import Route, sync_playwright

    blocked: list[str] = []

    def only_files(route: Route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_files)
            page.goto(index.as_uri(), wait_until="load")
            state = page.evaluate(
                """() => ({
                    runs: [...document.querySelectorAll('table tbody tr td')].map(td => td.innerText.trim()),
                    icons: [...document.querySelectorAll('i.fas, i.far, i.fa')]
                        .filter(i => i.getBoundingClientRect().width > 0).length,
                    fontAwesome: [...document.fonts]
                        .some(f => f.family.includes('Font Awesome') && f.status === 'loaded'),
                })"""
            )
            if shot is not None:
                page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return {**state, "blocked": blocked}


def _external_loads(html: str) -> list[str]:
    """http(s) URLs the page would load: script/link/img sources and CSS ``url()`` (not ``<a>`` links)."""
    tags = re.findall(r"<(?:script|link|img)\b[^>]*>", html, re.IGNORECASE)
    urls = [u for t in tags for u in re.findall(r"""(?:src|href)\s*=\s*["'](https?://[^"']+)""", t)]
    return urls + re.findall(r"""url\(\s*["']?(https?://[^"')]+)""", html)


def test_gx_data_docs_work_offline(tmp_path, monkeypatch):
    ARTIFACTS.mkdir(exist_ok=True)
    index = _gx_site(tmp_path / "gx", offline=True, monkeypatch=monkeypatch)
    site = index.parent
    pages = sorted(site.rglob("*.html"))
    pages = [p for p in pages if "regsync-vendor" not in p.as_posix()]
    assert len(pages) >= 5  # index, two suites, two validation pages
    for page in pages:
        assert _external_loads(page.read_text(encoding="utf-8")) == [], page

    seen = _open_offline(index, ARTIFACTS / "gx-data-docs-offline.png")

    assert seen["blocked"] == []  # nothing even tried to leave the machine
    runs = " ".join(seen["runs"])  # type: ignore[arg-type]
    assert "gate-run-1" in runs and "month-run-1" in runs  # the index lists the validations
    assert seen["icons"] and seen["fontAwesome"]  # status icons drawn with the vendored font


def test_gx_data_docs_as_gx_renders_them_are_empty_offline(tmp_path, monkeypatch):
    """The failure the rewrite fixes, seen by the same check: GX's own pages list nothing offline."""
    index = _gx_site(tmp_path / "gx", offline=False, monkeypatch=monkeypatch)
    assert _external_loads(index.read_text(encoding="utf-8"))

    seen = _open_offline(index)

    assert seen["blocked"]  # it tried the CDNs
    assert "gate-run-1" not in " ".join(seen["runs"])  # type: ignore[arg-type]
    assert not seen["fontAwesome"]
