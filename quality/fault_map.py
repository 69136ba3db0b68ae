"""Which rule must catch each fault the simulators inject (``simulators.world.Fault``).

The fault tests and the monthly audit report reconcile the simulators' ground truth against what the
pipeline caught, so the mapping is data, kept beside the catalog. Keys are the ``Fault`` *values*
(plain strings): ``quality`` depends on ``schemas`` only, never on the simulators; a unit test imports
both and checks that every ``Fault`` has an entry and every target exists.

A target is a catalog rule id, or :data:`CONNECTOR_FILTER` for faults the connector is expected to drop
before the gate sees them (look-alikes such as 托管/托养/早教 fail the childcare test at extraction and
are counted as ``not_childcare`` in the extraction batch, not sent to Kafka). For those,
:data:`GATE_BACKSTOP` names the gate rule that still rejects the record if a connector lets it through.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

from quality.rules import rule

__all__ = ["CONNECTOR_FILTER", "EXPECTED_RULE", "GATE_BACKSTOP", "Stage", "expected_rule", "stage_of"]

CONNECTOR_FILTER: Final = "CONNECTOR_FILTER"
"""Pseudo rule id: the connector's childcare filter drops the record before the gate."""

EXPECTED_RULE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "bad_check_digit": "USCC_CHECK_DIGIT",
        "missing_name": "REQUIRED_FIELD",
        "missing_address": "REQUIRED_FIELD",
        "unknown_division": "DIVISION_UNKNOWN",
        # The world states the abolished code (371202 莱城区) *and* writes the old names in the address;
        # the connector maps the code forward, so the gate sees the old names in the address.
        "abolished_division": "DIVISION_ABOLISHED_MAPPED",
        "prefix_mismatch": "USCC_REGISTRAR_PREFIX",
        "future_date": "EVENT_DATE_FUTURE",
        "bad_legal_rep_id": "LEGAL_REP_ID_INVALID",
        "late": "LATE_PUSH",
        "duplicate_registrar": "DUPLICATE_ACROSS_REGISTRARS",
        "lookalike": CONNECTOR_FILTER,
    }
)
"""Fault value → the rule id that must catch it (or :data:`CONNECTOR_FILTER`)."""

GATE_BACKSTOP: Final[Mapping[str, str]] = MappingProxyType({"lookalike": "NOT_CHILDCARE"})
"""For faults caught before the gate: the gate rule that rejects them if they slip through."""

Stage = Literal["connector", "gate", "batch"]


def expected_rule(fault: str) -> str:
    """The target for a fault value; an unmapped fault is a gap in the catalog, so it raises KeyError."""
    try:
        return EXPECTED_RULE[str(fault)]
    except KeyError:
        raise KeyError(f"fault {fault!r} has no expected rule; add it to quality.fault_map") from None


def stage_of(fault: str) -> Stage:
    """Where the fault is caught: the connector filter, the per-record gate, or a batch suite."""
    target = expected_rule(fault)
    if target == CONNECTOR_FILTER:
        return "connector"
    return "gate" if rule(target).scope == "record" else "batch"
