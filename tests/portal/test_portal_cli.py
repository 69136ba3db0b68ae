from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from portal.cli import main
from portal.settings import get_portal_settings


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("REGSYNC_PORTAL_DATABASE_URL", url)
    get_portal_settings.cache_clear()
    yield url
    get_portal_settings.cache_clear()


def test_users_and_tokens_commands(db):
    run = CliRunner().invoke
    r = run(main, ["users", "add", "qingcheng", "--role", "bureau", "--county", "441802"])
    assert r.exit_code == 0, r.output
    password = re.search(r"password \(shown once\): (\S+)", r.output).group(1)
    assert run(main, ["users", "add", "xx", "--role", "bureau", "--county", "4418"]).exit_code == 2
    assert run(main, ["users", "add", "yy", "--role", "city", "--prefix", "4418"]).exit_code == 0
    assert run(main, ["users", "add", "zz", "--role", "auditor", "--prefix", "44"]).exit_code == 2
    listed = run(main, ["users", "list"]).output
    assert "qingcheng" in listed and "441802" in listed and password not in listed
    assert run(main, ["users", "disable", "qingcheng"]).exit_code == 0
    assert "disabled" in run(main, ["users", "list"]).output
    r = run(main, ["users", "reset", "qingcheng"])
    assert r.exit_code == 0 and "shown once" in r.output
    r = run(main, ["tokens", "add", "--department", "消防", "--prefix", "3701"])
    assert r.exit_code == 0, r.output
    token = re.search(r"token \(shown once\): (\S+)", r.output).group(1)
    listed = run(main, ["tokens", "list"]).output
    assert "消防" in listed and token not in listed and "active" in listed
    assert run(main, ["tokens", "revoke", "1"]).exit_code == 0
    assert "revoked" in run(main, ["tokens", "list"]).output
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        dump = " ".join(
            str(r)
            for t in ("portal_users", "portal_tokens")
            for r in conn.execute(sa.text(f"SELECT * FROM {t}"))
        )
    assert password not in dump and token not in dump


def test_register_adds_the_commands():
    import typer

    app = typer.Typer()
    from portal.cli import register

    register(app)
    names = {g.name for g in app.registered_groups} | {c.name for c in app.registered_commands}
    assert {"users", "tokens", "serve"} <= names
