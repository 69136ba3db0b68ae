"""The portal over the whole demo world (the pipeline's own output, not synthetic rows).

Runs the demo on its own stack (kept up for the portal), then renders every public 公示 page and every
roster-API page for each province present, and a county bureau's pages: no unmasked resident ID or
mobile number (what :func:`schemas.masking.mask_text` would still find), no legal-representative
field on the public side; the auditor's DLQ page reads the demo's real dead-letter queue.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from kafka_auth import secure_wanted
from pydantic import SecretStr

from portal import accounts
from portal.app import create_app
from portal.demo import make_accounts
from portal.settings import PortalSettings
from regsync.demo import run_demo
from regsync.settings import StackSettings
from regsync.stack.launcher import Stack
from schemas.masking import mask_text
from sink.models import institutions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        secure_wanted(),
        reason="regsync demo starts a plain stack of its own (run_demo has no --secure); it runs in the plain suite",
    ),
]

MOBILE = re.compile(r"(?<![0-9A-Za-z*])1[3-9]\d{9}(?![0-9A-Za-z*])")


def login(client: TestClient, user: str, password: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post(
        "/login", data={"username": user, "password": password, "csrf": token}, follow_redirects=False
    )
    assert response.status_code == 303


def _visible(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_public_and_api_over_the_demo_world_carry_no_personal_data(tmp_path, monkeypatch):
    root = tmp_path / "demo"
    summary = run_demo(
        root=root, months=("2026-01", "2026-02"), per_month=30, keep_stack=True, say=lambda m: None
    )
    stack = Stack(StackSettings(state_dir=root / "stack"))
    try:
        endpoints = stack.endpoints()
        assert endpoints is not None and endpoints.database_url
        monkeypatch.setenv("REGSYNC_KAFKA_BOOTSTRAP", endpoints.bootstrap_servers)
        monkeypatch.setenv("REGSYNC_REGISTRY_URL", endpoints.registry_url)
        from regsync.settings import get_settings

        get_settings.cache_clear()
        app = create_app(
            endpoints.database_url,
            PortalSettings(session_secret=SecretStr("demo-world"), output_dir=summary.output_dir),
        )
        engine = app.state.engine
        with engine.connect() as conn:
            counties = [c for c in conn.scalars(sa.select(institutions.c.county_code).distinct()) if c]
            with_rep = conn.scalar(
                sa.select(sa.func.count()).where(institutions.c.legal_rep_id_masked.is_not(None))
            )
        assert counties and with_rep  # the world has people in it: the check below means something
        texts: list[str] = []
        with TestClient(app) as public:
            first = public.get("/public").text
            pages = int(re.search(r"第 1 / (\d+) 页", first).group(1))
            texts += [public.get(f"/public?page={p}").text for p in range(1, pages + 1)]
        for province in sorted({c[:2] for c in counties}):
            _, token = accounts.add_token(engine, "消防", province)
            with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as api:
                cursor = ""
                while True:
                    body = api.get(f"/api/v1/institutions?limit=20&after={cursor}").json()
                    texts.append(json.dumps(body, ensure_ascii=False))
                    for item in body["items"]:
                        texts.append(api.get(f"/api/v1/institutions/{item['uscc']}").text)
                    if not body["next"]:
                        break
                    cursor = body["next"]
        assert len(texts) > 3
        for text in texts:
            visible = _visible(text)
            assert mask_text(visible) == visible, "an unmasked resident ID or phone number"
            assert not MOBILE.search(visible)
            for field in ("legal_rep", "法定代表人", "id_number", "phone"):
                assert field not in visible
        # staff pages show the legal representative, masked; the demo accounts' county has data
        demo = make_accounts(engine, "http://testserver/")
        with TestClient(app) as bureau:
            login(bureau, demo.bureau[0], demo.bureau[1])
            inbox = bureau.get("/inbox").text
            usccs = sorted(set(re.findall(r'href="/institutions/([0-9A-Z]{18})"', inbox)))
            assert usccs, "the demo bureau's inbox is empty"
            for uscc in usccs[:20]:
                visible = _visible(bureau.get(f"/institutions/{uscc}").text)
                assert mask_text(visible) == visible
        with TestClient(app) as auditor:
            login(auditor, demo.auditor[0], demo.auditor[1])
            dlq = auditor.get("/audit/dlq").text
            assert "暂不可读" not in dlq and 'id="dlq"' in dlq
            assert mask_text(_visible(dlq)) == _visible(dlq)
        engine.dispose()
    finally:
        stack.down(purge=True)
