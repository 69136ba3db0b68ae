"""Open the written audit report in a real headless Chromium, offline, and keep its screenshot.

Why a browser and not only an HTML parser: auditors read the report in a browser (and print it to PDF
from there), so the test proves a real engine lays it out with no network, and the screenshot under
``test-artifacts/`` lets a person see what the auditors see. Needs Debian's ``chromium`` and a CJK font
(``fonts-noto-cjk``); no Kafka.
"""

from __future__ import annotations

import importlib.util
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
