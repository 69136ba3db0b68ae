"""``regsync dlq`` and ``regsync trace``: what was rejected, and where one institution went."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from regsync.cli.app import app
from regsync.cli.args import AsOf, _as_of, _month_arg, _uscc_arg
from regsync.cli.output import CsvOpt, JsonOpt, console, emit_csv, emit_json, out, step
from regsync.settings import get_settings

if TYPE_CHECKING:
    from regsync.stages.dlq import DlqFilter

dlq_app = typer.Typer(help="Inspect and replay the dead-letter queue (registrations.rejected).")
app.add_typer(dlq_app, name="dlq")


@app.command("trace")
def trace_cmd(
    uscc: Annotated[
        str,
        typer.Argument(
            metavar="USCC", help="The institution's 统一社会信用代码 (18 characters).", callback=_uscc_arg
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """One institution's way through the system: source, extraction, raw, gate, load, store, package."""
    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages.trace import trace

    settings = get_settings()
    services = endpoints.resolve(settings)
    with step(f"trace {uscc}"):
        found = trace(
            bootstrap=services.bootstrap_servers,
            registry_url=services.registry_url,
            database_url=services.database_url,
            topics=topics_from(settings),
            uscc=uscc,
        )
    if json_out:
        emit_json(
            {
                "uscc": found.uscc,
                "found": bool(found.hops),
                "hops": [
                    {"stage": h.stage, "where": h.where, "at": h.at, "what": h.what, "event_id": h.event_id}
                    for h in found.hops
                ],
                "store": found.store_row,
            }
        )
        if not found.hops:
            raise typer.Exit(1)
        return
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


RuleOpt = Annotated[
    str | None, typer.Option("--rule", metavar="RULE", help="Only records violating this rule id.")
]
SourceOpt = Annotated[
    str | None, typer.Option("--source", metavar="NAME", help="Only records from this source.")
]
UsccOpt = Annotated[
    str | None, typer.Option("--uscc", metavar="USCC", help="Only this institution.", callback=_uscc_arg)
]
MonthOpt = Annotated[
    str | None,
    typer.Option(
        "--month", metavar="YYYY-MM", help="Only records pushed in this month (YYYY-MM).", callback=_month_arg
    ),
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
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many rows.")] = 50,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
) -> None:
    """List rejected records (masked) with their rules; counts per rule at the end."""
    from collections import Counter

    from regsync import endpoints
    from regsync.kafka.topics import topics_from
    from regsync.stages import dlq

    settings = get_settings()
    services = endpoints.resolve(settings)
    if json_out and csv_out:
        raise typer.BadParameter("--json and --csv exclude each other", param_hint="--json")
    with step("dlq list: reading registrations.rejected"):
        found = list(
            dlq.entries(
                services.bootstrap_servers,
                services.registry_url,
                topics_from(settings),
                _dlq_filter(rule, source, uscc, month),
                settings.timezone,
            )
        )
    per_rule = Counter(r for e in found for r in e.rule_ids)
    columns = ("position", "pushed_at", "source", "uscc", "name", "rules", "reason", "replayable")
    if json_out:
        emit_json(
            {
                "total": len(found),
                "shown": min(limit, len(found)),
                "per_rule": dict(per_rule.most_common()),
                "entries": [e.summary() for e in found[:limit]],
            }
        )
        return
    if csv_out:
        emit_csv(columns, ([e.summary()[k] for k in columns] for e in found[:limit]))
        return
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
    out.print(f"{len(found):,} rejected records; " + ", ".join(f"{k} {v}" for k, v in per_rule.most_common()))


@dlq_app.command("show")
def dlq_show(
    position: Annotated[
        str, typer.Argument(metavar="POSITION", help="partition:offset as printed by 'dlq list'.")
    ],
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
    reason: Annotated[str | None, typer.Option(metavar="TEXT", help="Why (kept in the audit trail).")] = None,
    who: Annotated[
        str | None, typer.Option(metavar="NAME", help="Operator name for the audit trail (default: OS user).")
    ] = None,
    as_of: AsOf = None,
    json_out: JsonOpt = False,
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
    if json_out:
        emit_json(result)
        return
    verb = "would replay" if dry_run else "replayed"
    out.print(
        f"{result['replay_id']}: matched {result['matched']}, {verb} {result['replayable']}, "
        f"not replayable {len(result['not_replayable'])}",
        highlight=False,
    )
