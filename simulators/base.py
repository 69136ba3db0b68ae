"""What every registrar simulator offers, so the demo, the benchmarks and the tests drive them alike.

A simulator is a real system of its kind (a database, an HTTP server, a drop folder, a feed) seeded
from :mod:`simulators.world`. ``publish_until(as_of)`` makes everything that has surfaced by the
pipeline's "as of" instant visible in that system, idempotently, and appends the ground truth of the
newly visible record versions to ``<root>/ground_truth.jsonl``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.events import Registrar
from simulators.world import SourceRecord, World


class Simulator(ABC):
    """A registrar system rendered from a :class:`World`."""

    registrar: Registrar

    def __init__(self, world: World, root: Path) -> None:
        self.world = world
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.published: set[tuple[str, int]] = set()

    @property
    def truth_path(self) -> Path:
        """Ground truth of what this system has shown so far, one JSON object per line."""
        return self.root / "ground_truth.jsonl"

    def pending(self, as_of: datetime) -> list[SourceRecord]:
        """Record versions surfaced by ``as_of`` and not yet shown."""
        return [
            r
            for r in self.world.surfaced(self.registrar, as_of)
            if (r.record_id, r.version) not in self.published
        ]

    def publish_until(self, as_of: datetime) -> int:
        """Show everything surfaced by ``as_of``; returns how many record versions became visible."""
        new = self.pending(as_of)
        if new:
            self._write(new, as_of)
            self._append_truth(r.truth() for r in new)
            self.published.update((r.record_id, r.version) for r in new)
        return len(new)

    def ground_truth(self) -> list[dict[str, Any]]:
        """Every truth line written so far."""
        if not self.truth_path.exists():
            return []
        with self.truth_path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def _append_truth(self, lines: Iterable[dict[str, Any]]) -> None:
        with self.truth_path.open("a", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    @abstractmethod
    def _write(self, records: list[SourceRecord], as_of: datetime) -> None:
        """Put these record versions into the system, in its own format and with its quirks."""

    @property
    def source(self) -> str:
        """The registrar system's name in the registrar registry (``regsync.sources``)."""
        return self.registrar.value.lower()

    @property
    @abstractmethod
    def location(self) -> Any:
        """Where a reader finds this system: the value of its ``REGSYNC_SOURCES__…`` setting.

        Simulators know their own format and place, never the connector that reads them; the
        wiring (``regsync.sources.for_simulator``, the tests) puts the two together.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Stop servers, close connections (no-op for passive systems)."""
