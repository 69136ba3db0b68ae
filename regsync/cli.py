"""The ``regsync`` command: one verb per job.

Errors are handled in one place, :func:`main`: every expected failure (a
:class:`~schemas.errors.RegsyncError`, or a client library's error that :func:`regsync.failures.classify`
recognises) ends as one red line with its hint and the exit code of its group (``docs/operations.md``
lists them); ``--debug`` adds the traceback. A traceback without ``--debug`` means a bug. Arguments are
checked before any service is contacted.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from regsync.failures import classify

if TYPE_CHECKING:
    from rich.progress import TaskID

    from connectors.base import Batch
    from regsync.bookkeeping.state import RunCounts
    from regsync.stages.dlq import DlqFilter
    from regsync.stages.gate import GateCounts
from regsync.settings import get_settings
from schemas.errors import ConfigurationError
from schemas.month import Month

console = Console(stderr=True)
out = Console()


class _Handled(TyperGroup):
    """The one place where failures become a line and an exit code (see the module docstring)."""

    def invoke(self, ctx: Any) -> Any:  # Any: the Context of the click that typer vendors
        """Run the command; an expected failure is one red line and its group's exit code."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            known = classify(exc)
            if known is None:
                raise  # a bug: keep the traceback
            if _debug:
                console.print_exception()
            console.print(f"[bold red]error:[/] {known.one_line()}", highlight=False, soft_wrap=True)
            raise typer.Exit(known.exit_code) from exc


app = typer.Typer(
    cls=_Handled,
    name="regsync",
    help="Sync childcare-institution (托育机构) registrations from registrars to county health departments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_app = typer.Typer(help="Start, stop and inspect the local stack: Kafka, schema registry, PostgreSQL.")
app.add_typer(stack_app, name="stack")
dlq_app = typer.Typer(help="Inspect and replay the dead-letter queue (registrations.rejected).")
app.add_typer(dlq_app, name="dlq")
schemas_app = typer.Typer(help="Register and inspect the Avro contracts on the schema registry.")
app.add_typer(schemas_app, name="schemas")
db_app = typer.Typer(help="The database: the pipeline's tables and the filing store, both under Alembic.")
app.add_typer(db_app, name="db")

TopicPrefix = Annotated[
    str | None,
    typer.Option(
        "--topic-prefix",
        help="Prefix for topic and subject names (isolates tenants/tests); default REGSYNC_TOPIC_PREFIX.",
    ),
]


_debug = False


@app.callback()
def _options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an expected failure too.")
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", envvar="REGSYNC_LOG_LEVEL", help="DEBUG, INFO, WARNING, ERROR or CRITICAL."
        ),
    ] = "WARNING",
    log_json: Annotated[
        bool,
        typer.Option("--log-json", envvar="REGSYNC_LOG_JSON", help="Log one JSON object per line (stderr)."),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="REGSYNC_METRICS_PORT",
            help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics while the command runs (gate --forever).",
        ),
    ] = None,
    metrics_textfile_dir: Annotated[
        Path | None,
        typer.Option(
            "--metrics-textfile-dir",
            envvar="REGSYNC_METRICS_TEXTFILE_DIR",
            help="At exit, write regsync_<command>.prom here (node_exporter's textfile collector).",
        ),
    ] = None,
) -> None:
    """Sync childcare-institution (托育机构) registrations from registrars to county health departments."""
    global _debug
    _debug = debug
    from regsync import logs, metrics

    try:
        logs.configure(log_level, json_lines=log_json)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from exc
    if metrics_port is not None:
        metrics.serve(metrics_port)
    if metrics_textfile_dir is not None and ctx.invoked_subcommand:
        job = ctx.invoked_subcommand
        # Runs on success and on failure alike (a failed extract is what the alerts count).
        ctx.call_on_close(lambda: metrics.write_textfile(metrics_textfile_dir, job))


