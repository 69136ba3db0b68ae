"""``regsync init``, ``regsync schemas`` and ``regsync db``: what a deployment registers and migrates."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from regsync.cli.app import app
from regsync.cli.output import JsonOpt, emit_json, out, step
from regsync.settings import get_settings

schemas_app = typer.Typer(help="Register, list and show the Avro contracts on the schema registry.")
app.add_typer(schemas_app, name="schemas")
db_app = typer.Typer(help="The database: the pipeline's tables and the filing store, both under Alembic.")
app.add_typer(db_app, name="db")

TopicPrefix = Annotated[
    str | None,
    typer.Option(
        "--topic-prefix",
        metavar="PREFIX",
        help="Prefix for topic and subject names (isolates tenants/tests); default REGSYNC_TOPIC_PREFIX.",
    ),
]


@schemas_app.command("register")
def schemas_register(topic_prefix: TopicPrefix = None, json_out: JsonOpt = False) -> None:
    """Register every stored contract version (oldest first) under FULL_TRANSITIVE, also set as the registry default; idempotent."""
    from regsync import endpoints
    from regsync.kafka import bus
    from regsync.kafka.topics import Topics

    settings = get_settings()
    services = endpoints.resolve(settings, need=("registry",))
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    rows = bus.register_schemas(services.registry_url, Topics(prefix=prefix), services.registry_auth)
    levels = bus.compatibility_levels(services.registry_url, Topics(prefix=prefix))
    if json_out:
        emit_json(
            {
                "registered": [{"subject": s, "version": v, "id": i} for s, v, i in rows],
                "compatibility": levels,
            }
        )
        return
    for subject, version, schema_id in rows:
        out.print(f"{subject:<40} v{version}  id {schema_id}", highlight=False)
    for subject, level in levels.items():
        out.print(f"{subject:<40} compatibility {level}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(json_out: JsonOpt = False) -> None:
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
    applied = grant_roles(database_url, settings)
    if json_out:
        roles = None
        if applied is not None:
            roles = {
                component: {
                    "role": role,
                    "created": role in set(applied.created),
                    "password_set": role in applied.passwords_set,
                }
                for component, role in applied.roles.items()
            }
        emit_json(
            {
                "database": revisions,
                "roles": roles,
                "granted_tables": None if applied is None else len(applied.tables),
            }
        )
        return
    for name, revision in revisions.items():
        out.print(f"{name:<9} at revision {revision}", highlight=False)
    if applied is not None:
        new = set(applied.created)
        for component, role in applied.roles.items():
            state = "created" if role in new else "exists"
            password = ", password set" if role in applied.passwords_set else ""
            out.print(f"role {role:<20} {component:<9} {state}{password}", highlight=False)
        out.print(f"grants    {len(applied.tables)} tables", highlight=False)


def _subject_arg(value: str) -> str:
    """A contract's subject (``registrations.raw-value``) or its topic, checked before connecting."""
    from schemas.contracts import TOPIC_CONTRACTS, subject_for

    known = {subject_for(topic): topic for topic in TOPIC_CONTRACTS}
    subject = value if value in known else subject_for(value)
    if subject not in known:
        raise typer.BadParameter(f"unknown subject {value!r}; known: {', '.join(known)} (or their topics)")
    return subject


@schemas_app.command("list")
def schemas_list(topic_prefix: TopicPrefix = None, json_out: JsonOpt = False) -> None:
    """Every contract subject as the registry holds it: versions, latest id, compatibility."""
    from regsync import endpoints
    from regsync.kafka import bus
    from regsync.kafka.topics import Topics
    from schemas.contracts import TOPIC_CONTRACTS, subject_for
    from schemas.registry import SchemaNotFoundError

    settings = get_settings()
    services = endpoints.resolve(settings, need=("registry",))
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    rows: list[dict[str, Any]] = []
    with bus.registry_client(services.registry_url, Topics(prefix=prefix)) as client:
        for topic, contract in TOPIC_CONTRACTS.items():
            subject = subject_for(topic)
            try:
                versions = client.get_versions(subject)
                latest = client.get_version(subject, "latest")
            except SchemaNotFoundError:  # not registered yet: listed, so the gap is visible
                versions, latest = [], None
            level = client.get_compatibility(subject)
            rows.append(
                {
                    "subject": client.subject(subject),
                    "contract": contract,
                    "versions": versions,
                    "latest_id": None if latest is None else latest.schema_id,
                    "compatibility": None if level is None else str(level),
                }
            )
    if json_out:
        emit_json({"subjects": rows})
        return
    for row in rows:
        shown = ",".join(f"v{v}" for v in row["versions"]) or "not registered (run `regsync init`)"
        out.print(
            f"{row['subject']:<40} {shown}  latest id {row['latest_id']}  {row['compatibility']}",
            highlight=False,
            soft_wrap=True,
        )


@schemas_app.command("show")
def schemas_show(
    subject: Annotated[
        str,
        typer.Argument(
            metavar="SUBJECT",
            help="A subject such as registrations.raw-value, or its topic (prefix added from settings).",
            callback=_subject_arg,
        ),
    ],
    version: Annotated[
        str, typer.Option(metavar="N|latest", help="Which version: a number or latest.")
    ] = "latest",
    topic_prefix: TopicPrefix = None,
    json_out: JsonOpt = False,
) -> None:
    """One registered version of a subject: its version, id and Avro schema (read from the registry)."""
    import json

    from regsync import endpoints
    from regsync.kafka import bus
    from regsync.kafka.topics import Topics

    if version != "latest" and not (version.isdigit() and int(version) > 0):
        raise typer.BadParameter(f"not a version: {version!r} (a positive number or latest)")
    settings = get_settings()
    services = endpoints.resolve(settings, need=("registry",))
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    with bus.registry_client(services.registry_url, Topics(prefix=prefix)) as client:
        found = client.get_version(subject, "latest" if version == "latest" else int(version))
    schema = json.loads(found.schema)
    if json_out:
        emit_json(
            {"subject": found.subject, "version": found.version, "id": found.schema_id, "schema": schema}
        )
        return
    out.print(f"{found.subject} v{found.version} id {found.schema_id}", highlight=False, soft_wrap=True)
    out.print_json(data=schema)


@app.command("init")
def init_cmd(json_out: JsonOpt = False) -> None:
    """First run of a new deployment: create the topics, register the contracts, migrate the database (idempotent)."""
    from regsync import jobs

    with step("init: topics, contracts, database"):
        done = jobs.prepare()
    done = {**done, "subjects": list(dict.fromkeys(done["subjects"]))}  # one per subject, not per version
    if json_out:
        emit_json(done)
        return
    out.print(f"topics    {', '.join(done['topics'])}", highlight=False, soft_wrap=True)
    out.print(f"contracts {', '.join(done['subjects'])}", highlight=False, soft_wrap=True)
    for name, revision in done["database"].items():
        out.print(f"{name:<9} at revision {revision}", highlight=False)
