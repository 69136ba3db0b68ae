from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient
from portal_world import FOREIGN, MONTHS, OWN, csrf_of

from portal import packages
from portal.models import receipts
from schemas.masking import mask_text
from sink.filing import import_filings
from sink.models import filings

MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def _unfiled_total(c: TestClient) -> int:
    return int(re.search(r'id="unfiled-total">(\d+)<', c.get("/gap").text).group(1))


def test_online_filing_shrinks_the_gap_and_is_validated(as_user, world):
    c = as_user("bureau_a")
    before = _unfiled_total(c)
    uscc = world.own_uscc[10]
    form = {
        "uscc": uscc,
        "filing_number": "ONLINE-1",
        "filed_date": "2026-01-03",
        "status": "已备案",
        "csrf": csrf_of(c, "/filings/new"),
    }
    r = c.post("/filings", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/institutions/{uscc}")
    assert _unfiled_total(c) == before - 1
    # the same number for another institution, a foreign USCC, a date before registration: refused
    for bad, reason in (
        ({**form, "uscc": world.own_uscc[11]}, "已被其他机构使用"),
        ({**form, "uscc": world.foreign_uscc[11], "filing_number": "ONLINE-2"}, "本辖区无此登记机构"),
        ({**form, "filing_number": "ONLINE-3", "filed_date": "2000-01-01"}, "早于登记日期"),
    ):
        r = c.post("/filings", data=bad)
        assert r.status_code == 422 and reason in r.text
    assert _unfiled_total(c) == before - 1


def _row(engine, number):
    with engine.connect() as conn:
        row = conn.execute(sa.select(filings).where(filings.c.filing_number == number)).mappings().one()
    return {k: row[k] for k in ("filing_number", "uscc", "county_code", "filed_date", "status")}, row


def test_online_and_csv_give_identical_rows_and_reimport_changes_nothing(as_user, world):
    c = as_user("bureau_a")
    online, csv_uscc = world.own_uscc[12], world.own_uscc[13]
    c.post(
        "/filings",
        data={
            "uscc": online,
            "filing_number": "SAME-1",
            "filed_date": "2026-01-04",
            "status": "已备案",
            "csrf": csrf_of(c, "/filings/new"),
        },
    )
    body = (
        "统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态\n"
        + f"{csv_uscc},SAME-2,2026/01/04,,已备案\n"
        + "bad,,x,,\n"
    )
    r = c.post(
        "/filings/upload",
        data={"csrf": csrf_of(c, "/filings/upload")},
        files={"file": ("p.csv", body.encode("gb18030"), "text/csv")},
    )
    assert r.status_code == 200
    assert 'id="accepted">1<' in r.text and 'id="refused">1<' in r.text
    with world.engine.connect() as conn:  # preview writes nothing
        assert (
            conn.scalar(
                sa.select(sa.func.count()).select_from(filings).where(filings.c.filing_number == "SAME-2")
            )
            == 0
        )
    ticket = re.search(r'name="ticket" value="([^"]+)"', r.text).group(1)
    r = c.post("/filings/upload/commit", data={"csrf": csrf_of(c, "/filings/upload"), "ticket": ticket})
    assert "新增 1" in r.text
    a, _ = _row(world.engine, "SAME-1")
    b, stored = _row(world.engine, "SAME-2")
    assert {**a, "uscc": None, "filing_number": None} == {**b, "uscc": None, "filing_number": None}
    assert a["county_code"] == b["county_code"] == OWN
    # the same filings again, online and by file: nothing changes (imported_at kept)
    r = c.post("/filings/upload/commit", data={"csrf": csrf_of(c, "/filings/upload"), "ticket": ticket})
    assert "未变 1" in r.text
    assert _row(world.engine, "SAME-2")[1] == stored
    # and the same filing by online entry and by CSV gives the same row as the pipeline's importer
    path = world.out / "same.csv"
    path.write_text(
        f"统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态\n{online},SAME-1,2026-01-04,{OWN},已备案\n",
        encoding="utf-8",
    )
    assert import_filings(world.engine, path).unchanged == 1


def test_package_zip_verifies_and_first_download_is_the_receipt(as_user, world):
    c = as_user("bureau_a")
    r = c.get(f"/packages/{MONTHS[0]}/{OWN}.zip")
    assert r.status_code == 200
    served = hashlib.sha256(r.content).hexdigest()
    assert r.headers["x-content-sha256"] == served
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = archive.read("manifest.json")
    public = load_pem_public_key(c.get("/packages/public-key.pem").content)
    assert packages.verify(public, manifest, archive.read("manifest.json.sig"))
    assert not packages.verify(public, manifest + b" ", archive.read("manifest.json.sig"))
    doc = json.loads(manifest)
    for name, info in doc["files"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == info["sha256"]
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert c.get(f"/packages/{MONTHS[0]}/{OWN}.zip").content == r.content  # deterministic
    with world.engine.connect() as conn:
        got = (
            conn.execute(
                sa.select(receipts).where(receipts.c.month == MONTHS[0], receipts.c.county_code == OWN)
            )
            .mappings()
            .all()
        )
    assert len(got) == 1 and got[0]["sha256"] == served and got[0]["username"] == "bureau_a"
    # the province sees the receipt
    page = as_user("prov_a").get("/packages").text
    assert "已签收 bureau_a" in page


def test_empty_month_is_an_explicit_signed_package(as_user):
    c = as_user("bureau_a")
    page = c.get("/packages").text
    assert "本月无推送" in page
    r = c.get(f"/packages/{MONTHS[1]}/{OWN}.zip")
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    doc = json.loads(archive.read("manifest.json"))
    assert doc["rows"] == 0 and "本月无推送" in doc["note"] and doc["county_code"] == OWN
    assert c.get(f"/packages/{MONTHS[1]}/{FOREIGN}.zip").status_code == 404
    assert c.get("/packages/1999-01/370102.zip").status_code == 404


def test_inbox_unseen_then_seen_after_view(as_user, world):
    from portal_world import PASSWORD

    from portal.accounts import add_user

    add_user(world.engine, "city_fresh", "city", "3701", PASSWORD)  # seen state is per user
    c = as_user("city_fresh")
    page = c.get(f"/inbox?month={MONTHS[0]}&status=unseen").text
    before = int(re.search(r'id="inbox-total">(\d+)<', page).group(1))
    assert before > 0
    uscc = re.search(r'href="/institutions/([0-9A-Z]{18})"', page).group(1)
    assert c.get(f"/institutions/{uscc}").status_code == 200
    after = int(
        re.search(r'id="inbox-total">(\d+)<', c.get(f"/inbox?month={MONTHS[0]}&status=unseen").text).group(1)
    )
    assert after < before
    late = c.get(f"/inbox?month={MONTHS[0]}&status=late").text
    assert "逾期 Late" in late


def test_public_and_api_carry_no_personal_data(app, world, client):
    texts = []
    first = client.get("/public")
    pages = int(re.search(r"第 1 / (\d+) 页", first.text).group(1))
    texts += [client.get(f"/public?page={p}").text for p in range(1, pages + 1)]
    texts.append(client.get("/public?q=托育").text)
    assert "SEED" in "".join(texts)  # filed institutions are shown
    with TestClient(app, headers={"Authorization": f"Bearer {world.tokens['3701']}"}) as api:
        cursor, rows = "", 0
        while True:
            body = api.get(f"/api/v1/institutions?limit=50&after={cursor}").json()
            texts.append(json.dumps(body, ensure_ascii=False))
            rows += len(body["items"])
            if not body["next"]:
                break
            cursor = body["next"]
        assert rows > 0 and all(i["county_code"].startswith("3701") for i in json.loads(texts[-1])["items"])
        texts.append(api.get(f"/api/v1/institutions/{world.own_uscc[0]}").text)
    for text in texts:
        visible = re.sub(r"<[^>]+>", " ", text)
        assert mask_text(visible) == visible, "an unmasked resident ID or phone number"
        assert not MOBILE.search(visible)
        for field in ("legal_rep", "法定代表人", "id_number", "phone"):
            assert field not in visible


def test_api_etag_keyset_and_scope(app, world):
    with TestClient(app, headers={"Authorization": f"Bearer {world.tokens['3701']}"}) as api:
        r = api.get("/api/v1/institutions?limit=10")
        tag = r.headers["etag"]
        assert api.get("/api/v1/institutions?limit=10", headers={"If-None-Match": tag}).status_code == 304
        page2 = api.get(f"/api/v1/institutions?limit=10&after={r.json()['next']}").json()["items"]
        assert page2[0]["uscc"] > r.json()["items"][-1]["uscc"]
        assert api.get(f"/api/v1/institutions/{world.foreign_uscc[0]}").status_code == 404
        recent = api.get("/api/v1/institutions?updated_since=2999-01-01").json()
        assert recent["items"] == []
    with TestClient(app, headers={"Authorization": f"Bearer {world.tokens['4418']}"}) as api:
        items = api.get("/api/v1/institutions?limit=1000").json()["items"]
        assert items and all(i["county_code"].startswith("4418") for i in items)


def test_gap_exports(as_user):
    c = as_user("bureau_a")
    text = c.get("/gap.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "统一社会信用代码" and all(r[2] == OWN for r in rows[1:])
    x = c.get("/gap.xlsx")
    assert x.status_code == 200 and x.content[:2] == b"PK"


def test_audit_log_records_views_and_exports(as_user, world):
    b = as_user("bureau_a")
    b.get(f"/institutions/{world.own_uscc[1]}")
    a = as_user("auditor")
    text = a.get("/audit/log.csv").content.decode("utf-8-sig")
    assert "view_institution" in text and world.own_uscc[1] in text and "testclient" in text
    assert b.get("/audit/log").status_code == 403


@pytest.mark.parametrize("path", ["/audit/reports", f"/audit/months/{MONTHS[0]}", "/audit/dlq"])
def test_auditor_pages_render(as_user, path):
    assert as_user("auditor").get(path).status_code == 200


def test_gap_orphans_tab_lists_filings_without_registration(as_user, world):
    from datetime import date, datetime

    with world.engine.begin() as conn:
        conn.execute(
            filings.insert().values(
                filing_number="ORPHAN-1",
                uscc="91370102MA0000000X",
                county_code=OWN,
                filed_date=date(2025, 7, 1),
                status="已备案",
                source_file="t",
                imported_at=datetime(2025, 7, 1),
            )
        )
    assert "ORPHAN-1" in as_user("bureau_a").get("/gap?view=orphans").text
    assert "ORPHAN-1" not in as_user("bureau_b").get("/gap?view=orphans").text
