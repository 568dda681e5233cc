"""Command-log throughput: appends, signing, the whole receive path, the signature check alone
against ``cryptography`` (and PyNaCl when installed) in the same run, and the per-frame cost of
the pipeline at 1,000 commands/s. Workloads: :mod:`theta_ecs.bench.commandlog`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from theta_ecs.bench import commandlog
from theta_ecs.bench.workload import Workload

from .conftest import Board, quick


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "commandlog_workload" in metafunc.fixturenames:
        n, seconds = (1_000, 0.5) if quick(metafunc.config) else (10_000, 2.0)
        workloads = commandlog.all_workloads(n, seconds)
        metafunc.parametrize("commandlog_workload", workloads, ids=[w.name for w in workloads])


@pytest.fixture(autouse=True)
def _targets(board: Board) -> None:
    board.add_targets(commandlog.TARGETS)


def test_commandlog(benchmark: Any, run_workload: Callable[[Workload], object],
                    commandlog_workload: Workload) -> None:
    result = run_workload(commandlog_workload)
    if isinstance(result, dict):  # the pipeline's per-frame figures of its last round
        benchmark.extra_info.update(result)
    if commandlog_workload.unit == "entry" and benchmark.stats is not None:
        best = benchmark.stats.stats.min
        benchmark.extra_info["entries_per_s"] = commandlog_workload.per / best
