"""The pipeline's verbs: ``extract``, ``gate``, ``load``, ``demo``, ``quality``, ``report``, ``export``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from regsync.cli.app import app
from regsync.cli.args import AsOf, ReportMonth, _as_of, _month_arg, _source_args
from regsync.cli.output import JsonOpt, console, emit_json, out, progress, step
from regsync.settings import get_settings

if TYPE_CHECKING:
    from rich.progress import TaskID

    from connectors.base import Batch
    from regsync.bookkeeping.state import RunCounts
    from regsync.stages.gate import GateCounts


@app.command()
def extract(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            metavar="NAME",
            help=f"Source name; repeatable. One of: {', '.join(_source_names())}.",
            callback=_source_args,
        ),
    ] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="Every configured source.")] = False,
    as_of: AsOf = None,
    batch_size: Annotated[int, typer.Option(help="Events per acknowledged batch (the commit unit).")] = 500,
    json_out: JsonOpt = False,
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
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=progress
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
    for s in summaries:  # held back by the source (e.g. a day file without its .ok marker): never silent
        for what, why in s.waiting.items():
            console.print(f"[yellow]{s.source}: waiting[/] {what}: {why}", highlight=False, soft_wrap=True)
    if json_out:
        emit_json(
            {
                "sources": [
                    {
                        "source": s.source,
                        "run_id": s.run_id,
                        "read": s.read,
                        "not_childcare": s.not_childcare,
                        "childcare": s.childcare,
                        "published": s.published,
                        "already_on_topic": s.recovered,
                        "to_dlq": s.invalid,
                        "waiting": s.waiting,
                    }
                    for s in summaries
                ]
            }
        )
        return
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
    json_out: JsonOpt = False,
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
            gate(
                until_idle=until_idle,
                instance=claimed,
                workers=1,
                slots=None,
                summary_json=summary_json,
                json_out=json_out,
            )
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
        if json_out:
            emit_json({"workers": workers, "exit_codes": [e.returncode for e in exits]})
        else:
            out.print(f"{workers} gate workers finished", highlight=False)
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=progress
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
    if json_out:
        emit_json(
            {
                "judged": counts.consumed,
                "valid": counts.valid,
                "rejected": counts.rejected,
                "transactions": counts.transactions,
                "by_rule": counts.by_rule,
            }
        )
        return
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
            "--month",
            "-m",
            metavar="YYYY-MM",
            help="The month pushed, YYYY-MM (any past month: backfill).",
            callback=_month_arg,
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
    read_processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            help="Processes that read, decode and make the rows, each over its share of the partitions "
            "(default: half the cores, 1–4; more than the partitions: the extra ones stop at once).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Load one month of registrations.valid into the filing store, exactly once (a re-run is a no-op)."""
    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages.load import LoadProgress, run_load

    settings = get_settings()
    services = endpoints.resolve(settings)
    with step(f"load {month}") as say:

        def show(at: LoadProgress) -> None:
            say(f"load {month}: {at.stored:,} records stored (the scan covers {at.span:,} offsets)")

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
            read_processes=read_processes,
            progress=show,
        )
    empty = not result.noop and result.records == 0
    # load refuses a month the gate has not caught up with unless told otherwise, so an empty month
    # loaded without --allow-unjudged is known to be empty, not merely unjudged.
    judged = not allow_unjudged
    if json_out:
        emit_json(
            {
                "month": month,
                "noop": result.noop,
                "empty": empty,
                "gate_caught_up": judged,
                "records": result.records,
                "inserted": result.inserted,
                "duplicates": result.duplicates,
                "institutions_touched": result.institutions_touched,
                "late": result.late,
                "run_id": result.run_id,
                "checksum": result.checksum,
            }
        )
        return
    if result.noop:
        out.print(f"{month}: already loaded from the same offsets — nothing to do")
        return
    if empty:
        gate_state = (
            "the gate has judged every raw record of it"
            if judged
            else "loaded with --allow-unjudged: the gate may not have judged it yet"
        )
        out.print(
            f"{month}: empty — no valid registration was pushed in this month ({gate_state})",
            highlight=False,
        )
        return
    r = result
    out.print(
        f"{month}: {r.records:,} records, {r.inserted:,} events stored, {r.duplicates:,} duplicates skipped, "
        f"{r.institutions_touched:,} institutions updated, {r.late:,} late; checksum {r.checksum[:16]}…",
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


@app.command("quality")
def quality_cmd(month: ReportMonth, json_out: JsonOpt = False) -> None:
    """Run the Great Expectations suites over a loaded month; results stored for trends, Data Docs written."""
    from regsync import jobs

    with step(f"quality {month}: Great Expectations suites"):
        outcomes = jobs.quality(month)
    docs = next((o.data_docs_path for o in outcomes if o.data_docs_path), None)
    if json_out:
        emit_json(
            {
                "month": month,
                "suites": [
                    {
                        "suite": o.suite,
                        "success": o.success,
                        "expectations": len(o.per_expectation),
                        "failed": [
                            {
                                "expectation_type": f.expectation_type,
                                "column": f.column,
                                "condition": f.condition,
                                "unexpected_count": f.unexpected_count,
                            }
                            for f in o.failed
                        ],
                        "rows": o.metrics.get("row_count", 0),
                    }
                    for o in outcomes
                ],
                "data_docs": docs,
            }
        )
        return
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
    if docs is not None:
        out.print(f"Data Docs: {docs}", highlight=False, soft_wrap=True)


@app.command("report")
def report_cmd(month: ReportMonth, json_out: JsonOpt = False) -> None:
    """Write the month's self-contained audit report (HTML, personal data masked); prints its path."""
    from regsync import jobs

    with step(f"report {month}"):
        path = jobs.report(month)
    if json_out:
        emit_json({"month": month, "path": path})
        return
    out.print(str(path), highlight=False, soft_wrap=True)


@app.command("export")
def export_cmd(month: ReportMonth, json_out: JsonOpt = False) -> None:
    """Write the month's county push packages (CSV + XLSX + manifest per county); prints one line each."""
    from regsync import jobs

    with step(f"export {month}: county packages"):
        packages = jobs.export(month)
    if json_out:
        emit_json(
            {
                "month": month,
                "packages": [
                    {
                        "county_code": p.county_code,
                        "county_name": p.county_name,
                        "rows": p.rows,
                        "late": p.late,
                        "counts_by_type": p.counts_by_type,
                        "directory": p.directory,
                        "files": p.files,
                        "sha256": p.sha256,
                    }
                    for p in packages
                ],
            }
        )
        return
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
    if not packages:
        out.print(f"{month}: nothing to export — no county has a loaded row in this month", highlight=False)
        return
    out.print(f"{month}: {len(packages)} county packages", highlight=False)


def _source_names() -> tuple[str, ...]:
    """The registrar systems ``--source`` accepts, for its help text."""
    from regsync import sources

    return sources.names()
