"""An authenticated schema registry (real Apicurio 3.0 with basic auth): anonymous writes are refused,
anonymous reads work, the pipeline's admin registers every contract, and a wrong password is refused.

Starts its own registry (the shared stack's is open), in a temporary state folder, and stops it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.settings import StackSettings
from regsync.stack import schema_registry
from regsync.stack.artifacts import apicurio_app
from regsync.stack.prereq import find_java
from regsync.stack.process import free_port, stop
from schemas.contracts import TOPIC_RAW, contract_for_topic, subject_for
from schemas.errors import EXIT_CONFIG
from schemas.examples import canonical_event
from schemas.registry import RegistryAuthError, RegistryError, SchemaRegistryClient, register_all

ADMIN = "regsync-admin"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, tuple[str, str]]]:
    """(ccompat URL, admin credentials) of a registry that authenticates writes."""
    settings = StackSettings()
    app = apicurio_app(settings.cache_dir, settings.apicurio_version).path
    state = tmp_path_factory.mktemp("registry-auth")
    admin = (ADMIN, secrets.token_urlsafe(24))
    record = schema_registry.start(
        state, app, find_java(settings.java_home), free_port(), settings.registry_heap, admin=admin
    )
    try:
        schema_registry.wait(record, psutil.Process(record.pid), settings.start_timeout_s)
        yield record.endpoints["url"], admin
    finally:
        stop(record)


def _raw_schema() -> str:
    return contract_for_topic(TOPIC_RAW).latest.schema_str


def test_the_credentials_file_is_private_and_not_on_the_command_line(secured) -> None:
    url, (_, password) = secured
    port = int(url.split(":")[2].split("/")[0])
    java = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if f"-Dquarkus.http.port={port}" in (p.info["cmdline"] or [])
    )
    assert password not in " ".join(java.info["cmdline"])
    config = Path(java.cwd()) / "config" / "application.properties"
    assert config.stat().st_mode & 0o077 == 0
    assert password in config.read_text(encoding="utf-8")


def test_an_anonymous_registration_is_refused(secured) -> None:
    url, _ = secured
    answer = httpx.post(
        f"{url}/subjects/anon-{secrets.token_hex(4)}/versions",
        content=json.dumps({"schema": _raw_schema()}),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    assert answer.status_code == 401, answer.text
    with SchemaRegistryClient(url, subject_prefix=f"anon{secrets.token_hex(4)}.") as anonymous:
        with pytest.raises(RegistryError) as refused:
            register_all(anonymous)
        assert refused.value.status_code == 401
        with pytest.raises(RegistryError):  # nor may anyone change the compatibility level
            anonymous.set_global_compatibility("NONE")  # type: ignore[arg-type]


def test_a_wrong_password_is_refused(secured) -> None:
    url, (user, _) = secured
    with SchemaRegistryClient(url, subject_prefix="wrong.", auth=(user, "not-the-password-at-all")) as client:
        with pytest.raises(RegistryError) as refused:
            register_all(client)
        assert refused.value.status_code == 401


def test_the_admin_registers_and_anyone_reads(secured) -> None:
    url, admin = secured
    prefix = f"t{secrets.token_hex(4)}."
    with SchemaRegistryClient(url, subject_prefix=prefix, auth=admin) as client:
        registered = register_all(client)
    assert registered
    subject = prefix + subject_for(TOPIC_RAW)
    listed = httpx.get(f"{url}/subjects")  # anonymous read: the bureaus' deserialisers need no secret
    assert listed.status_code == 200
    assert subject in listed.json()
    latest = httpx.get(f"{url}/subjects/{subject}/versions/latest")
    assert latest.status_code == 200
    assert httpx.get(f"{url}/schemas/ids/{latest.json()['id']}").status_code == 200
    # nor may anyone anonymous take a subject away or loosen its level
    assert httpx.delete(f"{url}/subjects/{subject}").status_code == 401
    assert httpx.put(f"{url}/config/{subject}", json={"compatibility": "NONE"}).status_code == 401
    assert httpx.get(f"{url}/subjects/{subject}/versions/latest").status_code == 200


def test_the_pipeline_registers_with_the_admin_and_says_what_to_set_without(secured) -> None:
    url, admin = secured
    topics = Topics(prefix=f"t{secrets.token_hex(4)}.")
    with pytest.raises(RegistryAuthError) as refused:
        bus.register_schemas(url, topics)
    assert refused.value.exit_code == EXIT_CONFIG
    assert "REGSYNC_REGISTRY_PASSWORD" in (refused.value.hint or "")
    rows = bus.register_schemas(url, topics, admin)
    assert {subject for subject, _, _ in rows} == {subject_for(t) for t in topics.all()}
    codecs = bus.load_codecs(url, topics)  # the stages only look ids up: anonymous is enough
    raw_ids = [i for s, _, i in rows if s == subject_for(topics.raw)]
    framed = codecs.raw.encode(canonical_event().to_avro())
    assert framed[0] == 0
    assert int.from_bytes(framed[1:5], "big") == raw_ids[-1]  # the latest version's registered id


def test_the_native_v3_api_is_closed_to_anonymous_writes_too(secured) -> None:
    """Apicurio's own API sits beside ccompat on the same port: the same rule must hold there."""
    url, _ = secured
    v3 = url.removesuffix("/apis/ccompat/v7") + "/apis/registry/v3"
    body = {
        "artifactId": f"forged-{secrets.token_hex(4)}",
        "artifactType": "AVRO",
        "firstVersion": {"content": {"content": _raw_schema(), "contentType": "application/json"}},
    }
    assert httpx.post(f"{v3}/groups/default/artifacts", json=body).status_code == 401
    assert httpx.get(f"{v3}/groups/default/artifacts").status_code == 200
