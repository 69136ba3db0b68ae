"""The ``regsync`` command: one verb per job.

Every :class:`~regsync.errors.RegsyncError` ends as one red line and exit code 2; a stack trace
means a bug, never a missing program or a bad setting.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from regsync.errors import RegsyncError
from regsync.settings import get_settings

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="regsync",
    help="Sync childcare-institution (托育机构) registrations from registrars to county health departments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_app = typer.Typer(help="Start, stop and inspect the local stack: Kafka, schema registry, PostgreSQL.")
app.add_typer(stack_app, name="stack")
schemas_app = typer.Typer(help="Register and inspect the Avro contracts on the schema registry.")
app.add_typer(schemas_app, name="schemas")

TopicPrefix = Annotated[
    str, typer.Option("--topic-prefix", help="Prefix for topic and subject names (isolates tenants/tests).")
]


def _fail(exc: RegsyncError) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _stack() -> object:
    from regsync.stack.launcher import Stack

    return Stack(get_settings().stack, report=lambda msg: console.print(f"[dim]{msg}[/]", highlight=False))


@stack_app.command("up")
def stack_up() -> None:
    """Start Kafka (KRaft), Apicurio Registry and PostgreSQL on free loopback ports (idempotent)."""
    from regsync.stack.launcher import Stack

    stack = _stack()
    assert isinstance(stack, Stack)
    try:
        endpoints = stack.up()
    except RegsyncError as exc:
        _fail(exc)
        return
    out.print(f"kafka           {endpoints.bootstrap_servers}")
    out.print(f"schema-registry {endpoints.registry_url}")
    if endpoints.database_url:
        out.print(f"postgres        {endpoints.database_url}")
    out.print(f"state           {stack.state_dir}")


@stack_app.command("fetch")
def stack_fetch() -> None:
    """Fetch Kafka and Apicurio once into the cache (``up`` does this too); nothing starts."""
    from regsync.stack.artifacts import apicurio_app, kafka_libs

    s = get_settings().stack
    try:
        kafka = kafka_libs(s.cache_dir, s.kafka_version, s.log4j_version, s.kafka_home)
        registry = apicurio_app(s.cache_dir, s.apicurio_version)
    except RegsyncError as exc:
        _fail(exc)
        return
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
    try:
        stopped = stack.down(purge=purge)
    except RegsyncError as exc:
        _fail(exc)
        return
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
def schemas_register(topic_prefix: TopicPrefix = "") -> None:
    """Register every stored contract version (oldest first) with BACKWARD compatibility; idempotent."""
    from regsync import bus, endpoints
    from regsync.topics import Topics

    try:
        services = endpoints.resolve(get_settings())
        rows = bus.register_schemas(services.registry_url, Topics(prefix=topic_prefix))
    except RegsyncError as exc:
        _fail(exc)
        return
    except Exception as exc:  # registry errors carry the subject and the registry's message
        console.print(f"[bold red]error:[/] schema registration failed: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    for subject, version, schema_id in rows:
        out.print(f"{subject:<40} v{version}  id {schema_id}", highlight=False)


@app.command()
def demo() -> None:
    """Run the whole pipeline on the embedded defaults (not yet: arrives with the pipeline)."""
    out.print(
        "regsync demo: not yet — the pipeline stages land in later issues; `regsync stack up` works now."
    )


def main() -> None:
    """Entry point that keeps RegsyncError one line long."""
    try:
        app()
    except RegsyncError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
