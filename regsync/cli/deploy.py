"""``regsync schemas`` and ``regsync db``: what a deployment registers and migrates."""

from __future__ import annotations

from typing import Annotated

import typer

from regsync.cli.app import app, out
from regsync.settings import get_settings

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


@schemas_app.command("register")
def schemas_register(topic_prefix: TopicPrefix = None) -> None:
    """Register every stored contract version (oldest first) under FULL_TRANSITIVE, also set as the registry default; idempotent."""
    from regsync import endpoints
    from regsync.kafka import bus
    from regsync.kafka.topics import Topics

    settings = get_settings()
    services = endpoints.resolve(settings, need=("registry",))
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    rows = bus.register_schemas(services.registry_url, Topics(prefix=prefix))
    for subject, version, schema_id in rows:
        out.print(f"{subject:<40} v{version}  id {schema_id}", highlight=False)
    for subject, level in bus.compatibility_levels(services.registry_url, Topics(prefix=prefix)).items():
        out.print(f"{subject:<40} compatibility {level}", highlight=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database to head (pipeline tables and filing store); idempotent."""
    from regsync import endpoints
    from regsync.jobs import migrate_database

    settings = get_settings()
    database_url = endpoints.resolve_database(settings)
    endpoints.probe_database(database_url, settings.probe_timeout)
    revisions = migrate_database(database_url)
    for name, revision in revisions.items():
        out.print(f"{name:<9} at revision {revision}", highlight=False)