def _month_arg(value: str | None) -> str | None:
    """Validate ``--month`` before anything connects (``2026-13`` fails here, in one line)."""
    if value is None:
        return None
    try:
        return str(Month.parse(value))
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _source_args(values: list[str] | None) -> list[str] | None:
    from regsync import sources

    for name in values or []:
        if name not in sources.FACTORIES:
            raise typer.BadParameter(f"unknown source {name!r}; known: {', '.join(sources.FACTORIES)}")
    return values


def _stack() -> object:
    from regsync.stack.launcher import Stack

    return Stack(get_settings().stack, report=lambda msg: console.print(f"[dim]{msg}[/]", highlight=False))


@stack_app.command("up")
def stack_up(
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers",
            min=1,
            max=5,
            help="Kafka nodes (3: topics with replication 3 and min ISR 2); default REGSYNC_STACK__BROKERS or 1.",
        ),
    ] = None,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="SASL_SSL + SCRAM for clients, mutual TLS between nodes, ACLs per principal "
            "(default REGSYNC_STACK__SECURE; a state folder once secure stays secure).",
        ),
    ] = False,
) -> None:
    """Start Kafka (KRaft), Apicurio Registry and PostgreSQL on free loopback ports (idempotent)."""
    from regsync.stack.launcher import Stack

    stack = _stack()
    assert isinstance(stack, Stack)
    if brokers is not None:
        stack.settings = stack.settings.model_copy(update={"brokers": brokers})
    if secure:
        stack.settings = stack.settings.model_copy(update={"secure": True})
    endpoints = stack.up()
    out.print(f"kafka           {endpoints.bootstrap_servers}")
    out.print(f"schema-registry {endpoints.registry_url}")
    if endpoints.database_url:
        out.print(f"postgres        {endpoints.database_url}")
    out.print(f"state           {stack.state_dir}")
    if endpoints.kafka_secrets_dir:
        # The passwords stay in the file: `set -a; . client.env; set +a` logs each component in.
        out.print(f"kafka clients   {endpoints.kafka_secrets_dir}/client.env (SASL_SSL, one principal each)")


@stack_app.command("fetch")
def stack_fetch() -> None:
    """Fetch Kafka and Apicurio once into the cache (``up`` does this too); nothing starts."""
    from regsync.stack.artifacts import apicurio_app, kafka_libs

    s = get_settings().stack
    kafka = kafka_libs(s.cache_dir, s.kafka_version, s.log4j_version, s.kafka_home)
    registry = apicurio_app(s.cache_dir, s.apicurio_version)
    for name, fetched in (("kafka", kafka), ("schema-registry", registry)):
        how = f"fetched in {fetched.fetch_seconds:.1f}s" if fetched.fetch_seconds else "cached"
        out.print(f"{name:<16} {fetched.path} ({how})", highlight=False, soft_wrap=True)


