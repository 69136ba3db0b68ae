"""A minimal in-memory connector for testing the extraction mechanics (not a registrar system).

Rows have a cursor value with deliberate ties; the real connectors have their own contract tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from connectors.base import Batch, Connector, ConnectorSpec, ExtractContext, HighWatermark, chunked
from schemas.events import (
    UNRESOLVED,
    EventType,
    Institution,
    InstitutionStatus,
    LegalForm,
    LegalRepresentative,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
)
from schemas.uscc import make_uscc


def rows(n: int) -> list[dict[str, Any]]:
    """n rows whose cursor values come in ties of three."""
    return [
        {
            "id": f"R{i:05d}",
            "ts": f"2026-01-{1 + i // 3:02d}T09:00:00",
            "uscc": make_uscc("5", "2", "441800", f"{i:08d}"),
            "name": f"清远测试{i}托育园",
        }
        for i in range(n)
    ]


class ListConnector(Connector):
    spec = ConnectorSpec(
        name="listsource",
        registrar=Registrar.MINZHENG,
        source_system="list",
        key="id",
        cursor_field="ts",
        description="test rows",
    )

    def __init__(self, data: list[dict[str, Any]]) -> None:
        self.data = sorted(data, key=lambda r: (r["ts"], r["id"]))

    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        mark = HighWatermark.from_state(state)
        fresh = [r for r in self.data if mark.admits(r["ts"], r["id"])]
        for chunk in chunked(fresh, ctx.batch_size):
            batch = Batch(read=len(chunk))
            for row in chunk:
                mark = mark.advance(row["ts"], row["id"])
                batch.events.append(
                    RegistrationEvent.build(
                        event_type=EventType.ESTABLISHED,
                        registrar=Registrar.MINZHENG,
                        event_date=date(2026, 1, 5),
                        extracted_at=ctx.extracted_at,
                        institution=Institution(
                            uscc=row["uscc"],
                            name=row["name"],
                            legal_form=LegalForm.PRIVATE_NON_ENTERPRISE,
                            profit_nature=ProfitNature.NON_PROFIT,
                            legal_representative=LegalRepresentative(name="张三", id_number_masked=""),
                            address="广东省清远市清城区育才路1号",
                            county_code="441802",
                            county_resolution=UNRESOLVED,
                            business_scope="托育服务",
                            status=InstitutionStatus.ACTIVE,
                        ),
                        lineage=Lineage("list", row["id"], "1", ctx.run_id, cursor_value=row["ts"]),
                    )
                )
            batch.state = mark.to_state()
            yield batch


class FaultyListConnector(ListConnector):
    """Every 5th row gets a broken check digit; every 7th has no name."""

    def batches(self, state, ctx):
        for batch in super().batches(state, ctx):
            fixed = []
            for i, event in enumerate(batch.events):
                n = int(event.lineage.source_record_id[1:])
                inst = event.institution
                if n % 5 == 0:
                    inst = replace(inst, uscc=inst.uscc[:-1] + ("0" if inst.uscc[-1] != "0" else "1"))
                if n % 7 == 0:
                    inst = replace(inst, name="")
                fixed.append(
                    replace(event, institution=inst) if inst is not event.institution else batch.events[i]
                )
            batch.events = fixed
            yield batch
