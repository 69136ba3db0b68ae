"""Run a batch suite over a DataFrame with Great Expectations and return a plain, masked outcome.

Why a runner around GX rather than GX checkpoints called from the pipeline:

* **The repo stays clean.** ``quality/gx_project`` is a committed *template*. Every run works in a
  copy under ``context_root`` (chosen by the caller: ``.regsync/quality``, an Airflow run folder, a
  pytest ``tmp_path``): the template's ``great_expectations.yml`` is copied there on each run (so a
  reviewed change to the template takes effect at once) and GX's stores, validation results and Data
  Docs all live in that folder. Reusing one ``context_root`` across runs accumulates validation
  results, so its Data Docs index lists every run — what an auditor browsing months wants. Runs that
  share a ``context_root`` are serialized with a file lock.
* **Personal data never leaves in full.** GX puts raw unexpected values in its results and Data Docs.
  The runner masks them (:func:`schemas.masking.mask_text`: resident IDs, phone numbers) and rewrites
  the stored validation result *before* rendering Data Docs, so the HTML and the returned
  :class:`SuiteOutcome` only ever carry masked samples. USCCs are organisation identifiers from a
  public register and stay readable (auditors need the offending codes).
* **Data Docs work offline.** GX's pages load their CSS and JavaScript from CDNs; after each build
  :func:`quality.data_docs.make_offline` points them at copies vendored in the repository, so the
  index lists the validations on a network without internet access.
* **Callers get a small typed result** (:class:`SuiteOutcome`), not GX objects, so the pipeline, the
  CLI and :mod:`quality.gx_results` do not depend on GX's result layout.

GX is quiet here: progress bars are off in the project config, and the ``great_expectations`` logger
is set to WARNING unless the application configured it explicitly.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
import math
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlparse

import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationSuiteValidationResult, RunIdentifier
from great_expectations.data_context import FileDataContext
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from quality.data_docs import make_offline
from quality.expectations import DEFAULT_TIMEZONE, condition_text, pushed_in_registration_month
from quality.suites import MONTHLY, get_suite
from schemas.masking import mask_text

__all__ = [
    "DATA_DOCS_SITE",
    "GX_PROJECT_TEMPLATE",
    "ExpectationOutcome",
    "SuiteOutcome",
    "condition_text",
    "normalize_month",
    "open_context",
    "run_suite",
    "timeliness_shares",
]

GX_PROJECT_TEMPLATE: Final = Path(__file__).resolve().with_name("gx_project")
"""The committed GX project; read, never written."""

DATA_DOCS_SITE: Final = "local_site"
_DATASOURCE: Final = "regsync_frames"
_BATCH_DEFINITION: Final = "whole_frame"
_TEMPLATE_FILES: Final = ("great_expectations.yml", ".gitignore")
_LOCK_FILE: Final = ".regsync-run.lock"
_SAMPLE_SIZE: Final = 20
_GX_TZ_VALUES_WARNING: Final = "Series.values returning an ndarray that drops timezone information"
_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    """One expectation's verdict, flattened from GX's result; ``unexpected_sample`` is masked."""

    expectation_type: str
    columns: tuple[str, ...]
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_sample: tuple[str, ...] = ()
    condition: str | None = None
    """The row condition (e.g. ``registrar == 'BIANZHI'``) when the expectation judges a slice."""
    observed_value: Any = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """Expectation-specific extras, JSON-friendly: its kwargs, ``offending_usccs`` for duplicates…"""
    exception: str | None = None

    @property
    def column(self) -> str | None:
        """Column name(s) joined by commas (``uscc``, ``registrar,uscc``), as stored in the database."""
        return ",".join(self.columns) if self.columns else None


@dataclass(frozen=True, slots=True)
class SuiteOutcome:
    """The result of one suite run over one DataFrame."""

    suite: str
    run_id: str
    month: str | None
    started_at: datetime
    duration_s: float
    success: bool
    per_expectation: tuple[ExpectationOutcome, ...]
    data_docs_path: Path | None
    """The Data Docs site's ``index.html`` (lists every run kept in this working copy)."""
    data_docs_page: Path | None = None
    """This run's validation-result page."""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    """Figures computed beside GX: row count, volume bounds, timeliness shares per registrar/county."""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        """The expectations that did not pass."""
        return tuple(o for o in self.per_expectation if not o.success)

    def find(
        self, expectation_type: str, column: str | None = None, condition: str | None = None
    ) -> list[ExpectationOutcome]:
        """Outcomes of one expectation type, optionally for one column (string form) and condition."""
        return [
            o
            for o in self.per_expectation
            if o.expectation_type == expectation_type
            and (column is None or o.column == column)
            and (condition is None or o.condition == condition)
        ]


