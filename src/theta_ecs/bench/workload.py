"""A benchmark workload defined once and timed by two runners: pytest-benchmark (the suites
under ``benchmarks/``) and the ``theta bench`` command (a plain median-of-N loop).

A workload belongs to a ``group`` (one row of a comparison table, e.g. ``tick``) and a ``lib``
(``theta`` or a peer such as ``esper`` or ``numpy``); workloads of one group do the same work,
so their times compare directly.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Round = Callable[[], object]


@dataclass(frozen=True)
class Workload:
    """One measured operation: ``prepare()`` builds the state (untimed) and returns the round.

    ``per`` is how many items (entities, calls, systems) one round handles, in ``unit``s, so a
    round's time divided by ``per`` is the cost per item. With ``fresh`` the state is rebuilt
    before every round (spawning into a fresh world); otherwise rounds repeat on one state.
    ``rounds`` caps the rounds of slow workloads (a million esper entities take seconds).
    """

    group: str
    lib: str
    per: int
    unit: str
    prepare: Callable[[], Round]
    fresh: bool = False
    rounds: int | None = None
    teardown: Callable[[], None] | None = None
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.group}[{self.lib}]"


@dataclass(frozen=True)
class Target:
    """A goal for theta in a group: against a peer (``theta / peer <= max_ratio``) or, with no
    peer, an absolute cost (``theta ns per item <= max_ns``)."""

    group: str
    peer: str | None = None
    max_ratio: float = 1.0
    max_ns: float = 0.0

    @property
    def key(self) -> str:
        if self.peer:
            return f"{self.group}_vs_{self.peer}"
        return f"{self.group}_max_{self.max_ns:g}ns"

    def met(self, theta_ns: float, peer_ns: float | None = None) -> bool:
        if self.peer is None:
            return theta_ns <= self.max_ns
        return peer_ns is not None and theta_ns <= peer_ns * self.max_ratio


@dataclass
class Results:
    """Seconds per round (best and median) by group and lib, and the ratios they imply."""

    best: dict[str, dict[str, float]] = field(default_factory=dict)
    median: dict[str, dict[str, float]] = field(default_factory=dict)
    per: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, w: Workload, best_s: float, median_s: float) -> None:
        self.best.setdefault(w.group, {})[w.lib] = best_s
        self.median.setdefault(w.group, {})[w.lib] = median_s
        self.per.setdefault(w.group, {})[w.lib] = w.per

    def ns_per_item(self, group: str, lib: str) -> float:
        return self.best[group][lib] / self.per[group][lib] * 1e9

    def ratios(self, group: str, lib: str = "theta") -> dict[str, float]:
        """``lib``'s time per item over each other lib's in ``group`` (below 1: ``lib`` faster)."""
        row = self.best.get(group, {})
        if lib not in row:
            return {}
        mine = self.ns_per_item(group, lib)
        return {
            f"{lib}_over_{other}": mine / self.ns_per_item(group, other)
            for other in row
            if other != lib and self.ns_per_item(group, other) > 0
        }


def time_rounds(w: Workload, repeats: int) -> list[float]:
    """The plain runner: ``repeats`` timed rounds (after one untimed warm-up when reusable)."""
    n = min(repeats, w.rounds) if w.rounds else repeats
    times: list[float] = []
    fn = None if w.fresh else w.prepare()
    if fn is not None:
        fn()
    try:
        for _ in range(n):
            if w.fresh:
                fn = w.prepare()
            assert fn is not None
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if w.teardown is not None:
            w.teardown()
    return times


def run_all(
    workloads: Iterable[Workload], repeats: int, log: Callable[[str], None] | None = None
) -> Results:
    results = Results()
    for w in workloads:
        times = time_rounds(w, repeats)
        results.add(w, min(times), statistics.median(times))
        if log is not None:
            log(f"  {w.name:<28} {results.ns_per_item(w.group, w.lib):12.1f} ns/{w.unit}")
    return results


def as_dict(results: Results, targets: Iterable[Target] = ()) -> dict[str, Any]:
    """Per group: ns per item for each lib, theta's ratios, and which targets were met."""
    out: dict[str, Any] = {}
    for group, row in results.best.items():
        out[group] = {
            "ns_per_item": {lib: results.ns_per_item(group, lib) for lib in row},
            "ratios": results.ratios(group),
        }
    met = {}
    for t in targets:
        row = results.best.get(t.group, {})
        if "theta" not in row or (t.peer is not None and t.peer not in row):
            continue
        peer_ns = results.ns_per_item(t.group, t.peer) if t.peer else None
        met[t.key] = t.met(results.ns_per_item(t.group, "theta"), peer_ns)
    out["targets_met"] = met
    return out
