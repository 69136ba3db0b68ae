"""One function per unit of work, shared by the CLI, the Airflow DAGs and the demo.

Each job resolves where the services are (settings, else the local stack), does one thing, and
returns a small summary. Airflow tasks call exactly one of these, so a DAG run and a CLI run do the
same work; time windows are passed in (an Airflow data interval, the demo's as-of clock), never
taken from ``now()`` inside a job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regsync.endpoints import Services, resolve

if TYPE_CHECKING:
    from connectors.base import Connector
    from quality.batch_checks import SuiteOutcome
    from regsync.bookkeeping.roles import AppliedRoles
    from regsync.stages.extract import ExtractSummary
    from regsync.stages.gate import GateCounts
    from sink.exports import PackageInfo
    from sink.loader import LoadResult
from regsync.kafka.topics import Topics, ensure_topics, topics_from
from regsync.outputs import packages_dir
from regsync.settings import Settings, get_settings


def _env(settings: Settings | None) -> tuple[Settings, Services, Topics]:
    settings = settings or get_settings()
    services = resolve(settings)
    topics = topics_from(settings)
    ensure_topics(services.bootstrap_servers, topics)
    return settings, services, topics


def prepare(settings: Settings | None = None) -> dict[str, Any]:
    """Contracts registered (explicitly, never on first use) and the database migrated to head.

    Both migration histories run (the pipeline's tables and the filing store's) as the database's
    owner, then the component roles get their grants when ``REGSYNC_DB__ROLES`` is on.
    """
    from regsync.endpoints import resolve_database
    from regsync.kafka import bus

    settings, services, topics = _env(settings)
    registered = bus.register_schemas(services.registry_url, topics, services.registry_auth)
    owner_url = resolve_database(settings)
    revisions = migrate_database(owner_url)
    grant_roles(owner_url, settings)
    return {"topics": list(topics.all()), "subjects": [s for s, _, _ in registered], "database": revisions}


def migrate_database(database_url: str) -> dict[str, str | None]:
    """``alembic upgrade head`` of both migration histories; returns each one's revision now."""
    import sqlalchemy as sa
    from alembic.migration import MigrationContext

    from regsync.bookkeeping import migrate
    from sink import store

    engine = sa.create_engine(database_url)
    try:
        migrate.upgrade(engine)
        store.upgrade(engine)
        with engine.connect() as conn:
            return {
                name: MigrationContext.configure(conn, opts={"version_table": table}).get_current_revision()
                for name, table in (("pipeline", migrate.VERSION_TABLE), ("store", store.VERSION_TABLE))
            }
    finally:
        engine.dispose()


def grant_roles(database_url: str, settings: Settings | None = None) -> AppliedRoles | None:
    """Create the component roles and grant each its tables (``REGSYNC_DB__ROLES``); else ``None``."""
    import sqlalchemy as sa

    from regsync.bookkeeping.roles import apply_roles

    settings = settings or get_settings()
    if not settings.db.roles:
        return None
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            return apply_roles(conn, prefix=settings.db.role_prefix, passwords=settings.db.passwords())
    finally:
        engine.dispose()


def extract(
    source: str, as_of: datetime, settings: Settings | None = None, connector: Connector | None = None
) -> ExtractSummary:
    """Pull one registrar system into ``registrations.raw`` (a built ``connector`` may be passed in)."""
    from regsync import sources
    from regsync.stages.extract import run_extract

    settings, services, topics = _env(settings)
    return run_extract(
        connector or sources.build(source, settings),
        bootstrap=services.bootstrap_servers,
        registry_url=services.registry_url,
        database_url=services.database_url,
        topics=topics,
        as_of=as_of,
    )


