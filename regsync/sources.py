"""Which registrar systems exist and how to build a connector for each from the settings."""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import Connector
from regsync.settings import Settings
from schemas.errors import ConfigurationError


def _need(value: object, setting: str, source: str) -> object:
    if value in (None, ""):
        raise ConfigurationError(f"source {source!r} is not configured: set {setting}")
    return value


def _bianzhi(s: Settings) -> Connector:
    from connectors.bianzhi import BianzhiConnector

    return BianzhiConnector(str(_need(s.sources.bianzhi_url, "REGSYNC_SOURCES__BIANZHI_URL", "bianzhi")))


def _shenpi(s: Settings) -> Connector:
    from connectors.shenpi import ShenpiConnector

    return ShenpiConnector(str(_need(s.sources.shenpi_url, "REGSYNC_SOURCES__SHENPI_URL", "shenpi")))


def _minzheng(s: Settings) -> Connector:
    from connectors.minzheng import MinzhengConnector

    url = str(_need(s.sources.minzheng_url, "REGSYNC_SOURCES__MINZHENG_URL", "minzheng"))
    return MinzhengConnector(url, token=s.sources.minzheng_token)


def _shichang(s: Settings) -> Connector:
    from connectors.shichang import ShichangConnector

    drop = _need(s.sources.shichang_drop_dir, "REGSYNC_SOURCES__SHICHANG_DROP_DIR", "shichang")
    return ShichangConnector(drop)  # type: ignore[arg-type]


def _jiaoyu(s: Settings) -> Connector:
    from connectors.jiaoyu import JiaoyuConnector

    feed = _need(s.sources.jiaoyu_feed, "REGSYNC_SOURCES__JIAOYU_FEED", "jiaoyu")
    return JiaoyuConnector(feed)  # type: ignore[arg-type]


FACTORIES: dict[str, Callable[[Settings], Connector]] = {
    "bianzhi": _bianzhi,
    "minzheng": _minzheng,
    "shichang": _shichang,
    "shenpi": _shenpi,
    "jiaoyu": _jiaoyu,
}


def build(name: str, settings: Settings) -> Connector:
    """A connector for source ``name``; unknown names and missing settings fail in one line."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise ConfigurationError(f"unknown source {name!r}; known: {', '.join(FACTORIES)}") from None
    return factory(settings)
