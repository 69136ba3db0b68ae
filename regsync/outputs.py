"""Where the pipeline writes what people read: packages, reports, Data Docs.

One function each, so the CLI, the DAGs, the demo and the web service agree on the folders.
"""

from __future__ import annotations

from pathlib import Path

from regsync.settings import Settings

__all__ = ["output_dir", "packages_dir", "quality_dir", "reports_dir"]


def output_dir(settings: Settings) -> Path:
    """The output root (``REGSYNC_OUTPUT_DIR``, else beside the stack's state folder), created."""
    root = settings.output_dir or Path(settings.stack.state_dir).absolute().parent / "output"
    root.mkdir(parents=True, exist_ok=True)
    return root


def packages_dir(settings: Settings) -> Path:
    """County push packages: ``<output>/packages/<month>/<county>/``."""
    return output_dir(settings) / "packages"


def reports_dir(settings: Settings) -> Path:
    """Monthly audit reports: ``<output>/reports/audit-<month>.html``."""
    return output_dir(settings) / "reports"


def quality_dir(settings: Settings) -> Path:
    """Great Expectations' working copy and Data Docs."""
    return output_dir(settings) / "quality"