def normalize_month(month: str | date | None) -> str | None:
    """``YYYY-MM`` for a month given as text (``2024-03`` / ``2024-03-01``) or a date; ``None`` passes."""
    if month is None:
        return None
    if isinstance(month, date):
        return f"{month.year:04d}-{month.month:02d}"
    text = str(month).strip()
    try:
        parsed = datetime.strptime(text[:7], "%Y-%m")
    except ValueError:
        raise ValueError(f"month must look like YYYY-MM, got {month!r}") from None
    return f"{parsed.year:04d}-{parsed.month:02d}"


def open_context(context_root: Path | str, *, data_docs_dir: Path | str | None = None) -> FileDataContext:
    """A file-backed GX context in the working copy ``context_root``, refreshed from the template.

    The template's config is copied over the working copy's on every call (GX keeps the datasources
    it adds in that file too; the runner re-adds them per run). ``data_docs_dir`` moves the Data Docs
    site out of the working copy, e.g. to a folder a web server publishes.
    """
    root = _working_copy(context_root)
    for name in _TEMPLATE_FILES:
        shutil.copyfile(GX_PROJECT_TEMPLATE / name, root / name)
    _quiet_gx()
    context = gx.get_context(mode="file", context_root_dir=root)
    if not isinstance(context, FileDataContext):  # e.g. GX Cloud variables in the environment
        raise RuntimeError(f"expected a file-backed GX context in {root}, got {type(context).__name__}")
    if data_docs_dir is not None:
        sites = copy.deepcopy(context.variables.data_docs_sites or {})
        sites[DATA_DOCS_SITE]["store_backend"]["base_directory"] = str(Path(data_docs_dir).resolve()) + "/"
        context.variables.data_docs_sites = sites  # in memory; the template stays as committed
    return context


def run_suite(
    name: str,
    dataframe: pd.DataFrame,
    *,
    context_root: Path | str,
    run_id: str,
    month: str | date | None = None,
    params: Any = None,
    data_docs_dir: Path | str | None = None,
    build_data_docs: bool = True,
    sample_size: int = _SAMPLE_SIZE,
) -> SuiteOutcome:
    """Validate ``dataframe`` with the suite ``name`` and return a masked, GX-free outcome.

    ``params`` is the suite's params object (:class:`quality.suites.GateBatchParams` /
    :class:`~quality.suites.MonthlyParams`) or a mapping of its fields. ``month`` (``YYYY-MM``) is
    required for the monthly suite, optional for a gate batch; results are trended by it. Raises
    ``ValueError`` before touching GX when columns the suite needs are missing, so the error names
    the cause instead of surfacing as per-expectation exceptions.
    """
    spec = get_suite(name)
    suite_params = spec.coerce_params(params)
    month_text = normalize_month(month)
    if name == MONTHLY and month_text is None:
        raise ValueError("the monthly suite needs month='YYYY-MM'")
    missing = [c for c in spec.required_columns(suite_params) if c not in dataframe.columns]
    if missing:
        raise ValueError(f"suite {name!r}: the frame lacks columns {missing}")
    if not run_id or not str(run_id).strip():
        raise ValueError("run_id must be a non-empty string")

    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    params_json = spec.params_dict(suite_params)
    with _locked(context_root):
        context = open_context(context_root, data_docs_dir=data_docs_dir)
        suite = context.suites.add_or_update(
            gx.ExpectationSuite(
                name=name, expectations=spec.build(suite_params), meta={"regsync_params": params_json}
            )
        )
        batch_definition = _batch_definition(context, name)
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        gx_run_id = RunIdentifier(run_name=str(run_id), run_time=started_at)
        with warnings.catch_warnings():
            # GX 1.24 reads column pairs with ``Series.values``, which pandas 3.1 deprecates for
            # tz-aware columns (great_expectations/expectations/metrics/map_metric_provider/
            # column_pair_map_condition_auxilliary_methods.py); harmless for us, noisy in every run.
            warnings.filterwarnings("ignore", message=_GX_TZ_VALUES_WARNING)
            result = validation.run(
                batch_parameters={"dataframe": dataframe},
                result_format=_result_format(dataframe, sample_size),
                run_id=gx_run_id,
            )
        _mask_result(result)
        result.meta["regsync"] = {  # type: ignore[typeddict-unknown-key]  # GX meta takes extra keys at run time
            "run_id": str(run_id),
            "month": month_text,
            "params": params_json,
        }
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=name),
            run_id=gx_run_id,
            batch_identifier=result.batch_id,
        )
        context.validation_results_store.set(key, result)  # the masked result replaces the raw one
        index_path, page_path = (None, None)
        if build_data_docs:
            index_path, page_path = _build_docs(context, key)

    outcomes = tuple(_outcome(r) for r in result.results)
    metrics = _metrics(name, dataframe, suite_params)
    _LOGGER.info(
        "suite %s run %s (%s rows): %s, %d of %d expectations failed",
        name,
        run_id,
        len(dataframe),
        "passed" if result.success else "FAILED",
        sum(not o.success for o in outcomes),
        len(outcomes),
    )
    return SuiteOutcome(
        suite=name,
        run_id=str(run_id),
        month=month_text,
        started_at=started_at,
        duration_s=time.perf_counter() - clock,
        success=bool(result.success),
        per_expectation=outcomes,
        data_docs_path=index_path,
        data_docs_page=page_path,
        metrics=metrics,
        params=params_json,
    )


