"""Shared parts of the benchmark suites: size options, the board that turns the peers' results
into ratios in ``benchmark.extra_info``, and progress lines on the terminal.

``pytest benchmarks`` runs every suite; ``make bench`` runs each with saving and comparison
against the previous run. The test suite (``testpaths = tests``) never collects these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from theta_ecs.bench.workload import Results, Target, Workload

_BOARD = pytest.StashKey["Board"]()
DEFAULT_FRESH_ROUNDS = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("theta", "theta benchmark sizes")
    group.addoption("--bench-entities", type=int, default=1_000_000,
                    help="entities for the vectorized ECS rows (default 1,000,000)")
    group.addoption("--bench-quick", action="store_true",
                    help="small sizes and short runs: a smoke run of every suite")
    group.addoption("--bandwidth-out", default="benchmarks/results/bandwidth.json",
                    help="where the bandwidth JSON (and its .png) go")
    group.addoption("--bandwidth-previous", default=None,
                    help="the previous bandwidth JSON to gate on (default: --bandwidth-out as "
                         "it was before this run)")


def quick(config: pytest.Config) -> bool:
    return bool(config.getoption("--bench-quick"))


class Board:
    """Results of every workload in this run; fills theta's ratios against the peers of its
    group (whichever runs first) and whether each target was met."""

    def __init__(self) -> None:
        self.results = Results()
        self.infos: dict[tuple[str, str], dict[str, Any]] = {}
        self.targets: list[Target] = []
        self.units: dict[str, str] = {}

    def add_targets(self, targets: tuple[Target, ...]) -> None:
        self.targets.extend(t for t in targets if t not in self.targets)

    def record(self, w: Workload, benchmark: Any) -> None:
        info = benchmark.extra_info
        info.update(group=w.group, lib=w.lib, items_per_round=w.per, unit=w.unit)
        if w.note:
            info["note"] = w.note
        if benchmark.stats is None:  # --benchmark-disable: ran once, nothing measured
            return
        stats = benchmark.stats.stats
        self.results.add(w, stats.min, stats.median)
        self.units[w.group] = w.unit
        info[f"ns_per_{w.unit}"] = stats.min / w.per * 1e9
        info[f"median_ns_per_{w.unit}"] = stats.median / w.per * 1e9
        self.infos[(w.group, w.lib)] = info
        self._refresh(w.group)

    def _refresh(self, group: str) -> None:
        info = self.infos.get((group, "theta"))
        if info is None:
            return
        info.update(self.results.ratios(group))
        theta_ns = self.results.ns_per_item(group, "theta")
        for t in self.targets:
            if t.group != group:
                continue
            if t.peer is None:
                info[f"target_{t.key}"] = t.met(theta_ns)
            elif (group, t.peer) in self.infos:
                info[f"target_{t.key}"] = t.met(
                    theta_ns, self.results.ns_per_item(group, t.peer))

    def summary(self) -> Iterator[str]:
        for group, row in self.results.best.items():
            unit = self.units[group]
            cells = ", ".join(f"{lib} {self.results.ns_per_item(group, lib):,.1f}"
                              for lib in row)
            ratios = ", ".join(f"{k} {v:.3g}" for k, v in self.results.ratios(group).items())
            yield f"{group:<30} ns/{unit}: {cells}" + (f"   [{ratios}]" if ratios else "")
        for t in self.targets:
            info = self.infos.get((t.group, "theta"), {})
            if f"target_{t.key}" in info:
                yield f"target {t.key}: {'met' if info[f'target_{t.key}'] else 'NOT met'}"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_BOARD] = Board()


@pytest.fixture
def board(request: pytest.FixtureRequest) -> Board:
    return request.config.stash[_BOARD]


@pytest.fixture
def progress(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print a line on the terminal now, even while output is captured (long runs)."""
    config = request.config
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            reporter.write_line(line)

    return say


@pytest.fixture
def run_workload(benchmark: Any, board: Board) -> Callable[[Workload], object]:
    """Time a workload with pytest-benchmark (fresh state per round where it needs it)."""

    def run(w: Workload) -> object:
        benchmark.group = w.group
        try:
            if w.fresh:
                result = benchmark.pedantic(
                    lambda fn: fn(), setup=lambda: ((w.prepare(),), {}),
                    rounds=w.rounds or DEFAULT_FRESH_ROUNDS, iterations=1)
            else:
                fn = w.prepare()
                if w.rounds:
                    result = benchmark.pedantic(fn, rounds=w.rounds, iterations=1,
                                                warmup_rounds=1)
                else:
                    result = benchmark(fn)
        finally:
            if w.teardown is not None:
                w.teardown()
        board.record(w, benchmark)
        return result

    return run


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = list(config.stash[_BOARD].summary())
    if lines:
        terminalreporter.section("theta vs peers (best round per item)")
        for line in lines:
            terminalreporter.write_line(line)
