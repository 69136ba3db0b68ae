"""The one registrar registry: which registrar systems exist, how each is built, and what feeds on that.

Every place that lists registrars reads it: the CLI (``--source``, ``--all``), the extraction DAGs,
the report (registrar labels, configured-but-silent registrars) and the month reader. Adding a
registrar touches three places: its connector module, one :class:`Source` line below, and — only if
it is a registrar the contract does not name yet — :class:`schemas.events.Registrar`. Its settings
need no new field: ``REGSYNC_SOURCES__<NAME>_<LOCATION>`` is read as is (``SourcesSettings`` allows
extras). A test registers a sixth registrar from a fixture with :func:`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from connectors.base import Connector, ConnectorSpec
from regsync.settings import Settings, SourcesSettings
from schemas.errors import ConfigurationError
from schemas.events import Registrar

__all__ = [
    "FACTORIES",
    "REGISTRY",
    "Source",
    "build",
    "configured",
    "names",
    "register",
    "registrars",
    "spec",
]


def _no_options(_: SourcesSettings) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Source:
    """A registrar system: its connector class (``module:Class``) and the setting that locates it."""

    name: str
    connector: str | type[Connector]
    location: str  # the SourcesSettings field (or extra) passed as the connector's first argument
    options: Callable[[SourcesSettings], dict[str, Any]] = field(default=_no_options)

    def connector_class(self) -> type[Connector]:
        """The class, imported on first use so listing sources imports no connector."""
        if not isinstance(self.connector, str):
            return self.connector
        module, _, name = self.connector.partition(":")
        cls: type[Connector] = getattr(importlib.import_module(module), name)
        return cls

    @property
    def env(self) -> str:
        """The environment variable that configures this source."""
        return f"REGSYNC_SOURCES__{self.location.upper()}"


REGISTRY: dict[str, Source] = {
    s.name: s
    for s in (
        Source("bianzhi", "connectors.bianzhi:BianzhiConnector", "bianzhi_url"),
        Source(
            "minzheng",
            "connectors.minzheng:MinzhengConnector",
            "minzheng_url",
            lambda s: {"token": s.minzheng_token},
        ),
        Source(
            "shichang",
            "connectors.shichang:ShichangConnector",
            "shichang_drop_dir",
            lambda s: {"marker_grace": timedelta(hours=s.shichang_marker_grace_hours)},
        ),
        Source("shenpi", "connectors.shenpi:ShenpiConnector", "shenpi_url"),
        Source("jiaoyu", "connectors.jiaoyu:JiaoyuConnector", "jiaoyu_feed"),
    )
}
FACTORIES = REGISTRY  # the name the CLI and older callers use


def names() -> tuple[str, ...]:
    """Every registered source, in registry order."""
    return tuple(REGISTRY)


def _source(name: str) -> Source:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigurationError(f"unknown source {name!r}; known: {', '.join(REGISTRY)}") from None


def spec(name: str) -> ConnectorSpec:
    """The connector's declared contract."""
    return _source(name).connector_class().spec


def registrars() -> Mapping[str, Registrar]:
    """Source name (the ``regsync.source`` header) → registrar, from each connector's declared spec."""
    return {name: spec(name).registrar for name in REGISTRY}


def _location(settings: SourcesSettings, source: Source) -> Any:
    value = getattr(settings, source.location, None)
    if value is None:
        value = (settings.model_extra or {}).get(source.location)
    return value


def configured(settings: Settings) -> list[str]:
    """Sources whose location is set (listed in the report even in a month they sent nothing)."""
    return [name for name, s in REGISTRY.items() if _location(settings.sources, s) not in (None, "")]


def build(name: str, settings: Settings) -> Connector:
    """A connector for source ``name``; unknown names and missing settings fail in one line."""
    source = _source(name)
    location = _location(settings.sources, source)
    if location in (None, ""):
        raise ConfigurationError(f"source {name!r} is not configured: set {source.env}")
    return source.connector_class()(location, **source.options(settings.sources))  # type: ignore[call-arg]  # each connector's own __init__


def at(name: str, location: Any, **options: Any) -> Connector:
    """A connector for ``name`` reading ``location`` directly (a simulator's, a test's, the demo's)."""
    return _source(name).connector_class()(location, **options)  # type: ignore[call-arg]  # each connector's own __init__


def for_simulator(simulator: Any, **options: Any) -> Connector:
    """The connector reading a simulator (``.source``, ``.location``, ``.reader_options``) plus ``options``."""
    return at(simulator.source, simulator.location, **{**getattr(simulator, "reader_options", {}), **options})


@contextmanager
def register(source: Source) -> Iterator[Source]:
    """Add a registrar for the block (tests, plug-ins); the registry is restored afterwards."""
    if source.name in REGISTRY:
        raise ConfigurationError(f"source {source.name!r} is already registered")
    REGISTRY[source.name] = source
    try:
        yield source
    finally:
        REGISTRY.pop(source.name, None)