@stack_app.command("down")
def stack_down(
    purge: Annotated[bool, typer.Option(help="Also delete the services' data and logs.")] = False,
) -> None:
    """Stop exactly the processes ``stack up`` started."""
    from regsync.stack.launcher import Stack

    stack = _stack()
    assert isinstance(stack, Stack)
    stopped = stack.down(purge=purge)
    out.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Show each service: running, answering, endpoints, memory, log. Exit 1 if any is not ready."""
    from regsync.stack.launcher import Stack

    stack = _stack()
    assert isinstance(stack, Stack)
    healthy = True
    for st in stack.status():
        state = "[green]ready[/]" if st.ready else ("[yellow]running[/]" if st.running else "[red]down[/]")
        healthy = healthy and st.ready
        rss = f"  RSS {st.rss_mb:.0f} MiB" if st.rss_mb is not None else ""
        pid = f"  pid {st.pid}" if st.running else ""
        out.print(f"[bold]{st.name:<16}[/] {state}{pid}{rss}", highlight=False)
        for key, value in st.endpoints.items():
            out.print(f"  {key:<10} {value}", highlight=False, soft_wrap=True)
        if st.log:
            out.print(f"  {'log':<10} {st.log}", highlight=False, soft_wrap=True)
    if not healthy:
        raise typer.Exit(1)


@schemas_app.command("register")
def schemas_register(topic_prefix: TopicPrefix = None) -> None:
    """Register every stored contract version (oldest first) under FULL_TRANSITIVE, also set as the registry default; idempotent."""
    from regsync import endpoints
    from regsync.kafka import bus
    from regsync.kafka.topics import Topics

    settings = get_settings()
    services = endpoints.resolve(settings, need=("registry",))
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    rows = bus.register_schemas(services.registry_url, Topics(prefix=prefix), services.registry_auth)
    for subject, version, schema_id in rows:
        out.print(f"{subject:<40} v{version}  id {schema_id}", highlight=False)
    for subject, level in bus.compatibility_levels(services.registry_url, Topics(prefix=prefix)).items():
        out.print(f"{subject:<40} compatibility {level}", highlight=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to head as its owner (pipeline, filing store, portal); grant the roles.

    With REGSYNC_DB__ROLES=true the component roles (pipeline, portal, reader) are created if
    missing, given the passwords set in REGSYNC_DB__*_PASSWORD, and granted exactly their tables.
    Idempotent; run it again after every upgrade.
    """
    from portal.cli import upgrade_database as upgrade_portal
    from regsync import endpoints
    from regsync.jobs import grant_roles, migrate_database

    settings = get_settings()
    database_url = endpoints.resolve_database(settings)
    endpoints.probe_database(database_url, settings.probe_timeout)
    revisions = migrate_database(database_url)
    revisions["portal"] = upgrade_portal(database_url)
    for name, revision in revisions.items():
        out.print(f"{name:<9} at revision {revision}", highlight=False)
    applied = grant_roles(database_url, settings)
    if applied is not None:
        new = set(applied.created)
        for component, role in applied.roles.items():
            state = "created" if role in new else "exists"
            password = ", password set" if role in applied.passwords_set else ""
            out.print(f"role {role:<20} {component:<9} {state}{password}", highlight=False)
        out.print(f"grants    {len(applied.tables)} tables", highlight=False)


def _as_of(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(get_settings().timezone))


def _as_of_arg(value: str | None) -> str | None:
    if value:
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise typer.BadParameter(
                f"not an ISO 8601 instant: {value!r} (e.g. 2026-03-31T20:00+08:00)"
            ) from exc
    return value


AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="The pipeline clock: extraction time and Kafka timestamp (ISO 8601; default now). "
        "Replaying months uses past instants.",
        callback=_as_of_arg,
    ),
]


