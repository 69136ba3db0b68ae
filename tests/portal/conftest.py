from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from portal_world import SECRET, World, build, login
from pydantic import SecretStr

from portal.app import create_app
from portal.settings import PortalSettings


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("portal")
    return build(f"sqlite:///{out / 'store.db'}", out)


@pytest.fixture(scope="session")
def app(world: World):
    settings = PortalSettings(session_secret=SecretStr(SECRET), output_dir=world.out)
    return create_app(world.url, settings)


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