def _result_format(frame: pd.DataFrame, sample_size: int) -> dict[str, Any]:
    """GX's SUMMARY, naming each unexpected row by its USCC when the frame has one.

    The partial list of a column-pair expectation (timeliness) is (event date, push time) pairs, which
    tells an auditor nothing about *which* institutions; the index column adds their USCCs, which the
    audit report lists beside the failed expectation.
    """
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": sample_size}
    if "uscc" in frame.columns:
        result_format["unexpected_index_column_names"] = ["uscc"]
    return result_format


def timeliness_shares(
    frame: pd.DataFrame, *, by: Sequence[str] = ("registrar", "county_code"), tz: str | None = None
) -> dict[str, Any]:
    """Share of rows pushed within their registration month: overall and per value of each ``by`` column.

    Uses :func:`quality.expectations.pushed_in_registration_month`, the rule the GX expectation
    checks, so the figures and the verdicts cannot disagree. Missing keys are grouped as ``"(none)"``.
    """
    on_time = pushed_in_registration_month(frame["event_date"], frame["extracted_at"], tz or DEFAULT_TIMEZONE)
    shares: dict[str, Any] = {"overall": _share(int(on_time.sum()), len(on_time))}
    for column in by:
        if column not in frame.columns:
            continue
        keys = frame[column].astype(object).where(frame[column].notna(), "(none)").astype(str)
        grouped = on_time.groupby(keys, sort=True).agg(["sum", "size"])
        shares[column] = {str(k): _share(int(row["sum"]), int(row["size"])) for k, row in grouped.iterrows()}
    return shares


# --------------------------------------------------------------------------------------------------
# Internals


def _working_copy(context_root: Path | str) -> Path:
    root = Path(context_root).resolve()
    if root == GX_PROJECT_TEMPLATE or GX_PROJECT_TEMPLATE in root.parents:
        raise ValueError(
            f"context_root {root} is inside the committed GX template {GX_PROJECT_TEMPLATE}; "
            "pass a working folder outside it (runs must not dirty the repo)"
        )
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(context_root: Path | str) -> Iterator[None]:
    """Serialize runs sharing a working copy: GX rewrites its config file and index on each run.

    ``fcntl`` (POSIX) is enough: the pipeline runs on Linux hosts and Airflow workers.
    """
    root = _working_copy(context_root)
    with (root / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _quiet_gx() -> None:
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # an explicit choice by the application wins
        gx_logger.setLevel(logging.WARNING)


def _batch_definition(context: FileDataContext, asset_name: str) -> Any:
    datasource = context.data_sources.add_or_update_pandas(name=_DATASOURCE)
    if asset_name in datasource.get_asset_names():
        asset = datasource.get_asset(asset_name)
    else:
        asset = datasource.add_dataframe_asset(name=asset_name)
    try:
        return asset.get_batch_definition(_BATCH_DEFINITION)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)


def _build_docs(context: FileDataContext, key: ValidationResultIdentifier) -> tuple[Path | None, Path | None]:
    sites = context.build_data_docs(
        site_names=[DATA_DOCS_SITE],
        resource_identifiers=[key, key.expectation_suite_identifier],  # type: ignore[arg-type]  # GX builds both kinds in one call
    )
    index = _file_url_to_path(sites.get(DATA_DOCS_SITE))
    if index is not None:
        make_offline(index.parent)  # readable without internet: CDN assets → vendored files
    pages = context.get_docs_sites_urls(resource_identifier=key, site_name=DATA_DOCS_SITE)
    page = _file_url_to_path(pages[0].get("site_url")) if pages else None
    return index, page


