"""The grant table covers every table the three migration histories make, and nothing else."""

from __future__ import annotations

import pytest

from portal.models import metadata as portal_metadata
from regsync.bookkeeping.migrate import target_metadata
from regsync.bookkeeping.roles import COMPONENTS, GRANTS, role_names
from schemas.errors import ConfigurationError
from sink.models import metadata as sink_metadata


def _modelled() -> set[str]:
    tables: set[str] = set()
    for metadata in (*target_metadata(), sink_metadata, portal_metadata):
        tables |= set(metadata.tables)
    return tables


def test_every_modelled_table_has_a_grant_entry_and_no_entry_is_stale() -> None:
    assert set(GRANTS) == _modelled()


def test_only_the_portal_touches_accounts_tokens_and_audit_and_audit_is_append_only() -> None:
    for table in ("portal_users", "portal_tokens", "portal_login_failures", "portal_audit"):
        assert set(GRANTS[table]) == {"portal"}, table
    assert set(GRANTS["portal_audit"]["portal"]) == {"SELECT", "INSERT"}


def test_the_portal_and_the_reader_never_write_the_event_history_or_roster() -> None:
    for table in ("institution_events", "institutions", "load_manifests", "county_pushes"):
        for component in ("portal", "reader"):
            assert set(GRANTS[table].get(component, ())) <= {"SELECT"}, (table, component)
    for table, by_component in GRANTS.items():
        assert set(by_component.get("reader", ())) <= {"SELECT"}, table
        assert set(by_component) <= set(COMPONENTS), table


@pytest.mark.parametrize("prefix", ["Regsync_", "x; DROP ROLE postgres; --", "a-b_", ""])
def test_role_names_are_plain_identifiers(prefix: str) -> None:
    if prefix == "":
        assert role_names(prefix) == {"pipeline": "pipeline", "portal": "portal", "reader": "reader"}
        return
    with pytest.raises(ConfigurationError):
        role_names(prefix)
