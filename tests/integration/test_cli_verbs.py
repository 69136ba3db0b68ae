"""The operator's command line (issue 17), driven as an operator's script drives it.

Every test runs ``python -m regsync`` in a subprocess against the real stack (its own topic prefix and
database), reads stdout as a script would (``--json`` parsed, CSV read back) and checks the exit code.
Mistakes are run against closed ports: a usage error (exit 2) there proves the argument was answered
before anything connected.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date

import pytest
import sqlalchemy as sa
from pipeline_setup import pipeline_params

from regsync.kafka.topics import Topics
from schemas.uscc import make_uscc

COUNTY = "440305"  # 南山区
OTHER_COUNTY = "110101"  # 东城区
NOWHERE = "127.0.0.1:9"  # discard port: nothing listens


def _env(**extra: str) -> dict[str, str]:
    # The Kafka login stays (a secure session stack, REGSYNC_TEST_SECURE=1); everything else is explicit.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_KAFKA__")
    }
    env.update(extra)
    return env


@pytest.fixture
def cli_env(stack, uid, database_url, tmp_path, as_components) -> dict[str, str]:
    """Each verb as an operator runs it; on a secure session each component logs in as itself."""
    as_components(Topics(prefix=f"test.{uid}."))
    return _env(
        REGSYNC_KAFKA_BOOTSTRAP=stack.bootstrap_servers,
        REGSYNC_REGISTRY_URL=stack.registry_url,
        REGSYNC_DATABASE_URL=database_url,
        REGSYNC_TOPIC_PREFIX=f"test.{uid}.",
        REGSYNC_STACK__STATE_DIR=str(tmp_path / "no-local-stack"),
        REGSYNC_OUTPUT_DIR=str(tmp_path / "out"),
    )


@pytest.fixture
def dead_env(tmp_path) -> dict[str, str]:
    """Every service on a closed port: anything that tries to connect fails with 69, not 2."""
    return _env(
        REGSYNC_KAFKA_BOOTSTRAP=NOWHERE,
        REGSYNC_REGISTRY_URL=f"http://{NOWHERE}/apis/ccompat/v7",
        REGSYNC_DATABASE_URL=f"postgresql+psycopg://regsync@{NOWHERE}/none",
        REGSYNC_STACK__STATE_DIR=str(tmp_path / "no-local-stack"),
        REGSYNC_PROBE_TIMEOUT="1",
    )


def regsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regsync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def said(text: str) -> str:
    """Text of a message as a person reads it: the error box's borders and wrapping taken out."""
    return " ".join(text.replace("│", " ").split())


def as_json(done: subprocess.CompletedProcess[str]) -> dict:
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"stdout is not JSON (exit {done.returncode}):\n{done.stdout}\n--- stderr\n{done.stderr}")


def _uscc(n: int) -> str:
    return make_uscc("9", "1", COUNTY, f"{n:07d}0"[:8])


def _seed_roster(database_url: str, usccs: list[str]) -> None:
    """Registered childcare institutions in the store (as a load leaves them)."""
    from sink.models import institutions

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(institutions),
            [
                {
                    "uscc": u,
                    "name": f"测试托育{i}",
                    "legal_form": "COMPANY",
                    "profit_nature": "FOR_PROFIT",
                    "address": f"南山区某路{i}号 电话13800138000",
                    "county_code": COUNTY,
                    "status": "ACTIVE",
                    "childcare": True,
                    "childcare_since": date(2026, 1, 5),
                    "business_scope": "托育服务",
                    "registrars": "shichang",
                    "first_registration_date": date(2026, 1, 5),
                    "last_event_id": f"ev-{i}",
                    "last_event_date": date(2026, 1, 5),
                    "last_event_type": "ESTABLISHED",
                    "first_load_month": "2026-01",
                    "last_load_month": "2026-01",
                }
                for i, u in enumerate(usccs)
            ],
        )
    engine.dispose()


