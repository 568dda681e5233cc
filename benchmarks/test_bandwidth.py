"""The nightly bandwidth run as a suite: Glenn Fiedler's 901 cubes with each optimisation in
turn, and the 10,000-agent crowd with and without interest management, through the replicator
over the impaired loopback link; then the 10k-entity delta encode/decode/capture timings; and
the "real QUIC" row for cubes: one client of the cubes server over real QUIC through a UDP relay
giving the loopback model's path (100 ms RTT, 1% loss each way), its bytes on the wire (QUIC
framing included) next to the loopback model's figure (``cubes_real_quic`` in the JSON).

Each scene run is one benchmark (its kbit/s in ``extra_info``); the last test writes
``benchmarks/results/bandwidth.json`` and ``.png`` (same meaning as ``theta bench bandwidth``)
and fails when the client state left the quantization error or a bandwidth figure is more than
5% worse than the previous JSON (``--bandwidth-previous``, default: the file before this run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from theta_ecs.bench import bandwidth

from .conftest import quick

_RUN: dict[str, Any] = bandwidth.new_result()


@pytest.fixture(scope="module")
def previous(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """The previous JSON, read before this run overwrites it."""
    option = request.config.getoption("--bandwidth-previous")
    path = Path(option or request.config.getoption("--bandwidth-out"))
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def out_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if quick(request.config):  # a smoke run never replaces the real results
        return tmp_path_factory.mktemp("bandwidth") / "bandwidth.json"
    return Path(request.config.getoption("--bandwidth-out"))


def _merge(section: str, part: dict[str, Any]) -> None:
    whole = _RUN.setdefault(section, {**part, "modes": {}})
    whole["modes"].update(part["modes"])
    if part.get("dictionary"):
        whole["dictionary"] = part["dictionary"]


@pytest.mark.parametrize("mode", bandwidth.CUBE_MODES)
def test_cubes(benchmark: Any, progress: Callable[[str], None], request: pytest.FixtureRequest,
               mode: str) -> None:
    seconds = 2.0 if quick(request.config) else 10.0
    benchmark.group = "bandwidth_cubes"
    part = benchmark.pedantic(bandwidth.run_cubes, kwargs={
        "seconds": seconds, "modes": (mode,), "log": progress}, rounds=1, iterations=1)
    _merge("cubes", part)
    benchmark.extra_info.update(part["modes"][mode])


@pytest.mark.parametrize("mode", bandwidth.CROWD_MODES)
def test_crowd(benchmark: Any, progress: Callable[[str], None], request: pytest.FixtureRequest,
               mode: str) -> None:
    seconds, n = (2.0, 2_000) if quick(request.config) else (20.0, 10_000)
    benchmark.group = "bandwidth_crowd"
    part = benchmark.pedantic(bandwidth.run_crowd, kwargs={
        "seconds": seconds, "n": n, "modes": (mode,), "log": progress}, rounds=1, iterations=1)
    _merge("crowd", part)
    benchmark.extra_info.update(part["modes"][mode])


@pytest.fixture(scope="module")
def case(request: pytest.FixtureRequest) -> bandwidth.EncodeCase:
    return bandwidth.encode_case(2_000 if quick(request.config) else 10_000)


@pytest.mark.parametrize("step", ["encode", "decode", "capture"])
def test_delta(benchmark: Any, case: bandwidth.EncodeCase, step: str) -> None:
    """One 10k-entity crowd delta + zstd (target: encode within 2 ms)."""
    benchmark.group = "crowd_delta"
    benchmark(getattr(case, step))
    benchmark.extra_info.update(entities=len(case.cur.entities), packet_bytes=len(case.packet))
    if step == "encode":
        benchmark.extra_info["target_ms"] = 2.0


def test_cubes_real_quic(benchmark: Any, progress: Callable[[str], None],
                        request: pytest.FixtureRequest) -> None:
    """Cubes over real QUIC on 127.0.0.1 through the model's path: UDP payload kbit/s each way
    (QUIC framing, acks and heartbeats included), the session's STATE and the replicator's."""
    import asyncio

    from net_support import ServerWorker, UdpRelay, cubes_wire_figures

    seconds = 3.0 if quick(request.config) else 10.0
    benchmark.group = "bandwidth_cubes"
    worker = ServerWorker(rate=60.0)
    try:
        row = benchmark.pedantic(lambda: asyncio.run(cubes_wire_figures(
            worker, UdpRelay(worker.port, delay=0.05, loss=0.01, seed=1), seconds)),
            rounds=1, iterations=1)
    finally:
        worker.close()
    row["path"] = "UDP relay: 50 ms each way, 1% loss each way (the loopback model's path)"
    _RUN["cubes_real_quic"] = row
    benchmark.extra_info.update(row)
    progress(f"cubes over real QUIC: {row['wire_down_kbps']} kbit/s down on the wire, "
             f"{row['session_state_kbps']} of session STATE, {row['replicator_kbps']} from the "
             f"replicator, {row['ticks_per_s']} ticks/s")
    assert row["wire_down_kbps"] >= row["session_state_kbps"] > 0


def _real_quic_row(run: dict[str, Any]) -> list[str]:
    """The real-QUIC row, next to this run's loopback-model figures for cubes."""
    row = run.get("cubes_real_quic")
    if not row:
        return []
    modes = run.get("cubes", {}).get("modes", {})
    full = modes.get("full", {})
    row["loopback_model_full_kbps"] = full.get("kbps")
    row["loopback_model_in_envelope_kbps"] = full.get("in_envelope_kbps")
    model = (f"; loopback model (full): {full['kbps']:.1f} kbit/s, "
             f"{full.get('in_envelope_kbps', 0):.1f} in envelopes" if full else "")
    return [f"cubes real QUIC (100 ms RTT, 1% loss, UDP relay): wire {row['wire_down_kbps']:.1f} "
            f"kbit/s down / {row['wire_up_kbps']:.1f} up, session STATE "
            f"{row['session_state_kbps']:.1f}, replicator {row['replicator_kbps']:.1f}{model}"]


