"""A small client for the Confluent-compatible schema-registry REST API, on httpx.

Written against Confluent's API and checked against Apicurio Registry 3.0.x's ``/apis/ccompat/v7``,
which differs in ways this client absorbs (observed, not assumed):

* ``PUT /config/{subject}`` answers ``{"compatibilityLevel": ...}`` (Confluent: ``{"compatibility": ...}``);
  both keys are read.
* ``GET /config/{subject}`` answers 404 for a subject that does not exist yet (instead of the global
  level), and ``defaultToGlobal`` is ignored; :meth:`SchemaRegistryClient.get_compatibility` returns
  ``None`` then. Setting the level of a subject before its first version works. For a subject that
  exists but has no level of its own it answers ``NONE`` although the global level is enforced on it, so
  :func:`register_all` sets every subject's level explicitly as well as the global one.
* ``PUT /config`` / ``GET /config`` (the global default) accept and report ``FULL_TRANSITIVE``, and
  Apicurio enforces it transitively (checked by ``tests/integration/test_registry_codec.py``).
* ``POST /compatibility/subjects/{s}/versions/latest`` answers ``{"is_compatible": true}`` for an unknown
  subject (Confluent: 404); the client answers ``True`` in both cases. ``verbose=true`` adds no messages.
* Schemas are matched by **exact text**: the same schema with other whitespace becomes a new version with
  a new id, and ``POST /subjects/{s}`` (lookup) misses it. So always send
  :attr:`schemas.contracts.ContractVersion.schema_str`, never a re-serialisation.
* Ids are content ids: identical text under two subjects gets one id (as in Confluent).
* Error bodies are ``{"message": ..., "error_code": ...}`` — but a malformed request gets a plain-text
  400, and an unknown compatibility level a 500 (so levels are an enum here, never free text).

Only connection errors and 5xx are retried (tenacity, exponential backoff). Production never
auto-registers: :func:`register_all` is run by an explicit ``regsync schemas register`` command, and
clients call :func:`resolve_ids` / :func:`codec_for_topic`, which only look schemas up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from schemas.codec import AvroCodec
from schemas.contracts import TOPIC_CONTRACTS, ContractVersion, get_contract, subject_for
from schemas.errors import EXIT_UNAVAILABLE, ConfigurationError, FatalError, RegsyncError, RetriableError

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"


class CompatibilityLevel(StrEnum):
    """Subject compatibility levels of the Confluent API."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


class RegistryError(RegsyncError):
    """The registry refused a request; carries the HTTP status and the registry's error code/message."""

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        status_code: int | None = None,
        error_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.subject = subject
        self.status_code = status_code
        self.error_code = error_code


class SchemaNotFoundError(RegistryError, ConfigurationError, LookupError):
    """Subject, version or schema id unknown (404). A ``LookupError``, as :class:`SchemaSource` expects."""

    default_hint = "register the contracts first: `regsync schemas register`"


class RegistryAuthError(RegistryError, ConfigurationError):
    """The registry wants credentials it was not given, or refused the ones it was (401/403)."""

    default_hint = (
        "registering needs the registry's admin: set REGSYNC_REGISTRY_USERNAME and REGSYNC_REGISTRY_PASSWORD"
    )


class IncompatibleSchemaError(RegistryError, FatalError):
    """The registry refused a new version because it breaks the subject's compatibility level (409)."""


class InvalidSchemaError(RegistryError, FatalError):
    """The registry could not parse the schema (422)."""


