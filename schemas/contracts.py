"""Catalog of the Avro contracts stored under ``schemas/avro/``.

Every published version of a schema is kept forever as its own file, so the offline evolution test and
the registry see exactly the same history::

    schemas/avro/<namespace>.<Name>/v<N>.avsc      e.g. regsync.events.RegistrationEvent/v1.avsc

The file is the contract; :attr:`ContractVersion.schema_str` is the compact JSON text registered with the
schema registry. It must be byte-stable, because Apicurio's ccompat API matches schemas by exact text:
registering the same schema with different whitespace creates a new version and a new id. So never edit a
published ``.avsc`` — add ``v<N+1>.avsc`` (``CHECKSUMS`` in the same folder pins the published bytes).

Which topic carries which contract is data (:data:`TOPIC_CONTRACTS`), and subjects follow Confluent's
TopicNameStrategy (``<topic>-value``) so any Kafka Connect consumer finds them without configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from schemas.errors import FatalError

AVRO_DIR = Path(__file__).parent / "avro"
"""Root folder of the versioned ``.avsc`` files."""

REGISTRATION_EVENT = "regsync.events.RegistrationEvent"
REJECTED_RECORD = "regsync.events.RejectedRecord"

TOPIC_RAW = "registrations.raw"
TOPIC_VALID = "registrations.valid"
TOPIC_REJECTED = "registrations.rejected"

TOPIC_CONTRACTS: Mapping[str, str] = {
    TOPIC_RAW: REGISTRATION_EVENT,
    TOPIC_VALID: REGISTRATION_EVENT,
    TOPIC_REJECTED: REJECTED_RECORD,
}
"""Topic → full name of the value contract it carries (keys are USCC strings, not Avro)."""

_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


class ContractError(FatalError):
    """The stored contracts are malformed or a name/topic/version is unknown."""


def subject_for(topic: str) -> str:
    """Subject name of a topic's value schema under TopicNameStrategy."""
    return f"{topic}-value"


@dataclass(frozen=True, slots=True)
class ContractVersion:
    """One stored, immutable version of a contract."""

    name: str
    version: int
    path: Path
    schema_str: str = field(repr=False)
    """Compact JSON text of the schema; what is registered and looked up in the registry."""

    @property
    def schema(self) -> dict[str, Any]:
        """A fresh parsed-JSON copy of the schema (safe to mutate)."""
        parsed: dict[str, Any] = json.loads(self.schema_str)
        return parsed


@dataclass(frozen=True, slots=True)
class Contract:
    """A named Avro contract with all its stored versions, oldest first."""

    name: str
    versions: tuple[ContractVersion, ...]

    @property
    def latest(self) -> ContractVersion:
        """The newest stored version: what producers write and consumers read into."""
        return self.versions[-1]

    def version(self, number: int) -> ContractVersion:
        """Return stored version ``number`` (1-based)."""
        for candidate in self.versions:
            if candidate.version == number:
                return candidate
        raise ContractError(f"{self.name} has no stored version {number}")


def canonical_text(schema: Mapping[str, Any] | list[Any] | str) -> str:
    """Compact, key-order-preserving JSON text of a schema, with non-ASCII kept (the docs are Chinese)."""
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def _load_folder(folder: Path) -> Contract:
    versions: list[ContractVersion] = []
    for path in folder.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match is None:
            continue
        try:
            parsed = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ContractError(f"{path} is not valid JSON: {exc}") from exc
        full_name = f"{parsed.get('namespace', '')}.{parsed.get('name', '')}"
        if full_name != folder.name:
            raise ContractError(f"{path} defines {full_name!r}, but its folder is named {folder.name!r}")
        versions.append(ContractVersion(folder.name, int(match.group(1)), path, canonical_text(parsed)))
    versions.sort(key=lambda v: v.version)
    numbers = [v.version for v in versions]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ContractError(f"{folder} must hold v1..vN without gaps, found {numbers}")
    return Contract(folder.name, tuple(versions))


def load_contracts(root: Path = AVRO_DIR) -> dict[str, Contract]:
    """Load every contract folder under ``root``, keyed by full schema name."""
    contracts = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        contract = _load_folder(folder)
        if contract.versions:
            contracts[contract.name] = contract
    return contracts


@cache
def _default_contracts() -> dict[str, Contract]:
    return load_contracts(AVRO_DIR)


def get_contract(name: str) -> Contract:
    """Return the packaged contract ``name`` (e.g. :data:`REGISTRATION_EVENT`); loaded once per process."""
    try:
        return _default_contracts()[name]
    except KeyError:
        raise ContractError(f"no stored contract named {name!r}") from None


def contract_for_topic(topic: str) -> Contract:
    """Return the value contract a topic carries."""
    try:
        name = TOPIC_CONTRACTS[topic]
    except KeyError:
        raise ContractError(f"topic {topic!r} has no contract; known: {sorted(TOPIC_CONTRACTS)}") from None
    return get_contract(name)
