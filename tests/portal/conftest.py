from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from pydantic import SecretStr
from world import PASSWORD, World, build

from portal.app import create_app
from portal.settings import PortalSettings

SECRET = "test-session-secret-that-must-not-leak-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("portal")
    return build(f"sqlite:///{out / 'store.db'}", out)


@pytest.fixture(scope="session")
def app(world: World):
    settings = PortalSettings(session_secret=SecretStr(SECRET), output_dir=world.out)
    return create_app(world.url, settings)


def csrf_of(client: TestClient, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def login(client: TestClient, user: str, password: str = PASSWORD) -> TestClient:
    token = csrf_of(client)
    response = client.post(
        "/login",
        data={"username": user, "password": password, "csrf": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    return client


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def as_user(app):
    made: list[TestClient] = []

    def make(user: str) -> TestClient:
        c = TestClient(app)
        made.append(c)
        return login(c, user)

    yield make
    for c in made:
        c.close()
