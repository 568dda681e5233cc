"""The nightly bandwidth suite's real-QUIC row for cubes (benchmarks/test_bandwidth.py): it is
reported next to the loopback model's figure and gated like the model's (5% worse fails)."""

from __future__ import annotations

from typing import Any

from benchmarks.test_bandwidth import _real_quic_regression, _real_quic_row

PATH = "UDP relay: 50 ms each way, 1% loss each way (the loopback model's path)"


def row(kbps: float, seconds: float = 10.0, path: str = PATH) -> dict[str, Any]:
    return {"wire_down_kbps": kbps, "wire_up_kbps": 38.0, "session_state_kbps": 45.0,
            "replicator_kbps": 42.0, "seconds": seconds, "path": path}


def test_the_row_sits_next_to_the_loopback_model_figure() -> None:
    run = {"cubes": {"modes": {"full": {"kbps": 217.1, "in_envelope_kbps": 252.9}}},
           "cubes_real_quic": row(76.5)}
    (line,) = _real_quic_row(run)
    assert "wire 76.5 kbit/s down" in line and "loopback model (full): 217.1" in line
    assert run["cubes_real_quic"]["loopback_model_full_kbps"] == 217.1
    assert _real_quic_row({}) == []


def test_more_than_five_percent_more_bytes_on_the_wire_is_a_regression() -> None:
    previous = {"cubes_real_quic": row(75.0)}
    assert _real_quic_regression(previous, {"cubes_real_quic": row(78.7)}) == []
    (failure,) = _real_quic_regression(previous, {"cubes_real_quic": row(79.0)})
    assert "75.0 -> 79.0" in failure
    # runs that cannot be compared (another duration or path, no previous row) are not judged
    assert _real_quic_regression(previous, {"cubes_real_quic": row(99.0, seconds=3.0)}) == []
    assert _real_quic_regression(previous, {"cubes_real_quic": row(99.0, path="x")}) == []
    assert _real_quic_regression(None, {"cubes_real_quic": row(99.0)}) == []