@app.command()
def extract(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Source name; repeatable.", callback=_source_args),
    ] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="Every configured source.")] = False,
    as_of: AsOf = None,
    batch_size: Annotated[int, typer.Option(help="Events per acknowledged batch (the commit unit).")] = 500,
) -> None:
    """Pull new registrations from registrar systems into registrations.raw (cursor after the broker's ack)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from regsync import endpoints, sources
    from regsync.kafka.topics import ensure_topics, topics_from
    from regsync.stages.extract import run_extract

    settings = get_settings()
    names = list(sources.FACTORIES) if all_sources else list(source or [])
    if not names:
        console.print("[bold red]error:[/] name a --source or use --all", highlight=False)
        raise typer.Exit(2)
    services = endpoints.resolve(settings)
    topics = topics_from(settings)
    ensure_topics(services.bootstrap_servers, topics)
    clock = _as_of(as_of)
    summaries = []
    for name in names:
        connector = sources.build(name, settings)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task(f"{name}: starting", total=None)

            def show(batch: Batch, counts: RunCounts, _task: TaskID = task, _name: str = name) -> None:
                bar.update(
                    _task, description=f"{_name}: read {counts.read:,}  published {counts.published:,}"
                )

            summaries.append(
                run_extract(
                    connector,
                    bootstrap=services.bootstrap_servers,
                    registry_url=services.registry_url,
                    database_url=services.database_url,
                    topics=topics,
                    as_of=clock,
                    batch_size=batch_size,
                    progress=show,
                )
            )
    table = Table("source", "read", "not childcare", "childcare", "published", "already on topic", "to DLQ")
    for s in summaries:
        table.add_row(
            s.source,
            f"{s.read:,}",
            f"{s.not_childcare:,}",
            f"{s.childcare:,}",
            f"{s.published:,}",
            f"{s.recovered:,}",
            f"{s.invalid:,}",
        )
    out.print(table)
    for s in summaries:  # held back by the source (e.g. a day file without its .ok marker): never silent
        for what, why in s.waiting.items():
            console.print(f"[yellow]{s.source}: waiting[/] {what}: {why}", highlight=False, soft_wrap=True)


@app.command()
def gate(
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle/--forever", help="Stop when caught up (Airflow) or run continuously."),
    ] = True,
    instance: Annotated[int, typer.Option(help="Gate instance number (its transactional id).")] = 0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Run N worker processes in one consumer group (instances --instance … --instance+N-1).",
        ),
    ] = 1,
    slots: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Claim the lowest free instance below SLOTS (a PostgreSQL advisory lock held while the "
            "gate runs) instead of --instance: for replicas that cannot be told their index (compose).",
        ),
    ] = None,
    summary_json: Annotated[
        Path | None,
        typer.Option(
            hidden=True, help="Write this run's counts here as JSON (gate workers to their parent)."
        ),
    ] = None,
) -> None:
    """Judge raw registrations into registrations.valid or registrations.rejected, in Kafka transactions."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from regsync import endpoints
    from regsync.kafka.topics import ensure_topics, topics_from
    from regsync.stages.gate import gate_config, gate_group_id, run_gate

    settings = get_settings()
    services = endpoints.resolve(settings)
    topics = topics_from(settings)
    ensure_topics(services.bootstrap_servers, topics)
    if slots is not None:
        if workers > 1:
            raise typer.BadParameter("--slots runs one worker per replica; leave --workers at 1")
        from regsync.stages.gate_workers import claim_instance

        with claim_instance(services.database_url, gate_group_id(topics), slots) as claimed:
            console.print(f"gate: claimed instance {claimed} of {slots}", highlight=False)
            gate(until_idle=until_idle, instance=claimed, workers=1, slots=None, summary_json=summary_json)
        return
    if workers > 1:
        from regsync.stages.gate_workers import run_gate_workers

        exits = run_gate_workers(workers, until_idle=until_idle, first_instance=instance)
        failed = [e for e in exits if e.returncode != 0]
        for e in failed:
            console.print(
                f"[bold red]error:[/] gate worker {e.instance} exited with {e.returncode}", highlight=False
            )
        if failed:
            raise typer.Exit(max(abs(e.returncode) for e in failed))
        out.print(f"{workers} gate workers finished", highlight=False)
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("gate: waiting for records", total=None)

        def show(counts: GateCounts) -> None:
            bar.update(
                task,
                description=f"gate: {counts.consumed:,} judged, {counts.valid:,} valid, {counts.rejected:,} rejected",
            )

        counts = run_gate(
            bootstrap=services.bootstrap_servers,
            registry_url=services.registry_url,
            database_url=services.database_url,
            topics=topics,
            config=gate_config(settings),
            instance=instance,
            until_idle=until_idle,
            progress=show,
        )
    if summary_json is not None:
        summary_json.write_text(json.dumps(dataclasses.asdict(counts)), encoding="utf-8")
    out.print(f"judged {counts.consumed:,}: valid {counts.valid:,} + rejected {counts.rejected:,}")
    if counts.by_rule:
        table = Table("rule", "records")
        for rule_id, n in sorted(counts.by_rule.items(), key=lambda kv: -kv[1]):
            table.add_row(rule_id, f"{n:,}")
        out.print(table)


