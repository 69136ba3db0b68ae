"""The gate's cheap old-name pre-check never misses an address the full resolver reads by an old name."""

from __future__ import annotations

from bench.routing import load_corpus
from schemas.divisions import mentions_historical_name, resolve_address


def _addresses() -> list[str]:
    rows = [case.address for case in load_corpus()]
    # Old names the change history maps forward, in several written forms.
    extra = [
        "山东省莱芜市莱城区凤城街道1号",
        "临沂市苍山县卞庄街道",
        "清远市清新县太和镇",
        "聊城市茌平县振兴路",
    ]
    return rows + extra


def test_no_false_negatives_over_the_corpus():
    historical = 0
    for address in _addresses():
        if "historical_name" in resolve_address(address).notes:
            historical += 1
            assert mentions_historical_name(address), address
    assert historical >= 5  # the corpus does exercise old names


def test_plain_current_addresses_are_cleared_without_resolving():
    assert not mentions_historical_name("山东省济南市历下区泉城路1号")
    assert not mentions_historical_name("")
    assert not mentions_historical_name(None)
