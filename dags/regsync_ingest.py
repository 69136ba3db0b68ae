"""The event-driven half of regsync: one extraction DAG per registrar, and the gate, wired by Assets.

``regsync_extract_<source>`` pulls one registrar system into ``registrations.raw`` up to the end of
its data interval and, on success, emits the Asset ``regsync://registrations.raw/<source>``.
``regsync_gate`` runs whenever any of those Assets has a new event, judges everything raw not judged
yet and emits ``regsync://registrations.valid``. Its one task runs N gate worker processes in one
consumer group (the ``workers`` param, else ``REGSYNC_GATE__WORKERS``, else one per core and at most
one per raw partition).

The file stays thin: only the standard library and ``airflow.sdk`` at the top, no I/O while Airflow
parses it; ``regsync`` is imported inside the tasks. Where the services are comes from regsync's
settings (``REGSYNC_*`` environment variables, see ``dags/README.md``); only the schedule is read here,
from the environment, because Airflow needs it at parse time.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, AssetAny, Param, dag, task
from regsync_support import DEFAULT_ARGS, START, extraction_as_of, extraction_window_end, fail_fast, summary

# The registrar systems: a literal, because parsing may import nothing of regsync; tests/dags
# checks it stays equal to the registry, regsync.sources.REGISTRY (one of the three places).
SOURCES = ("bianzhi", "minzheng", "shichang", "shenpi", "jiaoyu")

DEFAULT_SCHEDULE = "@daily"

RAW = {source: Asset(f"regsync://registrations.raw/{source}") for source in SOURCES}
VALID = Asset("regsync://registrations.valid")


def extract_schedule(source: str) -> str | None:
    """Cron expression or preset of one extraction DAG: per source, else for all, else daily.

    ``REGSYNC_AIRFLOW__EXTRACT_SCHEDULE_<SOURCE>`` wins over ``REGSYNC_AIRFLOW__EXTRACT_SCHEDULE``;
    ``none`` means "only when triggered".
    """
    value = os.environ.get(f"REGSYNC_AIRFLOW__EXTRACT_SCHEDULE_{source.upper()}") or os.environ.get(
        "REGSYNC_AIRFLOW__EXTRACT_SCHEDULE", DEFAULT_SCHEDULE
    )
    return None if value.strip().lower() in ("", "none", "null") else value.strip()


def extraction_dag(source: str) -> Any:
    """The extraction DAG of one registrar system."""

    @dag(
        dag_id=f"regsync_extract_{source}",
        description=f"Extract the {source} registrar system into registrations.raw",
        schedule=extract_schedule(source),
        start_date=START,
        catchup=False,  # the connector's cursor, not the interval, says what is new
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["regsync", "extract", source],
        doc_md=__doc__,
    )
    def extract_dag() -> None:
        @task(task_id="extract", outlets=[RAW[source]])
        def extract(**context: Any) -> Any:
            """Everything surfaced before the end of the data interval goes to registrations.raw.

            Nothing new (nothing published, nothing recovered from a crashed run) skips the task,
            so no Asset event is emitted and no empty gate run starts; the summary is still in XCom.
            """
            from airflow.sdk.exceptions import AirflowSkipException

            from regsync import jobs

            window_end = extraction_window_end(context)
            as_of = extraction_as_of(window_end)
            with fail_fast():
                result = jobs.extract(source, as_of=as_of)
            done = {"as_of": as_of.isoformat(), "window_end": window_end.isoformat(), **summary(result)}
            if not done.get("published") and not done.get("recovered"):
                context["ti"].xcom_push(key="return_value", value=done)
                raise AirflowSkipException(f"{source}: nothing new as of {as_of.isoformat()}; no Asset event")
            context["outlet_events"][RAW[source]].extra = done
            return done

        extract()

    return extract_dag()


for _source in SOURCES:
    extraction_dag(_source)


@dag(
    dag_id="regsync_gate",
    description="Judge new raw registrations into registrations.valid / registrations.rejected",
    schedule=AssetAny(*RAW.values()),
    start_date=START,
    catchup=False,
    max_active_runs=1,  # one transactional gate at a time; queued Asset events fold into the next run
    default_args=DEFAULT_ARGS,
    params={
        "workers": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=64,
            description="Gate worker processes; empty = REGSYNC_GATE__WORKERS, else one per core "
            "(at most one per raw partition)",
        ),
    },
    tags=["regsync", "gate"],
    doc_md=__doc__,
)
def regsync_gate() -> None:
    @task(task_id="gate", outlets=[VALID])
    def gate(**context: Any) -> Any:
        """A bounded gate run: N workers consume raw until caught up, in Kafka transactions, then stop."""
        from regsync import jobs

        workers = (context.get("params") or {}).get("workers")
        with fail_fast():
            counts = summary(jobs.gate(workers=int(workers) if workers else None))
        context["outlet_events"][VALID].extra = counts
        return counts

    gate()


regsync_gate()
