"""The nightly bandwidth run as a suite: Glenn Fiedler's 901 cubes with each optimisation in
turn, and the 10,000-agent crowd with and without interest management, through the replicator
over the impaired loopback link; then the 10k-entity delta encode/decode/capture timings.

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


def test_report(previous: dict[str, Any] | None, out_path: Path, request: pytest.FixtureRequest,
                progress: Callable[[str], None]) -> None:
    """Writes the JSON and PNG; fails on a bandwidth regression or a client outside the error."""
    if "cubes" not in _RUN and "crowd" not in _RUN:
        pytest.skip("no scene ran in this session (deselected)")
    if "crowd" in _RUN:
        bandwidth.with_interest_saving(_RUN["crowd"])
        _RUN["timing"] = bandwidth.run_encode_timing(
            n=2_000 if quick(request.config) else 10_000)
    failures = bandwidth.finish(_RUN, previous, out_path)
    for line in bandwidth.table(_RUN).splitlines():
        progress(line)
    progress(f"wrote {out_path} and {out_path.with_suffix('.png')}")
    assert not failures, "\n".join(failures)
