"""``regsync stack``: start, stop and inspect the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regsync.cli.app import app
from regsync.cli.output import JsonOpt, console, emit_json, out
from regsync.settings import get_settings

stack_app = typer.Typer(help="Start, stop and inspect the local stack: Kafka, schema registry, PostgreSQL.")
app.add_typer(stack_app, name="stack")


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
    """Fetch Kafka and Apicurio once into the cache ('stack up' does this too); nothing starts."""
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
    """Stop exactly the processes 'stack up' started."""
    from regsync.stack.launcher import Stack

    stack = _stack()
    assert isinstance(stack, Stack)
    stopped = stack.down(purge=purge)
    out.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("status")
def stack_status(json_out: JsonOpt = False) -> None:
    """Show each service: running, answering, endpoints, memory, log. Exit 1 if any is not ready."""
    from regsync.stack.launcher import Stack

    stack = _stack()
    assert isinstance(stack, Stack)
    statuses = stack.status()
    if json_out:
        emit_json(
            {
                "ready": all(st.ready for st in statuses),
                "state": stack.state_dir,
                "services": [
                    {
                        "name": st.name,
                        "ready": st.ready,
                        "running": st.running,
                        "pid": st.pid,
                        "rss_mb": st.rss_mb,
                        "endpoints": st.endpoints,
                        "log": st.log,
                    }
                    for st in statuses
                ],
            }
        )
        if not all(st.ready for st in statuses):
            raise typer.Exit(1)
        return
    healthy = True
    for st in statuses:
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


@stack_app.command("secrets")
def stack_secrets(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the brokers (a volume only they and this step mount).")
    ],
    voters: Annotated[
        str, typer.Option(help="The KRaft voters, id@host:port,… (one node: 1@kafka:9093).")
    ] = "1@kafka:9093",
    ca_out: Annotated[
        Path | None, typer.Option("--ca-out", help="Folder for the clients: the CA certificate only.")
    ] = None,
    host_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The host's port of the first node's HOST listener.")
    ] = 9094,
    hosts: Annotated[
        list[str] | None,
        typer.Option("--host", help="Another name for the node certificate (repeatable; voters are added)."),
    ] = None,
    postgres_out: Annotated[
        Path | None,
        typer.Option("--postgres-out", help="Folder for PostgreSQL's server certificate and key (same CA)."),
    ] = None,
) -> None:
    """Compose's Kafka security: CA and node certificate (made once), each node's server.properties.

    The SCRAM passwords come from KAFKA_<PRINCIPAL>_PASSWORD (docker/.env); nothing is printed
    but paths and names.
    """
    import os

    from regsync.stack import compose_kafka

    done = compose_kafka.render(
        out_dir,
        voters,
        os.environ,
        host_port=host_port,
        ca_out=ca_out,
        hosts=tuple(hosts or ()),
        postgres_out=postgres_out,
    )
    how = "generated" if done.generated else "kept (never overwritten)"
    out.print(f"certificates    {how}: CA and node ({', '.join(done.dns_names)})", highlight=False)
    for path in done.properties:
        out.print(f"broker config   {path}", highlight=False, soft_wrap=True)
    if ca_out is not None:
        out.print(f"clients' CA     {ca_out / 'ca.pem'}", highlight=False, soft_wrap=True)
    if postgres_out is not None:
        out.print(f"postgres TLS    {postgres_out / 'server.crt'}", highlight=False, soft_wrap=True)


@stack_app.command("acls")
def stack_acls(json_out: JsonOpt = False) -> None:
    """As the Kafka admin: create the pipeline's topics if missing, then apply the ACL table.

    For a deployment whose components log in as themselves (compose's kafka-init); idempotent.
    """
    from regsync import endpoints
    from regsync.kafka.security import admin_client
    from regsync.kafka.topics import ensure_topics, topics_from
    from regsync.stack import kafka_acls

    settings = get_settings()
    services = endpoints.resolve(settings, need=("kafka",))
    topics = topics_from(settings)
    created = ensure_topics(services.bootstrap_servers, topics)
    admin = admin_client(services.bootstrap_servers, request_timeout_ms=30_000)
    try:
        count = kafka_acls.apply(admin, kafka_acls.grants(settings.topic_prefix))
    finally:
        admin.close()
    if json_out:
        emit_json({"topics_created": created, "acls": count})
        return
    out.print(f"topics created  {', '.join(created) if created else 'none (all exist)'}", highlight=False)
    out.print(f"ACLs applied    {count} (docs/operations.md, Kafka security)", highlight=False)
