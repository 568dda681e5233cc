"""The benchmark machinery (never the benchmarks themselves, and no timing assertions): how
workloads are run and compared, and how the bandwidth gate judges and records a run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from theta_ecs.bench import bandwidth
from theta_ecs.bench.workload import Results, Target, Workload, as_dict, time_rounds


def _counting(fresh: bool, rounds: int | None = None) -> tuple[Workload, dict[str, int]]:
    calls = {"prepare": 0, "round": 0, "teardown": 0}

    def count(what: str) -> None:
        calls[what] += 1

    def prepare() -> Callable[[], None]:
        count("prepare")
        return lambda: count("round")

    w = Workload("g", "theta", 10, "call", prepare, fresh=fresh, rounds=rounds,
                 teardown=lambda: count("teardown"))
    return w, calls


def test_fresh_workloads_rebuild_their_state_before_every_round() -> None:
    w, calls = _counting(fresh=True)
    assert len(time_rounds(w, 4)) == 4
    assert calls == {"prepare": 4, "round": 4, "teardown": 1}


def test_reused_state_is_warmed_once_and_slow_workloads_are_capped() -> None:
    w, calls = _counting(fresh=False, rounds=2)
    assert len(time_rounds(w, 5)) == 2
    assert calls == {"prepare": 1, "round": 3, "teardown": 1}  # one untimed warm-up round


def _w(group: str, lib: str, per: int) -> Workload:
    return Workload(group, lib, per, "call", lambda: (lambda: None))


def test_ratios_compare_cost_per_item_and_targets_say_whether_they_hold() -> None:
    results = Results()
    results.add(_w("get", "theta", 10_000), best_s=0.002, median_s=0.003)   # 200 ns/call
    results.add(_w("get", "esper", 10_000), best_s=0.001, median_s=0.001)   # 100 ns/call
    results.add(_w("scheduler", "theta", 100), best_s=200e-6, median_s=250e-6)  # 2 us/system
    assert results.ns_per_item("get", "theta") == pytest.approx(200.0)
    assert results.ratios("get") == {"theta_over_esper": pytest.approx(2.0)}
    assert results.ratios("scheduler") == {}
    doc = as_dict(results, (Target("get", "esper"), Target("get", "esper", max_ratio=2.5),
                            Target("scheduler", max_ns=3_000.0), Target("tick", "numpy")))
    assert doc["targets_met"] == {"get_vs_esper": True, "scheduler_max_3000ns": True}
    tight = as_dict(results, (Target("get", "esper"),))
    assert tight["targets_met"] == {"get_vs_esper": False}  # 2x esper, allowed 1x
    assert doc["get"]["ns_per_item"] == {"theta": pytest.approx(200.0),
                                         "esper": pytest.approx(100.0)}


def _cubes(kbps: float) -> dict[str, Any]:
    return {"n": 901, "seconds": 10, "rate_hz": 60, "target_kbps": 256, "stretch_kbps": 128,
            "modes": {"full": {"kbps": kbps, "error_violations": 0}}}


def test_finish_writes_json_and_png_and_reports_a_regression(tmp_path: Path) -> None:
    out = tmp_path / "bandwidth.json"
    previous = {**bandwidth.new_result(), "cubes": _cubes(200.0)}
    ok = {**bandwidth.new_result(), "cubes": _cubes(205.0)}
    assert bandwidth.finish(ok, previous, out) == []
    assert json.loads(out.read_text())["cubes"]["modes"]["full"]["kbps"] == 205.0
    assert out.with_suffix(".png").stat().st_size > 1000
    worse = {**bandwidth.new_result(), "cubes": _cubes(230.0)}
    failures = bandwidth.finish(worse, previous, out)
    assert failures == ["regression cubes.full.kbps: 200.0 -> 230.0 (+15.0%)"]
    assert json.loads(out.read_text())["regressions"] == [failures[0][len("regression "):]]


def test_a_client_outside_the_error_bound_fails_the_run(tmp_path: Path) -> None:
    bad = {**bandwidth.new_result(), "cubes": _cubes(100.0)}
    bad["cubes"]["modes"]["full"]["error_violations"] = 3
    assert bandwidth.finish(bad, None, tmp_path / "b.json") == [
        "cubes full: client state outside the quantization error on 3 checks"]


def test_interest_saving_needs_both_crowd_modes() -> None:
    one = {"modes": {"with_interest": {"bytes_per_s_per_client": 10.0}}}
    assert "interest_saving" not in bandwidth.with_interest_saving(one)
    both = {"modes": {"with_interest": {"bytes_per_s_per_client": 10.0},
                      "without_interest": {"bytes_per_s_per_client": 250.0}}}
    assert bandwidth.with_interest_saving(both)["interest_saving"] == 25.0