def gate(settings: Settings | None = None, workers: int | None = None) -> GateCounts:
    """A bounded gate run: judge everything raw that is not judged yet, then stop.

    ``workers`` (else the ``gate.workers`` setting; 0 = one per core, at most one per raw partition)
    processes share the raw partitions in one consumer group; their counts are summed. A worker that
    fails fails the run (retriable): what it had committed stays judged exactly once, the rest is
    judged by the next run. The workers are processes of their own: they get every setting the gate
    uses through the environment. Without PostgreSQL (embedded SQLite) there are no advisory locks to
    claim instance slots with, so one worker runs unless more are asked for explicitly.
    """
    from regsync.stages.gate import GateCounts, gate_config, gate_group_id, run_gate
    from regsync.stages.gate_workers import claim_instance, default_workers, run_gate_workers
    from schemas.errors import RetriableError

    settings, services, topics = _env(settings)
    postgres = services.database_url.startswith("postgresql")
    n = workers if workers is not None else settings.gate.workers
    n = n or (default_workers(topics.partitions) if postgres else 1)
    if n == 1:
        # Instance slots are claimed (a PostgreSQL advisory lock), so a bounded run never shares a
        # transactional id with a long-running gate replica (compose) or another run.
        with claim_instance(services.database_url, gate_group_id(topics), 1) as instance:
            return run_gate(
                bootstrap=services.bootstrap_servers,
                registry_url=services.registry_url,
                database_url=services.database_url,
                topics=topics,
                config=gate_config(settings),
                instance=instance,
                until_idle=True,
            )
    # The children read their settings from the environment: hand them what this run resolved and
    # everything gate_config() takes, so a Settings object built in code reaches them too.
    env = {
        "REGSYNC_KAFKA_BOOTSTRAP": services.bootstrap_servers,
        "REGSYNC_REGISTRY_URL": services.registry_url,
        "REGSYNC_DATABASE_URL": services.database_url,
        "REGSYNC_TOPIC_PREFIX": topics.prefix,
        "REGSYNC_TOPIC_PARTITIONS": str(topics.partitions),
        "REGSYNC_TIMEZONE": settings.timezone,
        "REGSYNC_GATE__FAMILY_CARE_CAPACITY": str(settings.gate.family_care_capacity),
        "REGSYNC_GATE__MIN_COUNTY_CONFIDENCE": repr(settings.gate.min_county_confidence),
        "REGSYNC_GATE__DISABLED_RULES": json.dumps(sorted(settings.gate.disabled_rules)),
    }
    exits = run_gate_workers(n, until_idle=True, env=env, report_counts=True, claim=postgres)
    failed = [e for e in exits if e.returncode != 0 or e.counts is None]
    if failed:
        raise RetriableError(
            "gate: worker(s) "
            + ", ".join(f"{e.instance} (exit {e.returncode})" for e in failed)
            + f" of {n} failed; what they committed stays judged, a re-run judges the rest"
        )
    total = GateCounts()
    for e in exits:
        assert e.counts is not None
        total.consumed += int(e.counts["consumed"])
        total.valid += int(e.counts["valid"])
        total.rejected += int(e.counts["rejected"])
        total.transactions += int(e.counts["transactions"])
        for rule, k in e.counts["by_rule"].items():
            total.by_rule[rule] = total.by_rule.get(rule, 0) + int(k)
    return total


@contextmanager
def _month_lock(services: Services, topics: Topics, month: str) -> Iterator[None]:
    """One monthly step of ``month`` at a time, whichever run (scheduled, backfill, CLI) started it."""
    from regsync.bookkeeping.locks import advisory_lock

    with advisory_lock(services.database_url, f"regsync.monthly:{topics.valid}:{month}"):
        yield


def load(
    month: str, as_of: datetime | None = None, settings: Settings | None = None, *, allow_gap: bool = False
) -> LoadResult:
    """Load one pushed month into the filing store (a re-run is a no-op; months load oldest first)."""
    from regsync.stages.load import run_load

    settings, services, topics = _env(settings)
    with _month_lock(services, topics, month):
        return run_load(
            bootstrap=services.bootstrap_servers,
            registry_url=services.registry_url,
            database_url=services.database_url,
            topics=topics,
            month=month,
            tz=settings.timezone,
            as_of=as_of,
            allow_gap=allow_gap,
        )


def quality(
    month: str, settings: Settings | None = None, *, fail_on_critical: bool = False
) -> list[SuiteOutcome]:
    """Run the Great Expectations suites over the loaded month; results stored for trends.

    With ``fail_on_critical`` (the DAG's task) a failed critical expectation raises
    :class:`~regsync.stages.quality.CriticalExpectationError` once every outcome is stored.
    """
    from regsync.stages.quality import raise_on_critical, run_month_suites

    settings, services, topics = _env(settings)
    with _month_lock(services, topics, month):
        outcomes = run_month_suites(settings=settings, services=services, topics=topics, month=month)
    if fail_on_critical:
        raise_on_critical(month, outcomes)
    return outcomes


def quality_and_report(month: str, settings: Settings | None = None) -> tuple[list[SuiteOutcome], Path]:
    """Both monthly checks in one process, reading the month's three topics from Kafka once."""
    from regsync.kafka.month_reader import read_month
    from regsync.reporting.build import write_month_report
    from regsync.stages.quality import run_month_suites

    settings, services, topics = _env(settings)
    records = read_month(services.bootstrap_servers, services.registry_url, topics, month, settings.timezone)
    outcomes = run_month_suites(
        settings=settings, services=services, topics=topics, month=month, records=records
    )
    path = write_month_report(
        settings=settings, services=services, topics=topics, month=month, records=records
    )
    return outcomes, path


def report(month: str, settings: Settings | None = None) -> Path:
    """Write the month's self-contained audit report; returns its path."""
    from regsync.reporting.build import write_month_report

    settings, services, topics = _env(settings)
    with _month_lock(services, topics, month):
        return write_month_report(settings=settings, services=services, topics=topics, month=month)


def export(month: str, settings: Settings | None = None) -> list[PackageInfo]:
    """Write the county push packages of the month.

    The audit report carries the packages' row counts and SHA-256 (reconciliation past the gate), and
    the report runs before the export (DAG and demo), so a report already written for the month is
    written again here, after the packages exist.
    """
    import sqlalchemy as sa

    from quality.report import report_filename
    from regsync.outputs import reports_dir
    from regsync.reporting.build import write_month_report
    from sink.exports import export_month
    from sink.store import upgrade

    settings, services, topics = _env(settings)
    upgrade(services.database_url)
    engine = sa.create_engine(services.database_url)
    try:
        with _month_lock(services, topics, month):
            packages = export_month(engine, month, packages_dir(settings))
    finally:
        engine.dispose()
    if (reports_dir(settings) / report_filename(month)).exists():
        write_month_report(settings=settings, services=services, topics=topics, month=month)
    return packages
