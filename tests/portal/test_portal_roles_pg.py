"""The portal's feature tests again, on PostgreSQL, with the web service logged in as its own role.

The store is built and migrated by the owner; ``apply_roles`` grants the portal role exactly its
tables; every request of the imported tests then runs as that role, so a write the role lacks
(e.g. a receipt, an audit row, a filing) fails here. Roles are cluster-wide: named with a uuid and
dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from portal_world import SECRET, World, build
from pydantic import SecretStr

# The imported tests run here against the fixtures below (pytest collects them in this module).
from test_portal_features import *  # noqa: F403
from test_portal_smoke import *  # noqa: F403

from portal.app import create_app
from portal.settings import PortalSettings
from regsync.bookkeeping.roles import apply_roles
from regsync.jobs import migrate_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def _database(stack) -> Iterator[str]:
    uid = uuid.uuid4().hex[:12]
    admin = sa.create_engine(stack.database_url, isolation_level="AUTOCOMMIT")
    name = f"t_{uid}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def world(_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    out: Path = tmp_path_factory.mktemp("portal-roles")
    migrate_database(_database)
    made = build(_database, out)
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    with made.engine.begin() as conn:
        applied = apply_roles(conn, prefix=prefix, passwords={})
    role = applied.roles["portal"]
    made.url = sa.make_url(_database).set(username=role).render_as_string(hide_password=False)
    yield made
    made.engine.dispose()
    cleanup = sa.create_engine(_database)
    names = ", ".join(f'"{r}"' for r in applied.roles.values())
    with cleanup.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {names}"))
        conn.execute(sa.text(f"DROP ROLE {names}"))
    cleanup.dispose()


@pytest.fixture(scope="module")
def app(world: World):
    settings = PortalSettings(session_secret=SecretStr(SECRET), output_dir=world.out)
    app = create_app(world.url, settings)
    with app.state.engine.connect() as conn:  # the web service really runs as its role
        assert conn.scalar(sa.text("SELECT current_user")).endswith("_portal")
    return app