def _real_quic_regression(previous: dict[str, Any] | None, run: dict[str, Any]) -> list[str]:
    """The real-QUIC wire figure more than 5% above the previous run's on the same path and
    duration (the loopback figures are gated by theta_ecs.bench.bandwidth)."""
    old, new = (previous or {}).get("cubes_real_quic"), run.get("cubes_real_quic")
    if not old or not new or old.get("path") != new.get("path"):
        return []
    if abs(old["seconds"] - new["seconds"]) > 1.0 or old["wire_down_kbps"] <= 0:
        return []
    ratio = new["wire_down_kbps"] / old["wire_down_kbps"]
    if ratio <= 1 + bandwidth.REGRESSION:
        return []
    return [f"regression cubes_real_quic.wire_down_kbps: {old['wire_down_kbps']:.1f} -> "
            f"{new['wire_down_kbps']:.1f} (+{(ratio - 1) * 100:.1f}%)"]


def test_report(previous: dict[str, Any] | None, out_path: Path, request: pytest.FixtureRequest,
                progress: Callable[[str], None]) -> None:
    """Writes the JSON and PNG; fails on a bandwidth regression or a client outside the error."""
    if "cubes" not in _RUN and "crowd" not in _RUN and "cubes_real_quic" not in _RUN:
        pytest.skip("no scene ran in this session (deselected)")
    quic_lines = _real_quic_row(_RUN)
    quic_regressions = _real_quic_regression(previous, _RUN)
    if "crowd" in _RUN:
        bandwidth.with_interest_saving(_RUN["crowd"])
        _RUN["timing"] = bandwidth.run_encode_timing(
            n=2_000 if quick(request.config) else 10_000)
    failures = bandwidth.finish(_RUN, previous, out_path)
    for line in [*bandwidth.table(_RUN).splitlines(), *quic_lines]:
        progress(line)
    progress(f"wrote {out_path} and {out_path.with_suffix('.png')}")
    failures += quic_regressions
    assert not failures, "\n".join(failures)
