"""Data Docs pages rewritten to vendored assets: every CDN URL GX uses is known, and nothing else loads."""

from __future__ import annotations

import re
from pathlib import Path

import great_expectations

from quality.data_docs import CDN_ASSETS, SITE_VENDOR_DIR, VENDORED_ASSETS, make_offline, rewrite_page

TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"


def test_every_cdn_asset_in_gx_templates_is_vendored():
    """A GX upgrade that adds or bumps a CDN asset fails here, not silently on an offline network."""
    found = set()
    for template in TEMPLATES.glob("*.j2"):
        text = template.read_text(encoding="utf-8")
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", text):
            found.update(re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", tag))
    assert found, "GX's templates moved; look for the CDN references again"
    assert found <= set(CDN_ASSETS), sorted(found - set(CDN_ASSETS))
    for local in CDN_ASSETS.values():
        assert (VENDORED_ASSETS / local).is_file(), local


def test_rewrite_is_relative_idempotent_and_drops_unknown_cdns():
    page = (
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>\n'
        '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" '
        'integrity="sha384-x" crossorigin="anonymous"></script>\n'
        '<script src="https://cdn.example.org/new-lib.js"></script>\n'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=2">\n'
        '<a href="https://greatexpectations.io">GX</a>\n<script>var x = 1;</script>'
    )
    out, unknown = rewrite_page(page, "../..")
    assert f'href="../../{SITE_VENDOR_DIR}/bootstrap/bootstrap.min.css"' in out
    assert f'<script src="../../{SITE_VENDOR_DIR}/bootstrap/bootstrap.min.js"></script>' in out
    assert "integrity" not in out and "crossorigin" not in out
    assert unknown == {"https://cdn.example.org/new-lib.js"} and "new-lib" not in out
    assert 'src="../../static/images/logo-long.png"' in out and "dataContextId" not in out
    assert '<a href="https://greatexpectations.io">' in out  # a link loads nothing: kept
    assert "<script>var x = 1;</script>" in out
    assert rewrite_page(out, "../..") == (out, set())


def test_make_offline_copies_assets_into_the_site(tmp_path):
    (tmp_path / "validations" / "a").mkdir(parents=True)
    (tmp_path / "index.html").write_text(
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>', encoding="utf-8"
    )
    (tmp_path / "validations" / "a" / "p.html").write_text(
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>', encoding="utf-8"
    )
    result = make_offline(tmp_path)
    assert (result.pages, result.rewritten, result.unknown_urls) == (2, 2, ())
    assert (tmp_path / SITE_VENDOR_DIR / "jquery" / "jquery.min.js").is_file()
    assert f'src="../../{SITE_VENDOR_DIR}/jquery/jquery.min.js"' in (
        tmp_path / "validations" / "a" / "p.html"
    ).read_text(encoding="utf-8")
    assert make_offline(tmp_path).rewritten == 0


def test_failed_expectations_name_the_usccs_they_found(tmp_path):
    """A timeliness failure's sample is (date, instant) pairs; the report needs the institutions."""
    import importlib.util

    from quality.batch_checks import run_suite
    from quality.suites import MonthlyParams, volume_bounds
    from regsync.reporting.history import _found

    spec = importlib.util.spec_from_file_location(
        "gx_frames", Path(__file__).with_name("test_expectations.py")
    )
    assert spec is not None and spec.loader is not None
    frames = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frames)
    outcome = run_suite(
        "monthly",
        frames.monthly_frame(),
        context_root=tmp_path,
        run_id="m1",
        month="2024-03",
        params=MonthlyParams(volume_bounds=volume_bounds([4, 5, 6])),
        build_data_docs=False,
    )
    late = {
        o.condition: o.details["unexpected_usccs"]
        for o in outcome.failed
        if o.expectation_type == "expect_column_pair_values_to_be_pushed_in_registration_month"
    }
    assert late == {"registrar == 'MINZHENG'": [frames.V52], "registrar == 'SHICHANG'": [frames.Z92]}
    shichang = next(o for o in outcome.failed if o.condition == "registrar == 'SHICHANG'")
    found = _found({**shichang.details, "unexpected_sample": list(shichang.unexpected_sample)})
    assert found == [f"{frames.Z92} (2024-03-31, 2024-03-31T16:30:00Z)"]
