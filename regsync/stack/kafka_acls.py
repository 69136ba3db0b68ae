"""The pipeline's Kafka ACL table: which principal may do what, applied by the admin.

One table, as data (:func:`grants`), so ``stack up --secure`` applies it for the deployment's topics
and a test applies the same table to its own prefixed topics. With the ``StandardAuthorizer`` and
``allow.everyone.if.no.acl.found=false`` anything not listed here is denied; only ``admin`` (a super
user) creates topics, changes configs or writes ACLs.

Deviations from a pure "read valid and rejected" for the loader and the reports, and why: the loader
finds a month's window on raw by the records' own timestamps (a binary search that reads records) to
check every raw record of the month has a verdict, and the reports reconcile raw against valid and
rejected. Both therefore READ raw; neither may write anywhere. Connectors READ raw to recover after
a crash (which event ids of theirs already landed), so a restarted extract duplicates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.contracts import TOPIC_RAW, TOPIC_REJECTED, TOPIC_VALID
from schemas.errors import FatalError

#: The gate's consumer group and transactional ids start with this (regsync.stages.gate).
GATE_ID_PREFIX = "regsync-gate-"
#: A bureau consumer's group ids must start with this.
BUREAU_GROUP_PREFIX = "bureau-"


class AclsRefusedError(FatalError, RuntimeError):
    """The brokers refused part of the ACL table (RuntimeError too, as callers caught before)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One ALLOW row of the table: principal, operation, resource type, name, pattern."""

    user: str
    operation: str  # READ, WRITE, DESCRIBE
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID
    name: str
    pattern: str = "LITERAL"  # or PREFIXED

    def row(self) -> str:
        """The row as the docs print it."""
        return f"User:{self.user:<9} {self.operation:<8} {self.resource:<16} {self.pattern:<8} {self.name}"


def grants(prefix: str = "") -> list[Grant]:
    """The ACL table for the topics under ``prefix`` ("" in production, a per-test prefix in tests)."""
    raw, valid, rejected = prefix + TOPIC_RAW, prefix + TOPIC_VALID, prefix + TOPIC_REJECTED
    gate_ids = f"{GATE_ID_PREFIX}{prefix or 'default'}"
    out: list[Grant] = []

    def topic(user: str, name: str, *ops: str) -> None:
        # DESCRIBE comes with every grant: metadata, offsets by time and end offsets need it.
        for op in ("DESCRIBE", *ops):
            out.append(Grant(user, op, "TOPIC", name))

    topic("connector", raw, "WRITE", "READ")
    topic("connector", rejected, "WRITE")
    topic("gate", raw, "READ")
    topic("gate", valid, "WRITE")
    topic("gate", rejected, "WRITE")
    out.append(Grant("gate", "READ", "GROUP", gate_ids, "PREFIXED"))
    out.append(Grant("gate", "WRITE", "TRANSACTIONAL_ID", gate_ids, "PREFIXED"))
    out.append(Grant("gate", "DESCRIBE", "TRANSACTIONAL_ID", gate_ids, "PREFIXED"))
    for user in ("loader", "reports"):
        topic(user, raw, "READ")
        topic(user, valid, "READ")
        topic(user, rejected, "READ")
    # The load asks the gate's group how far raw is judged (OffsetFetch: DESCRIBE on the group).
    out.append(Grant("loader", "DESCRIBE", "GROUP", gate_ids, "PREFIXED"))
    topic("bureau", valid, "READ")
    out.append(Grant("bureau", "READ", "GROUP", BUREAU_GROUP_PREFIX, "PREFIXED"))
    return out


def bindings(table: list[Grant]) -> list[Any]:
    """kafka-python ``ACL`` objects for ``table`` (host ``*``: the listener already authenticated)."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    return [
        ACL(
            principal=f"User:{g.user}",
            host="*",
            operation=ACLOperation[g.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[g.resource], g.name, ACLResourcePatternType[g.pattern]
            ),
        )
        for g in table
    ]


def apply(admin: Any, table: list[Grant]) -> int:
    """Create the table's ACLs (creating an existing ACL is a no-op in Kafka); returns how many.

    Raises :class:`AclsRefusedError` (a FatalError, exit 78) naming the first refused binding: a
    half-applied table must not pass silently, and the usual cause (not logged in as the admin, no
    authorizer on the brokers) is the deployment's, not a bug.
    """
    result = admin.create_acls(bindings(table))
    failed = result.get("failed") or []  # kafka-python lists the error classes only
    if failed:
        raise AclsRefusedError(
            f"{len(failed)} of {len(table)} ACL(s) refused, first error: {failed[0]}",
            hint="apply the table as the Kafka admin, on brokers that run the StandardAuthorizer",
        )
    return len(result.get("succeeded") or [])
