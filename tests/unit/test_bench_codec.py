"""The codec micro-benchmark measures real round trips of the golden event (no timing asserted here)."""

from __future__ import annotations

from bench.codec import measure


def test_measure_reports_every_path_for_the_framed_event():
    figures = measure(events=20, repeat=1)
    assert figures["payload_bytes"] > 5  # header + body
    assert set(figures["rates"]) == {"encode", "decode", "encode_model", "decode_model"}
    assert all(rate > 0 for rate in figures["rates"].values())
