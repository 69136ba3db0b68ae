"""The codec micro-benchmark measures real round trips of the golden event (no timing asserted here)."""

from __future__ import annotations

from bench.codec import BATCH_SIZES, measure

PATHS = {"encode", "decode", "encode_model", "decode_model"}


def test_measure_reports_every_path_for_the_framed_event():
    figures = measure(events=20, repeat=1)
    assert figures["payload_bytes"] > 5  # header + body
    # every path beside its pre-issue-12 baseline, timed in the same run, and the batch paths
    batches = {
        f"{kind}_{size}" for kind in ("encode_many", "decode_many", "decode_array") for size in BATCH_SIZES
    }
    assert set(figures["rates"]) == (
        PATHS
        | {f"{p}_baseline" for p in PATHS}
        | {"encode_plain_dict", "encode_public_api", "decode_public_api"}
        | {"encode_typical", "decode_typical"}
        | batches
    )
    # the typical events are the synthetic month's, smaller than the golden one with every field set
    assert 5 < figures["typical_payload_bytes"] < figures["payload_bytes"]
    assert all(rate > 0 for rate in figures["rates"].values())
