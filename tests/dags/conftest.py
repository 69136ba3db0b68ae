"""The DAG tier: Airflow with a throwaway home and SQLite metadata DB, regsync configured by environment.

Airflow reads ``AIRFLOW_HOME`` and its configuration when ``airflow`` is first imported, so the
session fixture below sets them first and only then imports it; nothing in this tier imports Airflow
at module level. The metadata DB is created the way ``airflow db migrate`` does it
(``airflow.utils.db.upgradedb``: an empty database is created from the ORM models, stamped at head).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
START_DATE = "2026-01-01"


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``AIRFLOW_HOME`` with this repository's ``dags/`` as the DAGs folder."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # Required by the DAG files (never assumed); test_dag_integrity checks the refusal without it.
        "REGSYNC_AIRFLOW__START_DATE": START_DATE,
    }
    if "airflow" in sys.modules:
        from airflow.configuration import AIRFLOW_HOME

        if Path(AIRFLOW_HOME) != home:
            pytest.fail(
                f"airflow was imported before the DAG tier set AIRFLOW_HOME (it uses {AIRFLOW_HOME}); "
                "import airflow inside tests/fixtures only"
            )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield home


@pytest.fixture(scope="session")
def dagbag(airflow_home: Path) -> Any:
    """The DAGs folder parsed the way the DAG processor does it (bundle path on ``sys.path``)."""
    began = time.perf_counter()
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    print(f"\n[dags] airflow import + DAG parse: {time.perf_counter() - began:.2f}s")
    return bag


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """The SQLite metadata DB, migrated as ``airflow db migrate`` would (what ``dag.test()`` needs)."""
    began = time.perf_counter()
    from airflow.utils.db import upgradedb

    upgradedb()
    print(f"\n[dags] airflow metadata DB migrated in {time.perf_counter() - began:.2f}s")
    return airflow_home / "airflow.db"


@pytest.fixture
def regsync_env(
    stack: Any,
    database_url: str,
    uid: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    as_components: Callable[[Any], None],
) -> Iterator[dict[str, str]]:
    """regsync configured for this test through ``REGSYNC_*`` only, as an Airflow worker would be.

    On a secure session (REGSYNC_TEST_SECURE=1) that includes each component's own Kafka login.
    """
    from regsync.kafka.topics import Topics
    from regsync.settings import get_settings

    as_components(Topics(prefix=f"t{uid}."))
    logins = {k: v for k, v in os.environ.items() if k.startswith("REGSYNC_KAFKA__")}
    env = {
        **logins,
        "REGSYNC_KAFKA_BOOTSTRAP": stack.bootstrap_servers,
        "REGSYNC_REGISTRY_URL": stack.registry_url,
        "REGSYNC_DATABASE_URL": database_url,
        "REGSYNC_TOPIC_PREFIX": f"t{uid}.",
        "REGSYNC_OUTPUT_DIR": str(tmp_path / "output"),
        # No developer's running stack may leak in through the launcher's state folder.
        "REGSYNC_STACK__STATE_DIR": str(tmp_path / "no-stack"),
    }
    for key in [k for k in os.environ if k.startswith("REGSYNC_") and k not in env]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def pytest_configure(config: pytest.Config) -> None:
    """Deprecation warnings raised inside Airflow itself (its DAG-folder scan, its in-process API)."""
    config.addinivalue_line("filterwarnings", "ignore:GitWildMatchPattern:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")
