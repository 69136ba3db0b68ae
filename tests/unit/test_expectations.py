"""Custom GX expectations, the two batch suites end to end, Data Docs, masking, and results in SQLite.

GX runs for real here (file context in a tmp folder, pandas engine); nothing is mocked. GX takes
~8 s to import, so the suite runs are module-scoped fixtures and each is asserted from many angles.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from great_expectations.expectations.row_conditions import Column

from quality import gx_results
from quality.batch_checks import (
    GX_PROJECT_TEMPLATE,
    condition_text,
    normalize_month,
    open_context,
    run_suite,
    timeliness_shares,
)
from quality.expectations import (
    REGISTRAR_PREFIXES,
    ExpectColumnPairValuesRegistrarPrefixConsistent,
    ExpectColumnPairValuesToBePushedInRegistrationMonth,
    ExpectColumnValuesToBeKnownDivision,
    ExpectColumnValuesToBeValidUscc,
    ExpectUsccToComeFromSingleRegistrar,
    cross_registrar_duplicates,
    pushed_in_registration_month,
)
from quality.suites import GateBatchParams, MonthlyParams, get_suite, volume_bounds
from schemas import uscc

PILOT = "91350100M0001TGQXM"  # legal early pilot code that fails the GB 32100 check digit
RESIDENT_ID = "110105199001011234"  # looks like a resident ID: must never appear unmasked
MASKED_ID = "110105********1234"
BAD_CHECK = "91350100M000100Y44"  # the standard's example with a wrong check character

# GX 1.24's column-pair path calls Series.values on tz-aware columns, which pandas 3.1 deprecates; the
# runner filters it, the direct Batch.validate calls below meet it too.
pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray that drops timezone")

CUSTOM_TYPES = (
    "expect_column_values_to_be_valid_uscc",
    "expect_column_values_to_be_known_division",
    "expect_column_pair_values_registrar_prefix_consistent",
    "expect_uscc_to_come_from_single_registrar",
    "expect_column_pair_values_to_be_pushed_in_registration_month",
)


def code(registrar: str, category: str, body: str, division: str = "110105") -> str:
    return uscc.make_uscc(registrar, category, division, body)


X91 = code("9", "1", "MA01AAA1")
Y12 = code("1", "2", "MB01BBB2")
Z92 = code("9", "2", "MC01CCC3")
W91 = code("9", "1", "MD01DDD4")
V52 = code("5", "2", "ME01EEE5")
U12 = code("1", "2", "MF01FFF6")
T52 = code("5", "2", "MG01GGG7")


def files_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------------
# Single expectations on small frames (Batch.validate, the GX 1.x ad-hoc API)


@pytest.fixture(scope="module")
def gx_context(tmp_path_factory):
    return open_context(tmp_path_factory.mktemp("gx-unit"))


@pytest.fixture
def validate(gx_context, request):
    def run(frame: pd.DataFrame, expectation):
        source = gx_context.data_sources.add_or_update_pandas(name="unit")
        asset_name = f"a{len(source.assets)}_{request.node.name[:40]}"
        asset = source.add_dataframe_asset(name=asset_name)
        batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
            batch_parameters={"dataframe": frame}
        )
        return batch.validate(expectation, result_format={"result_format": "COMPLETE"})

    return run


def test_valid_uscc_accepts_valid_and_pilot_codes_rejects_bad_ones(validate):
    frame = pd.DataFrame({"uscc": [X91, "91110000600037341L", PILOT, BAD_CHECK, "not-a-code", None]})
    result = validate(frame, ExpectColumnValuesToBeValidUscc(column="uscc"))
    assert not result.success
    assert result.result["element_count"] == 6
    assert result.result["unexpected_count"] == 2  # the null is left to the not-null expectation
    assert sorted(result.result["unexpected_list"]) == [BAD_CHECK, "not-a-code"]


def test_valid_uscc_can_refuse_pilot_codes(validate):
    frame = pd.DataFrame({"uscc": [X91, PILOT]})
    strict = validate(frame, ExpectColumnValuesToBeValidUscc(column="uscc", allow_legacy_pilot=False))
    assert strict.result["unexpected_list"] == [PILOT]
    lenient = validate(frame, ExpectColumnValuesToBeValidUscc(column="uscc"))
    assert lenient.success


def test_valid_uscc_all_valid_passes_and_mostly_applies(validate):
    assert validate(
        pd.DataFrame({"uscc": [X91, Y12, Z92]}), ExpectColumnValuesToBeValidUscc(column="uscc")
    ).success
    frame = pd.DataFrame({"uscc": [X91, Y12, Z92, BAD_CHECK]})
    assert validate(frame, ExpectColumnValuesToBeValidUscc(column="uscc", mostly=0.75)).success
    assert not validate(frame, ExpectColumnValuesToBeValidUscc(column="uscc", mostly=0.8)).success


def test_known_division_current_and_abolished_mapped_pass(validate):
    # 371202 莱城区 was abolished and maps forward to 370116 莱芜区 (docs/domain.md); 12-digit codes are cut to 6.
    frame = pd.DataFrame({"county_code": ["110105", "371202", "110105000000"]})
    assert validate(frame, ExpectColumnValuesToBeKnownDivision(column="county_code")).success


def test_known_division_unknown_and_non_county_codes_fail(validate):
    frame = pd.DataFrame({"county_code": ["110105", "999999", "440100", "abc", None]})
    result = validate(frame, ExpectColumnValuesToBeKnownDivision(column="county_code"))
    assert not result.success
    assert sorted(result.result["unexpected_list"]) == ["440100", "999999", "abc"]
    # a prefecture is a known division, just not a county: allowed when routing is not required
    relaxed = validate(
        pd.DataFrame({"county_code": ["440100"]}),
        ExpectColumnValuesToBeKnownDivision(column="county_code", require_routing_unit=False),
    )
    assert relaxed.success


def test_registrar_prefix_consistent_flags_mismatches(validate):
    frame = pd.DataFrame(
        {
            "registrar": [
                "BIANZHI",
                "MINZHENG",
                "SHICHANG",
                "SHICHANG",
                "SHENPI",
                "JIAOYU",
                "MINZHENG",
                "FOO",
            ],
            "uscc": [Y12, V52, X91, Z92, V52, X91, X91, X91],
        }
    )
    result = validate(
        frame, ExpectColumnPairValuesRegistrarPrefixConsistent(column_A="registrar", column_B="uscc")
    )
    assert not result.success
    assert result.result["unexpected_count"] == 2
    assert sorted(map(tuple, result.result["unexpected_list"])) == [("FOO", X91), ("MINZHENG", X91)]


def test_registrar_prefix_table_is_data_and_can_be_overridden(validate):
    assert dict(REGISTRAR_PREFIXES)["SHENPI"] == frozenset({"91", "92", "52"})
    frame = pd.DataFrame({"registrar": ["SHENPI"], "uscc": [Y12]})
    default = validate(
        frame, ExpectColumnPairValuesRegistrarPrefixConsistent(column_A="registrar", column_B="uscc")
    )
    assert not default.success
    local = validate(
        frame,
        ExpectColumnPairValuesRegistrarPrefixConsistent(
            column_A="registrar", column_B="uscc", registrar_prefixes={"SHENPI": ["12", "52", "91", "92"]}
        ),
    )
    assert local.success


def test_single_registrar_lists_every_offending_uscc(validate):
    frame = pd.DataFrame(
        {
            "uscc": [X91, X91, Y12, Y12, Z92, Z92, " " + W91.lower(), W91],
            "registrar": [
                "SHICHANG",
                "SHENPI",
                "BIANZHI",
                "JIAOYU",
                "SHICHANG",
                "SHICHANG",
                "SHICHANG",
                "SHENPI",
            ],
        }
    )
    result = validate(frame, ExpectUsccToComeFromSingleRegistrar(column_A="uscc", column_B="registrar"))
    assert not result.success
    assert result.result["unexpected_count"] == 4  # X91 twice, W91 twice (normalized); JIAOYU exempt
    assert result.result["details"]["offending_usccs"] == {
        W91: ["SHENPI", "SHICHANG"],
        X91: ["SHENPI", "SHICHANG"],
    }


def test_single_registrar_without_exemptions_flags_education_too(validate):
    frame = pd.DataFrame({"uscc": [Y12, Y12], "registrar": ["BIANZHI", "JIAOYU"]})
    assert validate(frame, ExpectUsccToComeFromSingleRegistrar(column_A="uscc", column_B="registrar")).success
    strict = validate(
        frame,
        ExpectUsccToComeFromSingleRegistrar(column_A="uscc", column_B="registrar", exempt_registrars=[]),
    )
    assert strict.result["details"]["offending_usccs"] == {Y12: ["BIANZHI", "JIAOYU"]}


def test_pushed_in_month_uses_china_time(validate):
    frame = pd.DataFrame(
        {
            "event_date": [date(2024, 3, 1), date(2024, 3, 31), date(2024, 2, 27), date(2024, 3, 5)],
            "extracted_at": pd.to_datetime(
                ["2024-02-29T17:00Z", "2024-03-31T16:30Z", "2024-03-02T02:00Z", "2024-03-06T02:00Z"]
            ),
        }
    )
    flags = pushed_in_registration_month(frame["event_date"], frame["extracted_at"])
    assert flags.tolist() == [True, False, False, True]  # 17:00Z on 29 Feb is 1 Mar in Beijing
    assert pushed_in_registration_month(frame["event_date"], frame["extracted_at"], "UTC").tolist() == [
        False,
        True,
        False,
        True,
    ]
    result = validate(
        frame,
        ExpectColumnPairValuesToBePushedInRegistrationMonth(
            column_A="event_date", column_B="extracted_at", mostly=0.5
        ),
    )
    assert result.success
    assert result.result["unexpected_count"] == 2


def test_missing_push_time_counts_as_late():
    flags = pushed_in_registration_month(
        pd.Series([date(2024, 3, 1), None]), pd.Series([None, pd.Timestamp("2024-03-02", tz="UTC")])
    )
    assert flags.tolist() == [False, False]


def test_cross_registrar_duplicates_function_matches_metric():
    dups = cross_registrar_duplicates(
        pd.Series([X91, X91, None]), pd.Series(["SHICHANG", "SHENPI", "MINZHENG"])
    )
    assert dups == {X91: ["SHENPI", "SHICHANG"]}


# --------------------------------------------------------------------------------------------------
# Suites end to end


def gate_frame() -> pd.DataFrame:
    """Twelve gate-batch rows with known defects (see the assertions)."""
    rows = [
        # event_id, registrar, uscc, county, name
        ("e01", "BIANZHI", Y12, "110105", "北京市某某幼儿园"),
        ("e02", "MINZHENG", V52, "110106", "某某托育中心"),
        ("e03", "SHICHANG", X91, "371202", "某某托育有限公司"),  # abolished county, mapped forward: fine
        ("e04", "SHICHANG", PILOT, "110105", "试点托育有限公司"),  # legacy pilot code: fine
        ("e05", "SHICHANG", BAD_CHECK, "110105", "坏码托育有限公司"),  # invalid USCC
        ("e06", "SHICHANG", RESIDENT_ID, "110105", "张三家庭托育点"),  # invalid USCC + prefix "11"
        ("e07", "MINZHENG", W91, "110105", "错登托育中心"),  # prefix mismatch (民政 with 91)
        ("e08", "SHENPI", Z92, "999999", "某某家庭托育点"),  # unknown county
        ("e09", "SHENPI", T52, "440100", "某某托育园"),  # prefecture, not a county
        ("e10", "JIAOYU", U12, None, "某某幼儿园"),  # county unresolved: not judged by the known check
        ("e10", "BIANZHI", U12, "110108", None),  # duplicate event id, missing name
        ("e12", "SHICHANG", X91, "110105", "某某托育有限公司"),
    ]
    frame = pd.DataFrame(rows, columns=["event_id", "registrar", "uscc", "county_code", "name"])
    frame["event_type"] = "ESTABLISHED"
    frame["event_date"] = date(2024, 3, 5)
    frame["extracted_at"] = pd.Timestamp("2024-03-06T02:00Z")
    frame["business_scope"] = "托育服务"
    frame["verdict"] = ["accepted"] * 4 + ["rejected"] * 2 + ["accepted"] * 6
    return frame


def monthly_frame() -> pd.DataFrame:
    """Ten loaded events of March 2024 (see the table in the assertions)."""
    rows = [
        ("SHICHANG", X91, "2024-03-05", "2024-03-06T02:00Z", "110105"),
        ("SHENPI", X91, "2024-03-10", "2024-03-11T02:00Z", "110105"),  # X91 from two registrars
        ("BIANZHI", Y12, "2024-03-01", "2024-02-29T17:00Z", "110106"),  # 1 Mar 01:00 in Beijing: on time
        ("JIAOYU", Y12, "2024-03-12", "2024-03-13T02:00Z", "110106"),  # 教育 exempt from duplicates
        ("SHICHANG", Z92, "2024-03-31", "2024-03-31T16:30Z", "110105"),  # 1 Apr 00:30 in Beijing: late
        ("SHICHANG", Z92, "2024-03-15", "2024-03-16T02:00Z", "110105"),  # same registrar twice: fine
        ("SHICHANG", W91, "2024-03-20", "2024-03-20T05:00Z", "110108"),
        ("MINZHENG", V52, "2024-02-27", "2024-03-02T02:00Z", "110108"),  # late
        ("BIANZHI", U12, "2024-03-03", "2024-03-04T02:00Z", "110108"),
        ("SHENPI", T52, "2024-03-07", "2024-03-07T08:00Z", "110105"),
    ]
    frame = pd.DataFrame(rows, columns=["registrar", "uscc", "event_date", "extracted_at", "county_code"])
    frame["event_date"] = pd.to_datetime(frame["event_date"]).dt.date
    frame["extracted_at"] = pd.to_datetime(frame["extracted_at"])
    frame["event_id"] = [f"m{i}" for i in range(len(frame))]
    return frame


@pytest.fixture(scope="module")
def template_before():
    return files_digest(GX_PROJECT_TEMPLATE)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, template_before):
    return tmp_path_factory.mktemp("quality")


@pytest.fixture(scope="module")
def gate_outcome(workdir):
    return run_suite("gate_batch", gate_frame(), context_root=workdir, run_id="gate-run-1", month="2024-03")


@pytest.fixture(scope="module")
def monthly_outcome(workdir):
    params = MonthlyParams(volume_bounds=volume_bounds([4, 5, 6]))  # (2, 8): ten rows is too many
    return run_suite(
        "monthly", monthly_frame(), context_root=workdir, run_id="month-run-1", month="2024-03", params=params
    )


def test_gate_suite_fails_exactly_where_the_frame_is_broken(gate_outcome):
    failed = {(o.expectation_type, o.column): o.unexpected_count for o in gate_outcome.failed}
    assert failed == {
        ("expect_column_values_to_be_unique", "event_id"): 2,
        ("expect_column_values_to_be_valid_uscc", "uscc"): 2,
        ("expect_column_values_to_be_known_division", "county_code"): 2,
        ("expect_column_pair_values_registrar_prefix_consistent", "registrar,uscc"): 2,
        ("expect_column_values_to_not_be_null", "name"): 1,
    }
    assert not gate_outcome.success
    assert all(o.element_count == 12 for o in gate_outcome.per_expectation)
    assert not [o for o in gate_outcome.per_expectation if o.exception]
    assert gate_outcome.metrics == {"row_count": 12, "verdicts": {"accepted": 10, "rejected": 2}}
    assert gate_outcome.month == "2024-03"


def test_gate_suite_covers_required_columns_and_enums(gate_outcome):
    not_null = {o.column for o in gate_outcome.find("expect_column_values_to_not_be_null")}
    assert not_null == set(GateBatchParams().required_columns)
    assert {o.column for o in gate_outcome.find("expect_column_values_to_be_in_set")} == {
        "registrar",
        "event_type",
        "verdict",
    }


def test_unexpected_samples_are_masked(gate_outcome, workdir):
    (uscc_check,) = gate_outcome.find("expect_column_values_to_be_valid_uscc")
    assert sorted(uscc_check.unexpected_sample) == sorted([BAD_CHECK, MASKED_ID])
    (prefix,) = gate_outcome.find("expect_column_pair_values_registrar_prefix_consistent")
    assert f"SHICHANG, {MASKED_ID}" in prefix.unexpected_sample
    for path in workdir.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".html"}:
            assert RESIDENT_ID not in path.read_text(encoding="utf-8"), path


def test_monthly_suite_duplicates_volume_and_timeliness(monthly_outcome):
    assert not monthly_outcome.success
    (dups,) = monthly_outcome.find("expect_uscc_to_come_from_single_registrar")
    assert not dups.success
    assert dups.unexpected_count == 2
    assert dups.details["offending_usccs"] == {X91: ["SHENPI", "SHICHANG"]}

    (volume,) = monthly_outcome.find("expect_table_row_count_to_be_between")
    assert not volume.success
    assert volume.observed_value == 10
    assert volume.details["kwargs"]["min_value"] == 2
    assert volume.details["kwargs"]["max_value"] == 8

    timely = {
        o.condition: o
        for o in monthly_outcome.find("expect_column_pair_values_to_be_pushed_in_registration_month")
    }
    assert {c: (o.success, o.element_count, o.unexpected_count) for c, o in timely.items()} == {
        "registrar == 'BIANZHI'": (True, 2, 0),
        "registrar == 'MINZHENG'": (False, 1, 1),
        "registrar == 'SHICHANG'": (False, 4, 1),
        "registrar == 'SHENPI'": (True, 2, 0),
        "registrar == 'JIAOYU'": (True, 1, 0),
    }


def test_monthly_metrics_expose_shares_per_registrar_and_county(monthly_outcome):
    shares = monthly_outcome.metrics["timeliness"]
    assert shares["overall"] == {"on_time": 8, "total": 10, "share": 0.8}
    assert shares["registrar"]["SHICHANG"] == {"on_time": 3, "total": 4, "share": 0.75}
    assert shares["registrar"]["MINZHENG"]["share"] == 0.0
    assert shares["county_code"]["110105"] == {"on_time": 4, "total": 5, "share": 0.8}
    assert shares["county_code"]["110106"]["share"] == 1.0
    assert shares["county_code"]["110108"] == {"on_time": 2, "total": 3, "share": 2 / 3}
    assert monthly_outcome.metrics["volume_bounds"] == [2, 8]
    assert monthly_outcome.metrics["timeliness_threshold"] == 0.9


def test_monthly_threshold_is_configurable(tmp_path):
    outcome = run_suite(
        "monthly",
        monthly_frame(),
        context_root=tmp_path,
        run_id="lenient",
        month="2024-03",
        params={"timeliness_threshold": 0.7, "registrars": ["SHICHANG"]},
        build_data_docs=False,
    )
    (shichang,) = outcome.find("expect_column_pair_values_to_be_pushed_in_registration_month")
    assert shichang.success  # 0.75 >= 0.7
    assert outcome.find("expect_table_row_count_to_be_between") == []  # no history, no volume check
    assert outcome.metrics["volume_check"].startswith("skipped")
    assert outcome.data_docs_path is None


def test_data_docs_built_with_custom_expectation_names(gate_outcome, monthly_outcome, workdir):
    index = workdir / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert gate_outcome.data_docs_path == monthly_outcome.data_docs_path == index
    html = index.read_text(encoding="utf-8")
    for run in ("gate-run-1", "month-run-1"):
        assert f"validations/{'gate_batch' if run.startswith('gate') else 'monthly'}/{run}/" in html
    pages = gate_outcome.data_docs_page.read_text(
        encoding="utf-8"
    ) + monthly_outcome.data_docs_page.read_text(encoding="utf-8")
    for name in CUSTOM_TYPES:
        assert name in pages
    assert "Rendering failed" not in pages
    assert "where registrar == 'SHICHANG'" in pages  # the timeliness slice is readable, not a dict
    suites_html = "".join(p.read_text(encoding="utf-8") for p in index.parent.glob("expectations/*.html"))
    for name in CUSTOM_TYPES:
        assert name in suites_html


def test_data_docs_can_go_to_another_folder(tmp_path):
    site = tmp_path / "published"
    outcome = run_suite(
        "gate_batch", gate_frame(), context_root=tmp_path / "work", run_id="elsewhere", data_docs_dir=site
    )
    assert outcome.data_docs_path == site / "index.html"
    assert outcome.data_docs_path.is_file()
    assert not (tmp_path / "work" / "uncommitted" / "data_docs").exists()
    assert outcome.month is None


def test_runs_never_write_into_the_committed_template(gate_outcome, monthly_outcome, template_before):
    assert files_digest(GX_PROJECT_TEMPLATE) == template_before
    assert not (GX_PROJECT_TEMPLATE / "uncommitted").exists()
    with pytest.raises(ValueError, match="inside the committed GX template"):
        run_suite("gate_batch", gate_frame(), context_root=GX_PROJECT_TEMPLATE / "work", run_id="x")


def test_runner_rejects_bad_calls_before_touching_gx(tmp_path):
    with pytest.raises(KeyError, match="unknown suite"):
        run_suite("nope", gate_frame(), context_root=tmp_path, run_id="r")
    with pytest.raises(ValueError, match="month"):
        run_suite("monthly", monthly_frame(), context_root=tmp_path, run_id="r")
    with pytest.raises(ValueError, match="lacks columns"):
        run_suite("gate_batch", gate_frame().drop(columns=["uscc"]), context_root=tmp_path, run_id="r")
    with pytest.raises(ValueError, match="unknown parameters"):
        run_suite(
            "monthly", monthly_frame(), context_root=tmp_path, run_id="r", month="2024-03", params={"x": 1}
        )
    with pytest.raises(ValueError, match="timeliness_threshold"):
        MonthlyParams(timeliness_threshold=1.5)
    assert not list(tmp_path.iterdir())


def test_volume_bounds_from_history():
    assert volume_bounds([]) is None
    assert volume_bounds([100]) is None  # partial history: no bounds
    assert volume_bounds([0, 0, 0, 0]) is None  # empty months teach nothing (no [0, 0])
    assert volume_bounds([0, 0, 90, 110]) is None  # two real months are still partial
    assert volume_bounds([0, 90, 100, 110]) == (50, 150)  # few months: ±50 %, zeros left out
    assert volume_bounds([100], min_months=1) == (50, 150)
    history = [100, 110, 90, 105, 95, 100]  # six months: mean ± 3σ
    low, high = volume_bounds(history)
    assert (low, high) == (78, 122)  # mean 100, σ = 7.07…: 78.8 and 121.2 widened to whole rows
    assert volume_bounds([1, 1, 1, 1, 1, 9])[0] == 0  # never below zero


def test_small_helpers():
    assert normalize_month("2024-03-01") == "2024-03"
    assert normalize_month(date(2024, 11, 30)) == "2024-11"
    assert normalize_month(datetime(2024, 1, 2)) == "2024-01"
    assert normalize_month(None) is None
    with pytest.raises(ValueError, match="YYYY-MM"):
        normalize_month("March")
    assert condition_text(
        {"type": "comparison", "column": {"name": "registrar"}, "operator": "==", "parameter": "X"}
    ) == ("registrar == 'X'")
    assert condition_text(None) is None
    assert condition_text(Column("registrar") == "SHENPI") == "registrar == 'SHENPI'"
    assert condition_text(Column("county_code").is_null()) == "county_code IS NULL"
    assert get_suite("monthly").coerce_params({"exempt_registrars": []}).exempt_registrars == ()
    shares = timeliness_shares(monthly_frame(), by=("registrar",))
    assert set(shares) == {"overall", "registrar"}


# --------------------------------------------------------------------------------------------------
# Results in SQLite


def month_frame(month: int, late: int, total: int = 6) -> pd.DataFrame:
    """``total`` SHICHANG events of 2024-``month``, the first ``late`` pushed the next month."""
    rng = random.Random(month)
    rows = []
    for i in range(total):
        pushed_month = month + 1 if i < late else month
        rows.append(
            {
                "registrar": "SHICHANG",
                "uscc": uscc.random_uscc(rng),
                "event_date": date(2024, month, 10),
                "extracted_at": pd.Timestamp(f"2024-{pushed_month:02d}-12T02:00Z"),
                "county_code": "110105",
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def three_months(tmp_path_factory):
    root = tmp_path_factory.mktemp("trend")
    outcomes = [
        run_suite(
            "monthly",
            month_frame(m, late),
            context_root=root,
            run_id=f"trend-2024-{m:02d}",
            month=f"2024-{m:02d}",
            params={"registrars": ["SHICHANG"]},
            build_data_docs=False,
        )
        for m, late in ((1, 0), (2, 2), (3, 1))
    ]
    rerun = run_suite(
        "monthly",
        month_frame(2, 3),
        context_root=root,
        run_id="trend-2024-02-rerun",
        month="2024-02",
        params={"registrars": ["SHICHANG"]},
        build_data_docs=False,
    )
    return outcomes, rerun


def test_store_and_trend_in_sqlite(tmp_path, three_months):
    outcomes, rerun = three_months
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'quality.db'}")
    gx_results.create_tables(engine)
    for outcome in outcomes:
        gx_results.store(engine, outcome)
    timely = "expect_column_pair_values_to_be_pushed_in_registration_month"
    points = gx_results.trend(engine, "monthly", timely)
    assert [(p.month, p.element_count, p.unexpected_count, p.success) for p in points] == [
        ("2024-01", 6, 0, True),
        ("2024-02", 6, 2, False),
        ("2024-03", 6, 1, False),  # 5/6 on time is below the 0.9 threshold
    ]
    assert points[0].condition == "registrar == 'SHICHANG'"
    assert points[1].unexpected_share == pytest.approx(2 / 6)

    gx_results.store(engine, rerun)  # a re-run of February: the latest run of the month counts
    latest = gx_results.trend(engine, "monthly", timely)
    assert [(p.month, p.run_id, p.unexpected_count) for p in latest] == [
        ("2024-01", "trend-2024-01", 0),
        ("2024-02", "trend-2024-02-rerun", 3),
        ("2024-03", "trend-2024-03", 1),
    ]
    assert len(gx_results.trend(engine, "monthly", timely, all_runs=True)) == 4
    dups = gx_results.trend(engine, "monthly", "expect_uscc_to_come_from_single_registrar")
    assert [p.unexpected_count for p in dups] == [0, 0, 0]


def test_store_is_idempotent_and_keeps_details(tmp_path, monthly_outcome):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'quality.db'}")
    gx_results.create_tables(engine)
    gx_results.store(engine, monthly_outcome)
    gx_results.store(engine, monthly_outcome)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(gx_results.quality_runs)).mappings().all()
        results = (
            conn.execute(
                sa.select(gx_results.quality_results).order_by(gx_results.quality_results.c.position)
            )
            .mappings()
            .all()
        )
    assert len(runs) == 1
    assert runs[0]["month"] == "2024-03"
    assert runs[0]["success"] is False
    assert runs[0]["data_docs_path"].endswith("index.html")
    assert runs[0]["metrics"]["timeliness"]["registrar"]["SHICHANG"]["share"] == 0.75
    assert len(results) == len(monthly_outcome.per_expectation)
    dup_row = results[0]
    assert dup_row["expectation_type"] == "expect_uscc_to_come_from_single_registrar"
    assert dup_row["column_name"] == "uscc,registrar"
    assert dup_row["details"]["offending_usccs"] == {X91: ["SHENPI", "SHICHANG"]}
    assert set(gx_results.metadata.tables) == {"quality_runs", "quality_results"}


# --------------------------------------------------------------------------------------------------
# Scale (informational timing; targets belong in bench/)


def big_gate_frame(n: int = 10_000) -> pd.DataFrame:
    rng = random.Random(7)
    registrars = ["SHICHANG", "MINZHENG", "BIANZHI", "SHENPI"]
    prefix = {"SHICHANG": ("9", "1"), "MINZHENG": ("5", "2"), "BIANZHI": ("1", "2"), "SHENPI": ("9", "2")}
    rows = []
    for i in range(n):
        registrar = registrars[i % 4]
        code_ = uscc.random_uscc(rng, registrar=prefix[registrar][0], category=prefix[registrar][1])
        if i % 100 == 1:
            code_ = code_[:-1] + ("0" if code_[-1] != "0" else "1")  # 100 bad check characters
        rows.append(
            {
                "event_id": f"ev{i}",
                "event_type": "ESTABLISHED",
                "registrar": registrar,
                "event_date": date(2024, 3, 1 + i % 28),
                "extracted_at": pd.Timestamp("2024-03-29T02:00Z")
                if i % 50
                else pd.Timestamp("2024-04-02T02:00Z"),
                "uscc": code_,
                "name": f"托育机构{i}",
                "county_code": "999999" if i % 250 == 3 else "110105",  # 40 unknown counties
                "business_scope": "托育服务",
                "verdict": "accepted",
            }
        )
    return pd.DataFrame(rows)


def test_ten_thousand_rows(tmp_path, record_property):
    frame = big_gate_frame()
    started = time.perf_counter()
    gate = run_suite("gate_batch", frame, context_root=tmp_path, run_id="big-gate", month="2024-03")
    gate_s = time.perf_counter() - started
    started = time.perf_counter()
    monthly = run_suite("monthly", frame, context_root=tmp_path, run_id="big-month", month="2024-03")
    monthly_s = time.perf_counter() - started
    record_property("gate_batch_10k_s", round(gate_s, 2))
    record_property("monthly_10k_s", round(monthly_s, 2))
    print(f"\n10k rows: gate_batch {gate_s:.2f}s, monthly {monthly_s:.2f}s")

    (valid,) = gate.find("expect_column_values_to_be_valid_uscc")
    assert (valid.element_count, valid.unexpected_count) == (10_000, 100)
    assert len(valid.unexpected_sample) == 20
    (known,) = gate.find("expect_column_values_to_be_known_division")
    assert known.unexpected_count == 40
    (prefix,) = gate.find("expect_column_pair_values_registrar_prefix_consistent")
    assert prefix.success
    assert monthly.metrics["timeliness"]["overall"] == {"on_time": 9_800, "total": 10_000, "share": 0.98}
