"""ECS workloads on theta_ecs, esper and plain numpy columns, measured in one run.

Workloads at ``n`` entities (per-entity nanoseconds):
- spawn: create entities with Position and Velocity (batch for theta, the idiomatic loop for esper)
- tick: Position += Velocity * dt (theta through the scheduler, with the fused Cython kernel;
  ``tick_numpy_expr`` is the same system written as a numpy expression)
- query3: Position += Velocity * Mass * dt over entities with all three (10% have Mass),
  per matching entity
- churn: add then remove a component on 10% of entities, per churned entity
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..component import Component
from ..kernels import integrate, integrate_scaled
from ..schedule import SystemContext
from ..world import World

DT = np.float32(1.0 / 60.0)
Position = Component("bench.Position", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Velocity = Component("bench.Velocity", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Mass = Component("bench.Mass", np.float32)
Tag = Component("bench.Tag", np.uint8)


def _best(fn: Callable[[], float], repeats: int) -> float:
    """Median of ``repeats`` timings (seconds) of ``fn``, which returns its own elapsed time."""
    return statistics.median(fn() for _ in range(repeats))


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- theta ------------------------------------------------------------------------------------
def bench_theta(n: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    pos = rng.standard_normal((n, 3)).astype(np.float32)
    vel = rng.standard_normal((n, 3)).astype(np.float32)
    out: dict[str, float] = {}

    def spawn() -> float:
        w = World()
        return _timed(lambda: w.spawn_batch({Position: pos, Velocity: vel}))

    out["spawn"] = _best(spawn, repeats) / n * 1e9

    world = World()
    ents = world.spawn_batch({Position: pos, Velocity: vel})

    def movement(ctx: SystemContext) -> None:
        for _, (p, v) in ctx.query(Position, Velocity):
            integrate(p, v, DT)

    def movement_numpy(ctx: SystemContext) -> None:
        for _, (p, v) in ctx.query(Position, Velocity):
            p += v * DT

    # The same system written as a numpy expression, for comparison with the fused kernel.
    expr_world = World()
    expr_world.spawn_batch({Position: pos, Velocity: vel})
    expr_world.add_system(movement_numpy, reads=[Velocity], writes=[Position])
    expr_world.step()
    out["tick_numpy_expr"] = _best(lambda: _timed(expr_world.step), repeats * 3) / n * 1e9

    world.add_system(movement, reads=[Velocity], writes=[Position])
    world.step()
    out["tick"] = _best(lambda: _timed(world.step), repeats * 3) / n * 1e9

    tenth = ents[::10]
    world.insert_batch(tenth, Mass, np.ones(len(tenth), np.float32))

    def query3() -> None:
        for _, (p, v, m) in world.query(Position, Velocity, Mass).iter(write=[Position]):
            integrate_scaled(p, v, m, DT)

    out["query3"] = _best(lambda: _timed(query3), repeats * 3) / len(tenth) * 1e9

    tags = np.ones(len(tenth), np.uint8)

    def churn() -> None:
        world.insert_batch(tenth, Tag, tags)
        world.remove_batch(tenth, Tag)

    out["churn"] = _best(lambda: _timed(churn), repeats) / len(tenth) * 1e9
    return out


# -- plain numpy: the floor for this layout -----------------------------------------------------
def bench_numpy(n: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    pos = rng.standard_normal((n, 3)).astype(np.float32)
    vel = rng.standard_normal((n, 3)).astype(np.float32)
    out: dict[str, float] = {}

    def spawn() -> tuple[np.ndarray, np.ndarray]:
        return pos.copy(), vel.copy()

    out["spawn"] = _best(lambda: _timed(spawn), repeats) / n * 1e9
    p, v = pos.copy(), vel.copy()

    def tick() -> None:
        nonlocal p
        p += v * DT

    out["tick"] = _best(lambda: _timed(tick), repeats * 3) / n * 1e9
    idx = np.arange(0, n, 10)
    mass = np.ones(len(idx), np.float32)

    def query3() -> None:
        p[idx] += v[idx] * (mass[:, None] * DT)

    out["query3"] = _best(lambda: _timed(query3), repeats * 3) / len(idx) * 1e9
    keep = np.ones(n, np.bool_)
    keep[idx] = False

    def churn() -> None:
        # Move the 10% rows into a second table and back: gather, compact, concatenate.
        moved = (p[idx], v[idx])
        rest = (p[keep], v[keep])
        np.concatenate([rest[0], moved[0]])
        np.concatenate([rest[1], moved[1]])

    out["churn"] = _best(lambda: _timed(churn), repeats) / len(idx) * 1e9
    return out


# -- esper -------------------------------------------------------------------------------------
@dataclass(slots=True)
class EPos:
    x: float
    y: float
    z: float


@dataclass(slots=True)
class EVel:
    x: float
    y: float
    z: float


@dataclass(slots=True)
class EMass:
    m: float


@dataclass(slots=True)
class ETag:
    t: int


def bench_esper(n: int, repeats: int) -> dict[str, float]:
    import esper

    rng = np.random.default_rng(1)
    pos = rng.standard_normal((n, 3)).tolist()
    vel = rng.standard_normal((n, 3)).tolist()
    dt = float(DT)
    out: dict[str, float] = {}

    def spawn() -> float:
        esper.clear_database()
        create = esper.create_entity
        t0 = time.perf_counter()
        for (px, py, pz), (vx, vy, vz) in zip(pos, vel):
            create(EPos(px, py, pz), EVel(vx, vy, vz))
        return time.perf_counter() - t0

    out["spawn"] = _best(spawn, max(1, repeats // 2)) / n * 1e9

    class Movement(esper.Processor):
        def process(self) -> None:
            for _, (p, v) in esper.get_components(EPos, EVel):
                p.x += v.x * dt
                p.y += v.y * dt
                p.z += v.z * dt

    esper.add_processor(Movement())
    esper.process()
    out["tick"] = _best(lambda: _timed(esper.process), repeats) / n * 1e9
    esper.remove_processor(Movement)

    ents = list(range(1, n + 1, 10))
    for e in ents:
        esper.add_component(e, EMass(1.0))

    def query3() -> None:
        for _, (p, v, m) in esper.get_components(EPos, EVel, EMass):
            p.x += v.x * m.m * dt
            p.y += v.y * m.m * dt
            p.z += v.z * m.m * dt

    out["query3"] = _best(lambda: _timed(query3), repeats) / len(ents) * 1e9

    def churn() -> None:
        add, remove = esper.add_component, esper.remove_component
        for e in ents:
            add(e, ETag(1))
        for e in ents:
            remove(e, ETag)

    out["churn"] = _best(lambda: _timed(churn), repeats) / len(ents) * 1e9
    esper.clear_database()
    return out


def bench_parallel(n: int, repeats: int) -> dict[str, float]:
    """Two independent systems per frame, serial vs on the thread pool (ms per frame).

    Both systems spend their time in GIL-releasing code (the Cython kernel and numpy ufuncs),
    which is the case the thread pool exists for.
    """
    rng = np.random.default_rng(2)
    out: dict[str, float] = {}
    for parallel in (False, True):
        world = World(parallel=parallel)
        world.spawn_batch(
            {
                Position: rng.standard_normal((n, 3)).astype(np.float32),
                Velocity: rng.standard_normal((n, 3)).astype(np.float32),
                Mass: rng.random(n).astype(np.float32),
            }
        )

        def movement(ctx: SystemContext) -> None:
            for _, (p, v) in ctx.query(Position, Velocity):
                integrate(p, v, DT)

        def decay(ctx: SystemContext) -> None:
            for _, (m,) in ctx.query(Mass):
                np.multiply(m, np.float32(0.999), out=m)
                np.sqrt(m, out=m)

        world.add_system(movement, reads=[Velocity], writes=[Position])
        world.add_system(decay, writes=[Mass])
        world.step()
        key = "parallel_ms" if parallel else "serial_ms"
        out[key] = statistics.median(_timed(world.step) for _ in range(repeats * 3)) * 1e3
        world.schedule.close()
    out["speedup"] = out["serial_ms"] / out["parallel_ms"]
    return out


TARGETS = {
    "tick_vs_numpy_max": 1.5,
    "tick_speedup_vs_esper_min": 100.0,
    "spawn_speedup_vs_esper_min": 20.0,
    "churn_speedup_vs_esper_min": 5.0,
}


def run(n: int = 1_000_000, repeats: int = 5) -> dict[str, Any]:
    results: dict[str, Any] = {
        "n": n,
        "unit": "ns/entity",
        "theta": bench_theta(n, repeats),
        "numpy": bench_numpy(n, repeats),
    }
    try:
        results["esper"] = bench_esper(n, max(1, repeats // 2))
    except ImportError:
        results["esper"] = None
    th, npy, es = results["theta"], results["numpy"], results["esper"]
    ratios: dict[str, float] = {"tick_vs_numpy": th["tick"] / npy["tick"]}
    if es:
        for key in ("tick", "spawn", "churn", "query3"):
            ratios[f"{key}_speedup_vs_esper"] = es[key] / th[key]
    results["ratios"] = ratios
    results["scheduler_threads"] = bench_parallel(n, repeats)
    if es:
        results["targets_met"] = {
            "tick_vs_numpy": ratios["tick_vs_numpy"] <= TARGETS["tick_vs_numpy_max"],
            "tick_vs_esper": ratios["tick_speedup_vs_esper"]
            >= TARGETS["tick_speedup_vs_esper_min"],
            "spawn_vs_esper": ratios["spawn_speedup_vs_esper"]
            >= TARGETS["spawn_speedup_vs_esper_min"],
            "churn_vs_esper": ratios["churn_speedup_vs_esper"]
            >= TARGETS["churn_speedup_vs_esper_min"],
        }
    return results


def format_table(results: dict[str, Any]) -> str:
    libs = [k for k in ("theta", "numpy", "esper") if results.get(k)]
    lines = [f"ECS workloads at n = {results['n']:,} (ns per entity; lower is better)"]
    lines.append(f"{'workload':<10}" + "".join(f"{lib:>14}" for lib in libs))
    for key in ("spawn", "tick", "query3", "churn"):
        lines.append(f"{key:<10}" + "".join(f"{results[lib][key]:>14.2f}" for lib in libs))
    for name, value in results["ratios"].items():
        lines.append(f"{name:<28}{value:>10.2f}x")
    par = results["scheduler_threads"]
    lines.append(
        f"two independent systems: serial {par['serial_ms']:.2f} ms, "
        f"thread pool {par['parallel_ms']:.2f} ms ({par['speedup']:.2f}x)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="theta bench ecs", description=__doc__)
    parser.add_argument("-n", "--entities", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    results = run(args.entities, args.repeats)
    text = json.dumps(results, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text if args.json else format_table(results))
    met = results.get("targets_met") or {}
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