def test_init_is_idempotent_and_schemas_read_the_registry(cli_env, uid):
    first = regsync(cli_env, "init", "--json")
    assert first.returncode == 0, first.stderr
    again = regsync(cli_env, "init", "--json")
    assert again.returncode == 0, again.stderr
    one, two = as_json(first), as_json(again)
    prefix = f"test.{uid}."
    assert one["subjects"] == [
        f"{prefix}registrations.raw-value",
        f"{prefix}registrations.valid-value",
        f"{prefix}registrations.rejected-value",
    ]
    assert one == two  # nothing new the second time: same topics, subjects, revisions
    assert all(one["database"].values())

    listed = as_json(regsync(cli_env, "schemas", "list", "--json"))["subjects"]
    assert {s["subject"] for s in listed} == set(one["subjects"])
    assert all(s["versions"] and s["compatibility"] == "FULL_TRANSITIVE" for s in listed)

    shown = regsync(cli_env, "schemas", "show", "registrations.rejected", "--version", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    body = as_json(shown)
    assert (body["subject"], body["version"]) == (f"{prefix}registrations.rejected-value", 1)
    assert body["schema"]["type"] == "record"


def test_schemas_list_shows_unregistered_subjects(cli_env):
    listed = as_json(regsync(cli_env, "schemas", "list", "--json"))["subjects"]
    assert [s["versions"] for s in listed] == [[], [], []]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trace", "NOTAUSCC"], "length 8, expected 18"),
        (["trace", "91440300MA5FXXXXX1"], "position 18"),
        (["dlq", "list", "--uscc", "91440300MA5FXXXXX1"], "position 18"),
        (["extract", "--source", "nosuch"], "known: "),
        (["load", "--month", "2026-13"], "2026-13"),
        (["gap", "--format", "xlsx"], "--output"),
        (["gap", "--county", "12"], "not a county code"),
        (["gap", "--json", "--csv"], "exclude each other"),
        (["schemas", "show", "nope"], "registrations.raw-value"),
        (["schemas", "show", "registrations.raw", "--version", "x"], "not a version"),
        (["filings", "import", "/nonexistent/filings.csv"], "does not exist"),
    ],
)
def test_mistakes_are_answered_before_connecting(dead_env, args, expected):
    done = regsync(dead_env, *args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert expected in said(done.stderr), done.stderr
    assert done.stdout == ""


def test_extract_help_lists_the_sources_without_placeholders(dead_env):
    from regsync import sources

    done = regsync(dead_env, "extract", "--help")
    text = said(done.stdout)
    assert all(name in text for name in sources.names())
    assert "list[str]" not in text


def test_unreachable_service_is_69_with_one_line(dead_env):
    done = regsync(dead_env, "init", "--json")
    assert done.returncode == 69, done.stderr
    assert done.stdout == ""
    assert "error:" in done.stderr and "Traceback" not in done.stderr


def test_filings_import_previews_refuses_and_feeds_the_gap(cli_env, database_url, tmp_path):
    assert regsync(cli_env, "init").returncode == 0
    a, b = _uscc(1), _uscc(2)
    stranger = make_uscc("9", "1", OTHER_COUNTY, "77777770")
    _seed_roster(database_url, [a, b])

    gap = as_json(regsync(cli_env, "gap", "--json", "--as-of", "2026-03-01"))
    unfiled = {row["统一社会信用代码"] for c in gap["counties"] for row in c["登记未备案"]}
    assert unfiled == {a, b}
    assert gap["totals"] == {"登记未备案": 2, "备案未登记": 0}
    # addresses carry a phone number in the roster: masked in what the command prints
    assert "13800138000" not in json.dumps(gap, ensure_ascii=False)

    export = tmp_path / "备案导出.csv"
    export.write_text(
        "统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态\n"
        f"{a},BA-0001,2026-02-01,{COUNTY},已备案\n"
        f"{stranger},BA-0002,2026-02-01,{OTHER_COUNTY},已备案\n"
        f"{b},BA-0003,2026-02-30,{COUNTY},已备案\n",
        encoding="utf-8",
    )
    dry = regsync(cli_env, "filings", "import", str(export), "--dry-run", "--json")
    assert dry.returncode == 65, dry.stderr
    preview = as_json(dry)
    assert (preview["accepted"], preview["refused"], preview["inserted"]) == (1, 2, 0)
    assert [(p["line"], p["accepted"]) for p in preview["preview"]] == [(2, True), (3, False), (4, False)]
    assert "BA-0003" in preview["preview"][2]["reason"] and "2026-02-30" in preview["preview"][2]["reason"]
    assert as_json(regsync(cli_env, "gap", "--json", "--as-of", "2026-03-01"))["totals"]["登记未备案"] == 2

    done = regsync(cli_env, "filings", "import", str(export), "--json")
    assert done.returncode == 65
    assert "2 of 3 lines refused" in done.stderr
    assert (as_json(done)["inserted"], as_json(done)["unchanged"]) == (1, 0)
    rerun = as_json(regsync(cli_env, "filings", "import", str(export), "--json"))
    assert (rerun["inserted"], rerun["updated"], rerun["unchanged"]) == (0, 0, 1)

    piped_csv = regsync(cli_env, "gap", "--csv", "--as-of", "2026-03-01")
    assert piped_csv.returncode == 0, piped_csv.stderr
    rows = list(csv.reader(io.StringIO(piped_csv.stdout)))
    assert rows[0][0] == "统一社会信用代码"
    assert [r[0] for r in rows[1:]] == [b]

    book_path = tmp_path / "gap.xlsx"
    assert regsync(cli_env, "gap", "--format", "xlsx", "-o", str(book_path)).returncode == 0
    from openpyxl import load_workbook

    book = load_workbook(book_path, read_only=True)
    assert book.sheetnames == ["登记未备案", "备案未登记"]
    assert [r[0] for r in book["登记未备案"].iter_rows(min_row=2, values_only=True)] == [b]

    elsewhere = as_json(regsync(cli_env, "gap", "--json", "--county", OTHER_COUNTY))
    assert elsewhere["counties"] == [] and elsewhere["totals"]["登记未备案"] == 0

    # a table piped into a file: every USCC and reason whole, one row a line
    table = regsync(cli_env, "filings", "import", str(export), "--dry-run")
    assert table.returncode == 65
    line = next(x for x in table.stdout.splitlines() if stranger in x)
    assert "refused" in line and "本辖区无此登记机构" in line


def test_filings_import_refuses_unreadable_and_oversized_files_whole(cli_env, tmp_path):
    assert regsync(cli_env, "init").returncode == 0
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n", encoding="utf-8")
    done = regsync(cli_env, "filings", "import", str(wrong))
    assert done.returncode == 78, done.stderr
    assert "missing column" in done.stderr and done.stdout == ""

    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:  # sparse: large by size, nothing written
        handle.truncate(65 * 1024 * 1024)
    done = regsync(cli_env, "filings", "import", str(huge), "--json")
    assert done.returncode == 65, done.stderr
    assert "at most 64 MB" in done.stderr and done.stdout == ""


def test_store_not_migrated_says_run_init(cli_env):
    done = regsync(cli_env, "gap")
    assert done.returncode == 78
    assert "regsync init" in done.stderr


def test_empty_month_load_says_so_and_json_outputs_parse(cli_env):
    assert regsync(cli_env, "init").returncode == 0
    loaded = regsync(cli_env, "load", "--month", "2026-01", "--as-of", "2026-03-01T00:00+08:00", "--json")
    assert loaded.returncode == 0, loaded.stderr
    body = as_json(loaded)
    assert (body["empty"], body["records"], body["gate_caught_up"]) == (True, 0, True)
    said = regsync(cli_env, "load", "--month", "2026-02", "--as-of", "2026-04-01T00:00+08:00")
    assert said.returncode == 0, said.stderr
    assert "empty" in said.stdout and "the gate has judged every raw record" in said.stdout

    dlq = as_json(regsync(cli_env, "dlq", "list", "--json"))
    assert (dlq["total"], dlq["entries"]) == (0, [])
    dlq_csv = regsync(cli_env, "dlq", "list", "--csv")
    assert dlq_csv.stdout.splitlines() == ["position,pushed_at,source,uscc,name,rules,reason,replayable"]

    absent = make_uscc("9", "1", COUNTY, "55555550")
    traced = regsync(cli_env, "trace", absent, "--json")
    assert traced.returncode == 1
    assert as_json(traced) == {"uscc": absent, "found": False, "hops": [], "store": None}

    gate = regsync(cli_env, "gate", "--json")
    assert gate.returncode == 0, gate.stderr
    assert as_json(gate)["judged"] == 0


def test_quiet_silences_progress_only(cli_env):
    loud = regsync(cli_env, "init")
    quiet = regsync(cli_env, "--quiet", "init")
    assert "done in" in loud.stderr
    # only the progress goes: a client library's warning on a loaded machine may still print
    assert quiet.returncode == 0 and "done in" not in quiet.stderr
    assert quiet.stdout == loud.stdout and "store" in quiet.stdout


def test_stack_status_json(stack_state_dir):
    done = regsync(_env(REGSYNC_STACK__STATE_DIR=str(stack_state_dir)), "stack", "status", "--json")
    assert done.returncode == 0, done.stderr
    body = as_json(done)
    assert body["ready"] is True
    assert {s["name"] for s in body["services"]} == {"kafka", "schema-registry", "postgres"}


def test_piped_dlq_table_keeps_every_uscc_whole_and_json_agrees(
    stack, uid, database_url, cli_env, as_components
):
    """Records in the DLQ (made with the library: setup, not the subject), then read as a script does."""
    from datetime import UTC, datetime

    from listsource import FaultyListConnector, rows

    from regsync.stages.extract import run_extract
    from regsync.stages.gate import run_gate

    topics = Topics(prefix=f"test.{uid}.")
    p = pipeline_params(stack, database_url, topics, as_components)
    as_of = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    run_extract(FaultyListConnector(rows(40)), as_of=as_of, batch_size=10, **p)
    run_gate(**p, until_idle=True)

    listed = regsync(cli_env, "dlq", "list", "--json", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    body = as_json(listed)
    assert body["total"] == len(body["entries"]) > 0
    assert body["per_rule"]["USCC_CHECK_DIGIT"] == 8
    usccs = {e["uscc"] for e in body["entries"] if e["uscc"]}

    piped = regsync(cli_env, "dlq", "list", "--limit", "500")
    assert piped.returncode == 0, piped.stderr
    assert "…" not in piped.stdout  # nothing cut
    assert all(u in piped.stdout for u in usccs)

    as_csv = list(
        csv.DictReader(io.StringIO(regsync(cli_env, "dlq", "list", "--csv", "--limit", "500").stdout))
    )
    assert [r["position"] for r in as_csv] == [e["position"] for e in body["entries"]]

    good = rows(40)[1]["uscc"]  # row 1: neither broken check digit nor missing name
    traced = regsync(cli_env, "trace", good, "--json")
    assert traced.returncode == 0, traced.stderr
    stages = [h["stage"] for h in as_json(traced)["hops"]]
    assert "raw" in stages and "gate: valid" in stages, stages

    dry = regsync(
        cli_env, "dlq", "replay", "--rule", "USCC_CHECK_DIGIT", "--dry-run", "--reason", "t", "--json"
    )
    assert dry.returncode == 0, dry.stderr
    assert {k: as_json(dry)[k] for k in ("matched", "replayed", "dry_run")} == {
        "matched": 8,
        "replayed": 0,
        "dry_run": True,
    }

    again = as_json(regsync(cli_env, "gate", "--json"))
    assert again["judged"] == 0  # the gate above judged everything once