class RegistryUnavailableError(RegistryError, RetriableError):
    """Connection failures or 5xx answers persisted through every retry; transient, retry later."""

    exit_code = EXIT_UNAVAILABLE
    default_hint = "is the schema registry running? `regsync stack status` shows the local one"


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema version as the registry knows it (``subject`` includes the client's prefix)."""

    subject: str
    version: int
    schema_id: int
    schema: str


class SchemaRegistryClient:
    """Confluent-compatible registry client; ``base_url`` includes any API path (``…/apis/ccompat/v7``).

    ``subject_prefix`` is prepended to every subject, so tests (or tenants) get their own subjects.
    """

    def __init__(
        self,
        base_url: str,
        *,
        subject_prefix: str = "",
        timeout: float = 10.0,
        max_attempts: int = 5,
        auth: tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.subject_prefix = subject_prefix
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            auth=auth,
            transport=transport,
            headers={"Accept": _ACCEPT},
        )
        self._retrying = Retrying(
            stop=stop_after_attempt(max_attempts),
            wait=wait_exponential(multiplier=0.1, max=5.0) + wait_random(0, 0.1),
            retry=retry_if_exception_type(RegistryUnavailableError),
            reraise=True,
        )
        self._schemas_by_id: dict[int, str] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def subject(self, name: str) -> str:
        """The registry subject for a logical subject name (prefix applied)."""
        return f"{self.subject_prefix}{name}"

    # -- subjects and versions -------------------------------------------------------------------

    def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` under ``subject`` and return its id; idempotent for identical text."""
        full = self.subject(subject)
        body = self._request("POST", f"/subjects/{_q(full)}/versions", full, {"schema": schema})
        return int(body["id"])

    def lookup(self, subject: str, schema: str) -> RegisteredSchema:
        """Find the version of ``subject`` whose text is exactly ``schema`` (never registers)."""
        full = self.subject(subject)
        body = self._request("POST", f"/subjects/{_q(full)}", full, {"schema": schema})
        return RegisteredSchema(full, int(body["version"]), int(body["id"]), body.get("schema", schema))

    def get_versions(self, subject: str) -> list[int]:
        """Version numbers registered under ``subject``, oldest first."""
        full = self.subject(subject)
        return [int(v) for v in self._request("GET", f"/subjects/{_q(full)}/versions", full)]

    def get_version(self, subject: str, version: int | Literal["latest"] = "latest") -> RegisteredSchema:
        """One version of ``subject`` with its schema text."""
        full = self.subject(subject)
        body = self._request("GET", f"/subjects/{_q(full)}/versions/{version}", full)
        return RegisteredSchema(full, int(body["version"]), int(body["id"]), body["schema"])

    def get_schema_by_id(self, schema_id: int) -> str:
        """Schema text registered under ``schema_id``; cached, since ids never change meaning."""
        cached = self._schemas_by_id.get(schema_id)
        if cached is None:
            body = self._request("GET", f"/schemas/ids/{int(schema_id)}", None)
            cached = self._schemas_by_id[schema_id] = body["schema"]
        return cached

    # -- compatibility ---------------------------------------------------------------------------

    def get_compatibility(self, subject: str) -> CompatibilityLevel | None:
        """The subject's compatibility level, or ``None`` when the registry has none for it."""
        full = self.subject(subject)
        try:
            body = self._request("GET", f"/config/{_q(full)}", full)
        except SchemaNotFoundError:
            return None
        return _level(body)

    def set_compatibility(self, subject: str, level: CompatibilityLevel) -> CompatibilityLevel:
        """Set the subject's compatibility level (allowed before its first version)."""
        full = self.subject(subject)
        body = self._request("PUT", f"/config/{_q(full)}", full, {"compatibility": str(level)})
        return _level(body) or level

    def get_global_compatibility(self) -> CompatibilityLevel | None:
        """The registry-wide default level (``GET /config``), which applies to subjects without their own."""
        return _level(self._request("GET", "/config", None))

    def set_global_compatibility(self, level: CompatibilityLevel) -> CompatibilityLevel:
        """Set the registry-wide default (``PUT /config``).

        Subjects created by hand or by a client that auto-registers get this level, so the default must
        be as strict as our own subjects; a registry left at ``NONE`` accepts any change there.
        """
        body = self._request("PUT", "/config", None, {"compatibility": str(level)})
        return _level(body) or level

    def is_compatible(self, subject: str, schema: str, version: int | Literal["latest"] = "latest") -> bool:
        """Whether ``schema`` may be registered under ``subject``; ``True`` when it has no versions yet."""
        full = self.subject(subject)
        path = f"/compatibility/subjects/{_q(full)}/versions/{version}"
        try:
            body = self._request("POST", path, full, {"schema": schema})
        except SchemaNotFoundError:
            return True
        return bool(body["is_compatible"])

    # -- transport -------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, subject: str | None, payload: Mapping[str, Any] | None = None
    ) -> Any:
        response: httpx.Response = self._retrying.copy()(self._send, method, path, subject, payload)
        if response.is_success:
            return response.json()
        raise _error_for(response, subject)

    def _send(
        self, method: str, path: str, subject: str | None, payload: Mapping[str, Any] | None
    ) -> httpx.Response:
        headers = {"Content-Type": _CONTENT_TYPE} if payload is not None else None
        try:
            response = self._http.request(method, path, json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnavailableError(
                f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc}", subject=subject
            ) from exc
        if response.status_code >= 500:
            raise _error_for(response, subject, RegistryUnavailableError)
        return response


def _q(subject: str) -> str:
    return quote(subject, safe="")


def _level(body: Mapping[str, Any]) -> CompatibilityLevel | None:
    value = body.get("compatibilityLevel") or body.get("compatibility")
    return CompatibilityLevel(value) if value else None


def _error_for(
    response: httpx.Response, subject: str | None, cls: type[RegistryError] | None = None
) -> RegistryError:
    """Turn an error answer into a typed error, tolerating non-JSON and Apicurio-style bodies."""
    error_code: int | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        message = str(body.get("message") or body.get("detail") or body)
        raw_code = body.get("error_code", body.get("errorCode"))
        error_code = int(raw_code) if isinstance(raw_code, int | str) and str(raw_code).isdigit() else None
    else:
        message = response.text.strip() or response.reason_phrase
    if cls is None:
        by_status: dict[int, type[RegistryError]] = {
            401: RegistryAuthError,
            403: RegistryAuthError,
            404: SchemaNotFoundError,
            409: IncompatibleSchemaError,
            422: InvalidSchemaError,
        }
        cls = by_status.get(response.status_code, RegistryError)
    where = f" (subject {subject!r})" if subject else ""
    if cls is IncompatibleSchemaError:
        text = f"schema is incompatible with subject {subject!r}: {message}"
    else:
        text = f"{response.request.method} {response.request.url} → {response.status_code}{where}: {message}"
    return cls(text, subject=subject, status_code=response.status_code, error_code=error_code)


# -- contracts ↔ registry ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisteredContract:
    """A stored contract version and the id the registry gave it under a topic's subject."""

    topic: str
    subject: str
    contract: ContractVersion
    schema_id: int


def _topic_versions(topics: Iterable[str] | None) -> Iterable[tuple[str, ContractVersion]]:
    for topic in TOPIC_CONTRACTS if topics is None else topics:
        for version in get_contract(TOPIC_CONTRACTS[topic]).versions:
            yield topic, version


CONTRACT_COMPATIBILITY = CompatibilityLevel.FULL_TRANSITIVE
"""The level of every value subject and of the registry's default.

FULL_TRANSITIVE because regsync does not control its readers: a health bureau may pin a reader schema
(specific records, a JDBC sink's table) to any version, so every version must read, and be read by,
every other — BACKWARD alone protects new readers only, and lets a field be removed under old ones.
"""


def register_all(
    client: SchemaRegistryClient,
    topics: Iterable[str] | None = None,
    *,
    compatibility: CompatibilityLevel = CONTRACT_COMPATIBILITY,
    set_global: bool = True,
) -> list[RegisteredContract]:
    """Set the registry default and each topic subject's level, then register every stored version.

    Versions go oldest first, so the registry checks each against all before it. Idempotent:
    re-registering identical text returns the existing id, and setting a level again changes nothing.
    A stored version the registry refuses raises :class:`IncompatibleSchemaError`. ``set_global=False``
    leaves the registry-wide default alone (a registry shared with other teams, whose owner sets it).
    """
    if set_global:
        client.set_global_compatibility(compatibility)
    registered = []
    configured: set[str] = set()
    for topic, version in _topic_versions(topics):
        subject = subject_for(topic)
        if subject not in configured:
            client.set_compatibility(subject, compatibility)
            configured.add(subject)
        schema_id = client.register(subject, version.schema_str)
        registered.append(RegisteredContract(topic, client.subject(subject), version, schema_id))
    return registered


def resolve_ids(
    client: SchemaRegistryClient, topics: Iterable[str] | None = None
) -> list[RegisteredContract]:
    """Look up (never register) the id of every stored version under each topic's subject."""
    resolved = []
    for topic, version in _topic_versions(topics):
        subject = subject_for(topic)
        try:
            found = client.lookup(subject, version.schema_str)
        except SchemaNotFoundError as exc:
            raise SchemaNotFoundError(
                f"{version.name} v{version.version} is not registered under {client.subject(subject)!r}; "
                "run `regsync schemas register` first",
                subject=client.subject(subject),
                status_code=exc.status_code,
                error_code=exc.error_code,
            ) from exc
        resolved.append(RegisteredContract(topic, found.subject, version, found.schema_id))
    return resolved


def codec_for_topic(client: SchemaRegistryClient, topic: str) -> AvroCodec:
    """A codec writing the topic's latest contract under its registered id, reading any registered writer."""
    *older, latest = resolve_ids(client, [topic])
    codec = AvroCodec(latest.contract.schema_str, latest.schema_id, schemas=client)
    for known in older:  # stored versions need no registry round-trip when they show up as writers
        codec.add_writer(known.schema_id, known.contract.schema_str)
    return codec