@app.command()
def load(
    month: Annotated[
        str,
        typer.Option(
            "--month", "-m", help="The month pushed, YYYY-MM (any past month: backfill).", callback=_month_arg
        ),
    ],
    as_of: AsOf = None,
    allow_open_month: Annotated[
        bool, typer.Option(help="Load a month that is not over yet (later pushes then need --replace).")
    ] = False,
    allow_unjudged: Annotated[
        bool,
        typer.Option(help="Load although the gate has not judged every raw record of the month yet."),
    ] = False,
    allow_gap: Annotated[
        bool,
        typer.Option(help="Load although an older month with records on the valid topic is not loaded."),
    ] = False,
    replace: Annotated[bool, typer.Option(help="Reload a month whose offset ranges changed.")] = False,
) -> None:
    """Load one month of registrations.valid into the filing store, exactly once (a re-run is a no-op)."""
    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages.load import run_load

    settings = get_settings()
    services = endpoints.resolve(settings)
    result = run_load(
        bootstrap=services.bootstrap_servers,
        registry_url=services.registry_url,
        database_url=services.database_url,
        topics=topics_from(settings),
        month=month,
        tz=settings.timezone,
        as_of=_as_of(as_of),
        allow_open_month=allow_open_month,
        allow_unjudged=allow_unjudged,
        allow_gap=allow_gap,
        replace=replace,
    )
    if result.noop:
        out.print(f"{month}: already loaded from the same offsets — nothing to do")
        return
    r = result
    out.print(
        f"{month}: {r.records:,} records, {r.inserted:,} events stored, {r.duplicates:,} duplicates skipped, "
        f"{r.institutions_touched:,} institutions updated, {r.late:,} late; checksum {r.checksum[:16]}…",
        highlight=False,
    )


@app.command("trace")
def trace_cmd(uscc: Annotated[str, typer.Argument(help="The institution's 统一社会信用代码.")]) -> None:
    """One institution's way through the system: source, extraction, raw, gate, load, store, package."""
    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages.trace import trace

    settings = get_settings()
    services = endpoints.resolve(settings)
    found = trace(
        bootstrap=services.bootstrap_servers,
        registry_url=services.registry_url,
        database_url=services.database_url,
        topics=topics_from(settings),
        uscc=uscc,
    )
    if not found.hops:
        console.print(f"[yellow]nothing found for {found.uscc}[/]", highlight=False)
        raise typer.Exit(1)
    table = Table("stage", "where", "at", "what", "event id")
    for hop in found.hops:
        table.add_row(hop.stage, hop.where, hop.at, hop.what, (hop.event_id or "")[:8])
    out.print(table)
    if found.store_row:
        row = found.store_row
        out.print(
            f"store: {row.get('name')} — {row.get('status')}, county {row.get('county_code')}, "
            f"registrars {row.get('registrars')}, legal rep {row.get('legal_rep_name')} {row.get('legal_rep_id_masked')}",
            highlight=False,
        )


RuleOpt = Annotated[str | None, typer.Option("--rule", help="Only records violating this rule id.")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="Only records from this source.")]
UsccOpt = Annotated[str | None, typer.Option("--uscc", help="Only this institution.")]
MonthOpt = Annotated[
    str | None,
    typer.Option("--month", help="Only records pushed in this month (YYYY-MM).", callback=_month_arg),
]


def _dlq_filter(rule: str | None, source: str | None, uscc: str | None, month: str | None) -> DlqFilter:
    from regsync.stages.dlq import DlqFilter

    return DlqFilter(rule_id=rule, source=source, uscc=uscc, month=month)


@dlq_app.command("list")
def dlq_list(
    rule: RuleOpt = None,
    source: SourceOpt = None,
    uscc: UsccOpt = None,
    month: MonthOpt = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
) -> None:
    """List rejected records (masked) with their rules; counts per rule at the end."""
    from collections import Counter

    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages import dlq

    settings = get_settings()
    services = endpoints.resolve(settings)
    found = list(
        dlq.entries(
            services.bootstrap_servers,
            services.registry_url,
            topics_from(settings),
            _dlq_filter(rule, source, uscc, month),
            settings.timezone,
        )
    )
    table = Table("position", "pushed at", "source", "USCC", "name", "rules", "reason", "replayable")
    for entry in found[:limit]:
        row = entry.summary()
        table.add_row(
            *(
                str(row[k])
                for k in ("position", "pushed_at", "source", "uscc", "name", "rules", "reason", "replayable")
            )
        )
    out.print(table)
    per_rule = Counter(r for e in found for r in e.rule_ids)
    out.print(f"{len(found):,} rejected records; " + ", ".join(f"{k} {v}" for k, v in per_rule.most_common()))


