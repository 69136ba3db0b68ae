"""The one settings object: environment variables (``REGSYNC_…``, nested with ``__``) over a TOML file.

Secrets (database passwords) are only ever read from the environment and kept as ``SecretStr`` so
they never reach a log line. Validation happens once at start, close to the cause.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from quality import rules
from schemas.month import DEFAULT_TIMEZONE, zone


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regsync"


class StackSettings(BaseModel):
    """How the local stack (Kafka, schema registry, PostgreSQL) is fetched and started."""

    state_dir: Path = Field(
        default=Path(".regsync/stack"),
        description="Where the running stack keeps its data, logs and stack.json.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where fetched Kafka and Apicurio artifacts are kept across runs.",
    )
    kafka_version: str = "4.1.2"
    log4j_version: str = "2.25.2"
    # 3.0.x is the newest Apicurio line that runs on JDK 17 (3.1+ needs JDK 21).
    apicurio_version: str = "3.0.9"
    kafka_home: Path | None = Field(
        default=None, description="An unpacked Kafka distribution to use instead of Maven artifacts."
    )
    java_home: Path | None = None
    kafka_heap: str = "512m"
    registry_heap: str = "384m"
    start_timeout_s: float = 120.0
    with_postgres: bool = True
    registry_auth: bool = Field(
        default=False,
        description="The local registry authenticates writes (basic auth, admin generated into the "
        "state folder); reads stay anonymous.",
    )
    brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Kafka nodes (each broker and controller); 3 gives topics replication 3, min ISR 2.",
    )
    secure: bool = Field(
        default=False,
        description="SASL_SSL (SCRAM-SHA-512) for clients, mutual TLS between the nodes, ACLs per principal. "
        "A state folder once started secure stays secure.",
    )


class KafkaCredentials(BaseModel):
    """One SCRAM principal: a user name and its password (never logged)."""

    username: str = Field(min_length=1)
    password: SecretStr


class KafkaClientSettings(BaseModel):
    """How every Kafka client of this process connects and who it is (docs/operations.md, Kafka security).

    ``principals`` names a principal per component (``connector``, ``gate``, ``loader``, ``reports``,
    ``admin``); a component without one uses ``username``/``password``. Passwords only ever come from
    the environment or a secrets file, as ``SecretStr``.
    """

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str | None = Field(default=None, description="The default principal of this process.")
    password: SecretStr | None = None
    principals: dict[str, KafkaCredentials] = Field(
        default_factory=dict, description="A principal per component, over the default one."
    )
    ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that signed the brokers' certificates (unset: system CAs)."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM), for mutual TLS.")
    key_file: Path | None = Field(default=None, description="Client private key (PEM), for mutual TLS.")
    check_hostname: bool = Field(
        default=True, description="Verify the broker's name against its certificate."
    )


class GateSettings(BaseModel):
    """What the per-record rules take from a deployment (the rest of ``GateConfig`` keeps its defaults)."""

    family_care_capacity: int = Field(
        default=rules.DEFAULT_FAMILY_CARE_CAPACITY, ge=0, description="家庭托育点 capacity limit [V 2023: 5]."
    )
    min_county_confidence: float = Field(
        default=rules.DEFAULT_MIN_COUNTY_CONFIDENCE,
        ge=0,
        le=1,
        description="Below this, a county resolved from the address is flagged as uncertain.",
    )
    disabled_rules: frozenset[str] = Field(
        default=frozenset(), description="Rule ids switched off for this deployment (still in the catalog)."
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Gate worker processes of a bounded run (Airflow's gate task); 0: one per core, "
        "at most one per raw partition.",
    )


class SourcesSettings(BaseModel):
    """Where each registrar system is. Secrets (API tokens, DB passwords in URLs) via the environment.

    Extras are kept: a registrar added to :mod:`regsync.sources` is located by
    ``REGSYNC_SOURCES__<ITS_LOCATION>`` without a field here.
    """

    model_config = ConfigDict(extra="allow")

    bianzhi_url: str | None = Field(default=None, description="SQLAlchemy URL of the 编制 database.")
    shenpi_url: str | None = Field(default=None, description="SQLAlchemy URL of the 行政审批 database.")
    minzheng_url: str | None = Field(default=None, description="Base URL of the 民政 open API.")
    minzheng_token: SecretStr | None = Field(default=None, description="Bearer token of the 民政 API.")
    shichang_drop_dir: Path | None = Field(
        default=None, description="Drop folder of 市场监管 exchange files."
    )
    jiaoyu_feed: Path | None = Field(default=None, description="The 教育 托班 feed.")
    shichang_marker_grace_hours: float = Field(
        default=48.0,
        ge=0,
        description="Hours a 市场监管 day file may wait for a correct .ok marker after it was due "
        "before the extract fails (until then it is reported in the run summary).",
    )


class DatabaseSettings(BaseModel):
    """Least-privilege roles per component (``regsync/bookkeeping/roles.py``); off for quick local work.

    ``REGSYNC_DATABASE_URL`` stays the owner's (migrations and grants); the jobs use ``pipeline_url``
    when set, the portal ``REGSYNC_PORTAL_DATABASE_URL``.
    """

    roles: bool = Field(
        default=False,
        description="`regsync db upgrade` creates the component roles and grants them their tables.",
    )
    role_prefix: str = Field(default="regsync_", description="Role names: <prefix>pipeline|portal|reader.")
    pipeline_password: SecretStr | None = Field(default=None, description="Password set on <prefix>pipeline.")
    portal_password: SecretStr | None = Field(default=None, description="Password set on <prefix>portal.")
    reader_password: SecretStr | None = Field(default=None, description="Password set on <prefix>reader.")
    pipeline_url: SecretStr | None = Field(
        default=None,
        description="The pipeline's jobs connect with this URL (role <prefix>pipeline); unset: the owner's.",
    )

    def passwords(self) -> dict[str, SecretStr | None]:
        """Component -> the password to set (``None``: leave the role's current one)."""
        return {
            "pipeline": self.pipeline_password,
            "portal": self.portal_password,
            "reader": self.reader_password,
        }


class Settings(BaseSettings):
    """All of regsync's configuration, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix="REGSYNC_",
        env_nested_delimiter="__",
        toml_file="regsync.toml",
        extra="ignore",
    )

    stack: StackSettings = Field(default_factory=StackSettings)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    topic_prefix: str = Field(default="", description="Prefix of topic and subject names.")
    topic_partitions: int = Field(
        default=6,
        ge=1,
        le=1000,
        description="Partitions of topics regsync creates: the most gate workers that can share the load. "
        "Existing topics keep theirs (adding partitions would move keys and break per-USCC order).",
    )
    timezone: str = Field(default=DEFAULT_TIMEZONE, description="Month boundaries are taken in this zone.")
    output_dir: Path | None = Field(
        default=None, description="Reports, county packages and Data Docs (default: .regsync/output)."
    )
    timeliness_threshold: float = Field(
        default=0.9, ge=0, le=1, description="Share of registrations to push within their month [U]."
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Filing-store database, as its owner (migrations). Unset: the local stack's "
        "PostgreSQL, else embedded SQLite.",
    )
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the local stack's broker."
    )
    kafka: KafkaClientSettings = Field(default_factory=KafkaClientSettings)
    registry_url: str | None = Field(
        default=None,
        description="Confluent-compatible schema registry base URL; unset means the local stack's.",
    )
    registry_username: str | None = Field(
        default=None, description="The registry admin that registers contracts (reads need none)."
    )
    registry_password: SecretStr | None = Field(default=None, description="That admin's password.")
    probe_timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds each service gets to answer before a job starts (a closed port fails fast).",
    )

    def registry_auth(self) -> tuple[str, str] | None:
        """Basic-auth credentials for registry writes, when configured (both or neither)."""
        if self.registry_username and self.registry_password is not None:
            return self.registry_username, self.registry_password.get_secret_value()
        if self.registry_username or self.registry_password is not None:
            from schemas.errors import ConfigurationError

            raise ConfigurationError(
                "set both REGSYNC_REGISTRY_USERNAME and REGSYNC_REGISTRY_PASSWORD, or neither"
            )
        return None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """An unknown zone fails at start, not at the first month boundary."""
        zone(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment wins over the TOML file; explicit arguments win over both."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read once."""
    return Settings()
