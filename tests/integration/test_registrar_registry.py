"""A sixth registrar, registered from a fixture, runs extract → gate → load on the real stack.

Issue 14 §3: the registrar registry feeds the CLI, the report's registrar labels and the month
reader, so a registrar added there is extracted, judged and loaded with nothing else touched: the
connector and its settings come from :func:`regsync.sources.register` and a ``SourcesSettings``
extra, and the job API finds it by name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from listsource import ListConnector, rows

from connectors.base import ConnectorSpec
from regsync import jobs, sources
from regsync.kafka.month_reader import source_registrars
from regsync.settings import Settings
from schemas.events import Registrar

AS_OF = datetime(2026, 1, 20, 4, 0, tzinfo=UTC)
LOAD_AT = datetime(2026, 2, 2, 1, 0, tzinfo=UTC)


class SixthConnector(ListConnector):
    """Rows from a JSON file: a registrar system the project never knew about."""

    spec = ConnectorSpec(
        name="sixth",
        registrar=Registrar.MINZHENG,
        source_system="sixth-file",
        key="id",
        cursor_field="ts",
        description="a sixth registrar system, registered by a test",
    )

    def __init__(self, location: str | Path) -> None:
        super().__init__(json.loads(Path(location).read_text(encoding="utf-8")))


@pytest.fixture
def sixth(tmp_path):
    feed = tmp_path / "sixth.json"
    feed.write_text(json.dumps(rows(9)), encoding="utf-8")
    with sources.register(sources.Source("sixth", SixthConnector, "sixth_rows")) as source:
        yield source, feed


def test_a_sixth_registrar_runs_extract_gate_load(sixth, stack, uid, database_url):
    source, feed = sixth
    settings = Settings(
        kafka_bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topic_prefix=f"t{uid}.",
        sources={"sixth_rows": str(feed)},
    )
    assert source.env == "REGSYNC_SOURCES__SIXTH_ROWS"
    assert "sixth" in sources.names()
    assert sources.configured(settings)[-1] == "sixth"
    assert source_registrars()["sixth"] is Registrar.MINZHENG
    jobs.prepare(settings)

    extracted = jobs.extract("sixth", AS_OF, settings)
    assert (extracted.source, extracted.published) == ("sixth", 9)
    judged = jobs.gate(settings)
    assert judged.consumed == 9 and judged.valid + judged.rejected == 9 and judged.valid > 0
    loaded = jobs.load("2026-01", LOAD_AT, settings)
    assert loaded.records == judged.valid
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM institution_events")).scalar_one()
    engine.dispose()
    assert stored == judged.valid


def test_an_unregistered_source_is_refused_in_one_line():
    from schemas.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"unknown source 'seventh'; known: bianzhi, "):
        sources.build("seventh", Settings())