@dlq_app.command("show")
def dlq_show(
    position: Annotated[str, typer.Argument(help="partition:offset as printed by `dlq list`.")],
) -> None:
    """One rejected record in full (personal data masked): violations, error context, the event."""
    import json

    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages import dlq
    from schemas.masking import mask_text

    settings = get_settings()
    services = endpoints.resolve(settings)
    for entry in dlq.entries(
        services.bootstrap_servers,
        services.registry_url,
        topics_from(settings),
        _dlq_filter(None, None, None, None),
        settings.timezone,
    ):
        if entry.position == position:
            body = entry.record.to_avro()
            out.print(mask_text(json.dumps(body, ensure_ascii=False, indent=2, default=str)), highlight=False)
            return
    console.print(f"[bold red]error:[/] no rejected record at {position}", highlight=False)
    raise typer.Exit(1)


@dlq_app.command("replay")
def dlq_replay(
    rule: RuleOpt = None,
    source: SourceOpt = None,
    uscc: UsccOpt = None,
    month: MonthOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and record, send nothing.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
    who: Annotated[
        str | None, typer.Option(help="Operator name for the audit trail (default: OS user).")
    ] = None,
    as_of: AsOf = None,
) -> None:
    """Re-submit rejected events to the gate; every replay (dry runs too) is recorded for auditors."""
    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages import dlq

    settings = get_settings()
    services = endpoints.resolve(settings)
    result = dlq.replay(
        bootstrap=services.bootstrap_servers,
        registry_url=services.registry_url,
        database_url=services.database_url,
        topics=topics_from(settings),
        flt=_dlq_filter(rule, source, uscc, month),
        as_of=_as_of(as_of),
        dry_run=dry_run,
        who=who,
        reason=reason,
        tz=settings.timezone,
    )
    verb = "would replay" if dry_run else "replayed"
    out.print(
        f"{result['replay_id']}: matched {result['matched']}, {verb} {result['replayable']}, "
        f"not replayable {len(result['not_replayable'])}",
        highlight=False,
    )


@app.command()
def demo(
    months: Annotated[int, typer.Option(help="How many months to replay (from 2026-01).")] = 4,
    per_month: Annotated[int, typer.Option(help="New institutions per month in the simulated world.")] = 60,
    keep_stack: Annotated[bool, typer.Option(help="Leave the demo stack running afterwards.")] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then serve the health departments' portal on 127.0.0.1 with demo accounts, until Ctrl-C.",
        ),
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The portal's port with --serve.")] = 8000,
) -> None:
    """Run the whole pipeline end to end on simulated registrars: extract, gate, load, check, report."""
    from regsync.demo import run_demo

    if not 1 <= months <= 12:
        console.print("[bold red]error:[/] --months must be 1…12", highlight=False)
        raise typer.Exit(2)
    month_names = tuple(f"2026-{m:02d}" for m in range(1, months + 1))
    if serve:
        from portal.demo import demo_and_serve

        demo_and_serve(
            months=month_names,
            per_month=per_month,
            port=port,
            say=lambda m: console.print(m, highlight=False, soft_wrap=True),
        )
        return
    s = run_demo(
        months=month_names,
        per_month=per_month,
        keep_stack=keep_stack,
        say=lambda m: console.print(f"[dim]{m}[/]", highlight=False),
    )
    table = Table("source", "published to raw", "not childcare (filtered)", "connector DLQ")
    for name in s.extracted:
        table.add_row(
            name, f"{s.extracted[name]:,}", f"{s.not_childcare[name]:,}", f"{s.connector_dlq[name]:,}"
        )
    out.print(table)
    total = sum(s.extracted.values())
    balanced = "✓" if s.judged == total and s.valid + s.rejected == s.judged else "✗"
    out.print(
        f"reconciliation: published {total:,} = judged {s.judged:,} = valid {s.valid:,} + rejected "
        f"{s.rejected:,}  {balanced}",
        highlight=False,
    )
    months_table = Table(
        "month", "events loaded", "late", "GX suites passed", "county packages", "audit report"
    )
    for month in s.months:
        months_table.add_row(
            month,
            f"{s.loaded.get(month, 0):,}",
            f"{s.late.get(month, 0):,}",
            s.suites_passed.get(month, "-"),
            str(s.packages.get(month, 0)),
            s.reports[month].name if month in s.reports else "-",
        )
    out.print(months_table)
    out.print(
        "GX findings are expected here: the simulators inject bad check digits and late pushes, and "
        "the suites are what tells auditors so (each month's report counts them and links the Data Docs).",
        highlight=False,
    )
    out.print(f"outputs: {s.output_dir}  (packages/, reports/, quality/ Data Docs)", highlight=False)
    out.print(f"demo finished in {s.seconds:.0f} s; the stack is {'running' if keep_stack else 'stopped'}.")