def _file_url_to_path(url: str | None) -> Path | None:
    if not url:
        return None
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


_MASKED_RESULT_KEYS: Final = ("partial_unexpected_list", "unexpected_list")
_MASKED_INDEX_KEYS: Final = ("partial_unexpected_index_list", "unexpected_index_list")


def _mask_value(value: Any) -> Any:
    """Masked, JSON-friendly form of one unexpected value (pairs stay pairs, nulls become ``None``)."""
    if isinstance(value, (list, tuple)):
        return [_mask_value(v) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, (bool, int, float)):
        return value
    if getattr(getattr(value, "dtype", None), "kind", None) == "M":  # numpy datetime64: naive UTC
        return pd.Timestamp(value).isoformat() + "Z"
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    return mask_text(str(value))


def _mask_result(result: ExpectationSuiteValidationResult) -> None:
    for item in result.results:
        body = item.result or {}
        for key in _MASKED_RESULT_KEYS:
            if key in body and body[key] is not None:
                body[key] = [_mask_value(v) for v in body[key]]
        for key in _MASKED_INDEX_KEYS:  # the USCC column may hold a mistyped resident ID
            if isinstance(body.get(key), list):
                body[key] = [
                    {k: _mask_value(v) for k, v in row.items()}
                    if isinstance(row, Mapping)
                    else _mask_value(row)
                    for row in body[key]
                ]
        if isinstance(body.get("unexpected_index_query"), str):
            body["unexpected_index_query"] = mask_text(body["unexpected_index_query"])
        if body.get("partial_unexpected_counts"):
            body["partial_unexpected_counts"] = [
                {**entry, "value": _mask_value(entry.get("value"))}
                for entry in body["partial_unexpected_counts"]
            ]
        details = body.get("details")
        if isinstance(details, dict) and isinstance(details.get("offending_usccs"), Mapping):
            details["offending_usccs"] = {
                mask_text(str(code)): list(regs) for code, regs in details["offending_usccs"].items()
            }


def _sample_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_sample_text(v) for v in value)
    return "(null)" if value is None else str(value)


def _outcome(item: Any) -> ExpectationOutcome:
    config = item.expectation_config
    kwargs = dict(config.kwargs)
    body = item.result or {}
    columns = tuple(
        str(kwargs[k]) for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)
    ) or tuple(map(str, kwargs.get("column_list") or ()))
    details: dict[str, Any] = {"kwargs": _json_kwargs(kwargs)}
    if isinstance(body.get("details"), Mapping):
        details.update(body["details"])
    usccs = [
        str(row["uscc"])
        for row in body.get("partial_unexpected_index_list") or ()
        if isinstance(row, Mapping) and row.get("uscc") is not None
    ]
    if usccs:
        details["unexpected_usccs"] = list(dict.fromkeys(usccs))  # USCCs are public: kept readable
    exception = None
    info = item.exception_info or {}
    if info.get("raised_exception"):
        exception = str(info.get("exception_message"))
    return ExpectationOutcome(
        expectation_type=str(config.type),
        columns=columns,
        success=bool(item.success),
        element_count=_int_or_none(body.get("element_count")),
        unexpected_count=_int_or_none(body.get("unexpected_count")),
        unexpected_percent=_float_or_none(body.get("unexpected_percent")),
        unexpected_sample=tuple(_sample_text(v) for v in body.get("partial_unexpected_list") or ()),
        condition=condition_text(kwargs.get("row_condition")),
        observed_value=body.get("observed_value"),
        details=details,
        exception=exception,
    )


def _json_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    skip = {"batch_id", "result_format", "row_condition", "condition_parser"}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in skip or value is None:
            continue
        out[key] = value if isinstance(value, (str, int, float, bool, list, dict)) else str(value)
    return out


def _metrics(name: str, frame: pd.DataFrame, params: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {"row_count": len(frame)}
    if name == MONTHLY:
        metrics["volume_bounds"] = None if params.volume_bounds is None else list(params.volume_bounds)
        if params.volume_bounds is None:
            metrics["volume_check"] = "skipped: no history to bound the month's volume"
        metrics["timeliness"] = timeliness_shares(frame, tz=params.timezone)
        metrics["timeliness_threshold"] = params.timeliness_threshold
    elif "verdict" in frame.columns:
        counts = frame["verdict"].astype(object).where(frame["verdict"].notna(), "(none)").value_counts()
        metrics["verdicts"] = {str(k): int(v) for k, v in counts.sort_index().items()}
    return metrics


def _share(on_time: int, total: int) -> dict[str, Any]:
    return {"on_time": on_time, "total": total, "share": (on_time / total) if total else None}


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
