"""A SQL source as a spec, a query and a mapping (cf. Singer SDK's ``SQLStream``/``SQLConnector``).

The base owns what 编制 and 行政审批 had twice: the engine (made on first use), keyset pages under the
tie-safe :class:`~connectors.watermark.HighWatermark` (``cursor >= mark`` in (cursor, key) order,
one short query per page), the end bound at the run's as-of, the per-row loop with its DLQ, a
masked raw copy of the row, and JSON columns read untyped and parsed per row. A subclass declares
:attr:`table`, :attr:`order_by`, how a mark and the as-of become ``WHERE`` clauses, where a row sits
on the cursor, and :meth:`convert` (an event, or ``None`` when it is not childcare).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from connectors.base import Batch, Connector, ExtractContext, UnusableRecord
from connectors.watermark import HighWatermark, watermark_pages
from schemas.masking import mask_phone, mask_resident_id

__all__ = ["SqlConnector", "json_column"]


class SqlConnector(Connector):
    """Incremental reads of one table by a SQLAlchemy URL (SQLite or PostgreSQL)."""

    table: ClassVar[sa.TableClause]
    order_by: ClassVar[tuple[str, ...]]  # the cursor column first, then the tie-breaking key
    personal: ClassVar[Mapping[str, str]] = {}  # column → "id" | "phone": masked in the DLQ copy

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        """Created on first use, so building a connector never touches the source."""
        if self._engine is None:
            self._engine = sa.create_engine(self.url)
        return self._engine

    def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # what a subclass declares ----------------------------------------------------------------
    def after_mark(self, mark: HighWatermark) -> sa.ColumnElement[bool]:
        """``cursor >= mark.value`` in the column's own type."""
        raise NotImplementedError

    def until(self, ctx: ExtractContext) -> sa.ColumnElement[bool]:
        """The end bound: rows stamped after the as-of wait for the next run."""
        raise NotImplementedError

    def position(self, row: sa.Row[Any]) -> tuple[str, str]:
        """(cursor value as text that sorts like the column, tie key) of a row."""
        raise NotImplementedError

    def record_id(self, row: sa.Row[Any]) -> tuple[str, str]:
        """(the source's record id, a label naming the row in DLQ reasons)."""
        raise NotImplementedError

    def convert(self, row: sa.Row[Any], cursor: str, ctx: ExtractContext, page: Any) -> Any:
        """The row's event, or None when it is not childcare; raise to send it to the DLQ."""
        raise NotImplementedError

    def prepare(self, rows: list[sa.Row[Any]]) -> Any:
        """Per-page look-ups ``convert`` needs (child tables, say); ``None`` by default."""
        return None

    # what the base does ----------------------------------------------------------------------
    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        """One batch per page of new rows, each carrying the watermark after its last row."""
        yield from self.pages(HighWatermark.from_state(state), ctx, {})

    def pages(self, start: HighWatermark, ctx: ExtractContext, extra: Mapping[str, Any]) -> Iterator[Batch]:
        """The keyset pages from ``start``; ``extra`` rides along in every batch's state."""
        end = self.until(ctx)
        fetch = lambda mark, limit: self.fetch(mark, limit, end)  # noqa: E731
        for page, after in watermark_pages(start, fetch, self.position, ctx.batch_size):
            looked_up = self.prepare([row for row, _ in page])
            batch = Batch(read=len(page), state={**after.to_state(), **extra})
            for row, cursor in page:
                record_id, label = self.record_id(row)
                make = lambda row=row, cursor=cursor, extra=looked_up: self.convert(row, cursor, ctx, extra)  # noqa: E731
                self.take(batch, record_id, self.raw(row), make, f"{self.spec.name}: record {label}")
            yield batch

    def fetch(self, mark: HighWatermark, limit: int, end: sa.ColumnElement[bool]) -> Sequence[sa.Row[Any]]:
        """At most ``limit`` rows at or after the mark and not after the end, in cursor order."""
        query = sa.select(self.table).where(end).order_by(*(self.table.c[n] for n in self.order_by))
        if mark.value is not None:
            query = query.where(self.after_mark(mark))
        with self.engine.connect() as conn:
            return conn.execute(query.limit(limit)).all()

    def raw(self, row: sa.Row[Any]) -> dict[str, Any]:
        """The row for the DLQ, personal columns masked before anything else (PIPL)."""
        data = dict(row._mapping)
        for column, kind in self.personal.items():
            data[column] = (mask_resident_id if kind == "id" else mask_phone)(data.get(column))
        return data


def json_column(value: Any, column: str, key: str) -> Any:
    """A JSON column read untyped: PostgreSQL's driver gives lists, SQLite text; bad JSON is the row's."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise UnusableRecord(f"{column} of record {key} is not JSON: {exc}") from None
    return value