ReportMonth = Annotated[
    str, typer.Option("--month", "-m", help="The month pushed, YYYY-MM (load it first).", callback=_month_arg)
]


@app.command("quality")
def quality_cmd(month: ReportMonth) -> None:
    """Run the Great Expectations suites over a loaded month; results stored for trends, Data Docs written."""
    from regsync import jobs

    outcomes = jobs.quality(month)
    for outcome in outcomes:
        verdict = "[green]passed[/]" if outcome.success else "[red]failed[/]"
        total = len(outcome.per_expectation)
        out.print(
            f"[bold]{outcome.suite:<11}[/] {verdict}  {total - len(outcome.failed)}/{total} expectations, "
            f"{outcome.metrics.get('row_count', 0):,} rows",
            highlight=False,
        )
        for failed in outcome.failed:
            where = ", ".join(x for x in (failed.column, failed.condition) if x)
            unexpected = (
                "" if failed.unexpected_count is None else f": {failed.unexpected_count:,} unexpected"
            )
            out.print(
                f"  ✗ {failed.expectation_type}{f' ({where})' if where else ''}{unexpected}",
                highlight=False,
                soft_wrap=True,
            )
    docs = next((o.data_docs_path for o in outcomes if o.data_docs_path), None)
    if docs is not None:
        out.print(f"Data Docs: {docs}", highlight=False, soft_wrap=True)


@app.command("report")
def report_cmd(month: ReportMonth) -> None:
    """Write the month's self-contained audit report (HTML, personal data masked); prints its path."""
    from regsync import jobs

    path = jobs.report(month)
    out.print(str(path), highlight=False, soft_wrap=True)


@app.command("export")
def export_cmd(month: ReportMonth) -> None:
    """Write the month's county push packages (CSV + XLSX + manifest per county); prints one line each."""
    from regsync import jobs

    packages = jobs.export(month)
    table = Table("county", "name", "rows", "late", "folder")
    for package in packages:
        table.add_row(
            package.county_code,
            package.county_name,
            f"{package.rows:,}",
            f"{package.late:,}",
            str(package.directory),
        )
    out.print(table)
    out.print(f"{month}: {len(packages)} county packages", highlight=False)


def _add_portal_commands() -> None:
    """``regsync users|tokens|serve``: the web service's own commands, on the one ``regsync`` command.

    The portal sits above ``regsync`` (it imports the pipeline, never the reverse); this is the one
    deliberate exception, declared in pyproject's import-linter contracts: the command line is where
    every interface meets.
    """
    from portal.cli import register

    register(app)


_add_portal_commands()


def main() -> None:
    """Console entry point (errors are handled by :class:`_Handled`, also under Typer's test runner)."""
    app()
