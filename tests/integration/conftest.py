from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sink.store import create_engine, upgrade


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def pg(database_url: str) -> Iterator[sa.Engine]:
    """The filing store migrated to head in the test's own PostgreSQL database."""
    upgrade(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def lite(tmp_path) -> Iterator[sa.Engine]:
    """The same store in SQLite, for tests that compare both back ends."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = create_engine(url)
    yield engine
    engine.dispose()
