"""The 编制 and 行政审批 SQL systems on real PostgreSQL: simulator writes, connector reads, truth agrees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from connectors.base import ExtractContext
from regsync.sources import for_simulator
from simulators.bianzhi_db import BianzhiDb
from simulators.shenpi_db import ShenpiDb
from simulators.world import WorldConfig, build_world

pytestmark = pytest.mark.integration

MONTH_ENDS = [datetime(2026, month, 1, tzinfo=UTC) for month in range(2, 8)]


@pytest.mark.parametrize("system", [BianzhiDb, ShenpiDb], ids=["bianzhi", "shenpi"])
def test_month_by_month_extraction_matches_ground_truth(system, database_url, tmp_path):
    sim = system(build_world(WorldConfig(institutions_per_month=40)), tmp_path, url=database_url)
    connector = for_simulator(sim)
    try:
        assert sim.engine.dialect.name == "postgresql"
        state: dict = {}
        events, not_childcare, batches = [], 0, 0
        for as_of in MONTH_ENDS:
            sim.publish_until(as_of)
            for batch in connector.batches(state, ExtractContext(as_of, "pg", 3)):
                assert not batch.invalid
                events += batch.events
                not_childcare += batch.not_childcare
                state = batch.state
                batches += 1
        truth = sim.ground_truth()
        ids = [event.event_id for event in events]
        assert len(ids) == len(set(ids))
        assert set(ids) == {line["event_id"] for line in truth if line["childcare"]}
        assert not_childcare == sum(1 for line in truth if not line["childcare"]) > 0
        by_id = {line["event_id"]: line for line in truth}
        assert all(e.event_type.value == by_id[e.event_id]["event_type"] for e in events)
        assert list(connector.batches(state, ExtractContext(MONTH_ENDS[-1], "pg", 3))) == []
        assert batches > 10
    finally:
        connector.close()
        sim.close()


def test_shenpi_change_seq_follows_versions_on_postgres(database_url, tmp_path):
    sim = ShenpiDb(build_world(WorldConfig(institutions_per_month=40)), tmp_path, url=database_url)
    try:
        sim.publish_until(MONTH_ENDS[-1])
        with sim.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT entity_id, version_no FROM approval_registration ORDER BY change_seq")
            ).all()
        last: dict[str, int] = {}
        for entity, version in rows:
            assert version == last.get(entity, 0) + 1
            last[entity] = version
    finally:
        sim.close()
