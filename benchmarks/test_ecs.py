"""The ECS against esper 3.9 and plain numpy in one run: vectorized rows at
``--bench-entities`` (1M by default), per-entity rows at 10,000 entities one call at a time,
and the scheduler's cost per system (100 trivial systems). Ratios (``theta_over_<peer>``) and
targets land in each theta benchmark's ``extra_info``; the workloads live in
:mod:`theta_ecs.bench.ecs` (``theta bench ecs`` runs the same ones without pytest)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from theta_ecs.bench import ecs
from theta_ecs.bench.workload import Workload

from .conftest import Board, quick


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    n = 20_000 if quick(config) else config.getoption("--bench-entities")
    per_entity = 2_000 if quick(config) else ecs.PER_ENTITY_N
    peers = ecs.esper_available()
    rows: dict[str, list[Workload]] = {
        "vectorized": ecs.numpy_workloads(n)
        + (ecs.esper_workloads(n) if peers else [])
        + ecs.theta_workloads(n) + ecs.theta_threads_workloads(n),
        "per_entity": (ecs.esper_per_entity_workloads(per_entity) if peers else [])
        + ecs.theta_per_entity_workloads(per_entity),
        "scheduler": (ecs.esper_scheduler_workloads() if peers else [])
        + ecs.theta_scheduler_workloads(),
    }
    for kind, workloads in rows.items():
        if f"{kind}_workload" in metafunc.fixturenames:
            metafunc.parametrize(f"{kind}_workload", workloads, ids=[w.name for w in workloads])


@pytest.fixture(autouse=True)
def _targets(board: Board) -> None:
    board.add_targets(ecs.TARGETS)


def test_vectorized(run_workload: Callable[[Workload], object],
                    vectorized_workload: Workload) -> None:
    run_workload(vectorized_workload)


def test_per_entity(run_workload: Callable[[Workload], object],
                    per_entity_workload: Workload) -> None:
    run_workload(per_entity_workload)


def test_scheduler(run_workload: Callable[[Workload], object],
                   scheduler_workload: Workload) -> None:
    run_workload(scheduler_workload)
