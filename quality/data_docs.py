"""Great Expectations Data Docs that work offline: CDN assets rewritten to files vendored in the repo.

Why: GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public
CDNs, and its navbar logo from an S3 bucket (with the data context id in the query string). On a
government network without internet access the index then lists no validations at all (the table is
built by bootstrap-table's JavaScript) and the status icons (Font Awesome) are missing.

How: after every Data Docs build the runner calls :func:`make_offline` on the site folder. It copies
``quality/gx_assets/`` (unmodified files from the npm packages listed in its ``SOURCES.md``) to
``<site>/static/regsync-vendor/`` and rewrites each page's ``<script src>`` / ``<link href>`` from
the CDN URL to the relative path of the vendored file (:data:`CDN_ASSETS`), dropping the
``integrity``/``crossorigin`` attributes (a CORS-mode request to a ``file:`` URL fails in browsers;
the files' SHA-256 are in ``SOURCES.md``). GX's own logo is served from the ``static/images`` folder
GX already writes. A CDN URL this table does not know (a GX upgrade added one) is removed rather than
left to fail silently, and reported, so the offline test names it. Links (``<a href>``) to GX's
website stay: they load nothing.

Rewriting is idempotent: a page already rewritten has no CDN URL left, so rebuilding the index (GX
rewrites it on every run) and re-running over old pages is safe.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["CDN_ASSETS", "SITE_VENDOR_DIR", "VENDORED_ASSETS", "OfflineResult", "make_offline"]

VENDORED_ASSETS: Final = Path(__file__).resolve().with_name("gx_assets")
"""The vendored files, committed (see ``SOURCES.md`` there for packages, versions and hashes)."""

SITE_VENDOR_DIR: Final = "static/regsync-vendor"
"""Where the vendored files go inside a Data Docs site."""

CDN_ASSETS: Final[dict[str, str]] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table/bootstrap-table-filter-control.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/bootstrap-datepicker.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark/bootstrap-prefers-dark.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/vega-embed.min.js",
}
"""Every CDN URL GX 1.x's page templates reference → the vendored file (relative to ``gx_assets``)."""

_GX_IMAGE_HOST: Final = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
_GX_LOCAL_LOGO: Final = "static/images/logo-long.png"  # GX copies its static images into every site
_TAG = re.compile(r"<(script|link)\b[^>]*>(?:\s*</script>)?", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?://[^"']*)\2""", re.IGNORECASE)
_DROP_ATTRS = re.compile(r"""\s+(integrity|crossorigin)\s*=\s*(["'])[^"']*\2""", re.IGNORECASE)
_GX_IMAGE = re.compile(re.escape(_GX_IMAGE_HOST) + r"""[^"')\s]*""")
_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OfflineResult:
    """What :func:`make_offline` did: pages rewritten, and CDN URLs it did not know (and removed)."""

    pages: int
    rewritten: int
    unknown_urls: tuple[str, ...]


def make_offline(site_dir: Path | str) -> OfflineResult:
    """Copy the vendored assets into ``site_dir`` and point every page at them (see the module docstring)."""
    site = Path(site_dir)
    shutil.copytree(VENDORED_ASSETS, site / SITE_VENDOR_DIR, dirs_exist_ok=True)
    pages = rewritten = 0
    unknown: set[str] = set()
    for page in sorted(site.rglob("*.html")):
        if SITE_VENDOR_DIR in page.relative_to(site).as_posix():
            continue
        pages += 1
        text = page.read_text(encoding="utf-8")
        new, missing = rewrite_page(text, os.path.relpath(site, page.parent))
        unknown.update(missing)
        if new != text:
            tmp = page.with_name(page.name + ".tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, page)
            rewritten += 1
    if unknown:
        _LOGGER.warning(
            "Data Docs: removed %d CDN reference(s) with no vendored copy (add them to quality/gx_assets): %s",
            len(unknown),
            ", ".join(sorted(unknown)),
        )
    return OfflineResult(pages, rewritten, tuple(sorted(unknown)))


def rewrite_page(html: str, to_site: str) -> tuple[str, set[str]]:
    """One page with CDN URLs replaced by paths relative to the page (``to_site``: page → site root)."""
    prefix = "" if to_site in ("", ".") else to_site.rstrip("/") + "/"
    unknown: set[str] = set()

    def tag(match: re.Match[str]) -> str:
        text = match.group(0)
        found = _URL_ATTR.search(text)
        if found is None:
            return text
        url = found.group(3)
        local = CDN_ASSETS.get(url)
        if local is None:
            if url.startswith(_GX_IMAGE_HOST):  # e.g. a favicon: GX ships its images locally
                return text.replace(url, prefix + _GX_LOCAL_LOGO)
            unknown.add(url)
            return ""
        attr, quote = found.group(1), found.group(2)
        text = text.replace(found.group(0), f"{attr}={quote}{prefix}{SITE_VENDOR_DIR}/{local}{quote}")
        return _DROP_ATTRS.sub("", text)

    html = _TAG.sub(tag, html)
    # The navbar logo (<img src>, with a tracking query) and the dark theme's CSS background image.
    html = _GX_IMAGE.sub(prefix + _GX_LOCAL_LOGO, html)
    return html, unknown
