"""ECS workloads on theta_ecs, esper 3.9 and plain numpy columns, measured in one run.

Vectorized rows at ``n`` entities (cost per entity):
- spawn: create entities with Position and Velocity (batch for theta, the idiomatic loop for esper)
- tick: Position += Velocity * dt (theta through the scheduler with the fused Cython kernel;
  ``theta_expr`` is the same system written as a numpy expression)
- query3: Position += Velocity * Mass * dt over the 10% of entities that have Mass
- churn: add then remove a component on 10% of entities, per churned entity
- two_systems: two independent GIL-releasing systems on the thread pool vs serially

Per-entity rows at 10,000 entities, one call at a time (cost per call), against esper:
- get: read a component value (esper ``component_for_entity``)
- set: write a 3-float value (esper ``component_for_entity`` and three attribute writes)
- insert_remove: add then remove a component (esper ``add_component`` + ``remove_component``)
- spawn_one: create one entity with Position and Velocity (esper ``create_entity``)

Scheduler rows, one frame of 100 systems (cost per system; esper: 100 processors): systems that
do nothing (``scheduler``), and systems that each iterate their query over 100 entities
(``scheduler_query``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..component import Component
from ..kernels import integrate, integrate_scaled
from ..schedule import SystemContext
from ..world import World
from .workload import Results, Round, Target, Workload, as_dict, run_all

DT = np.float32(1.0 / 60.0)
Position = Component("bench.Position", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Velocity = Component("bench.Velocity", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Mass = Component("bench.Mass", np.float32)
Tag = Component("bench.Tag", np.uint8)

PER_ENTITY_N = 10_000
SCHEDULER_SYSTEMS = 100

TARGETS = (
    Target("tick", "numpy", max_ratio=1.5),
    Target("tick", "esper", max_ratio=1 / 100),
    Target("spawn", "esper", max_ratio=1 / 20),
    Target("churn", "esper", max_ratio=1 / 5),
    Target("get", "esper"),
    Target("set", "esper"),
    Target("insert_remove", "esper"),
    Target("spawn_one", "esper"),
    Target("scheduler", max_ns=3_000.0),
)


def _columns(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3)).astype(np.float32),
            rng.standard_normal((n, 3)).astype(np.float32))


def _movement(ctx: SystemContext) -> None:
    for _, (p, v) in ctx.query(Position, Velocity):
        integrate(p, v, DT)


def _movement_expr(ctx: SystemContext) -> None:
    for _, (p, v) in ctx.query(Position, Velocity):
        p += v * DT


def as_floats(value: Any) -> tuple[float, ...]:
    """A 3-float component value as returned by ``World.get``, whatever its form (an array, a
    tuple, or an accessor with x/y/z attributes), so the get row holds for each of them."""
    if all(hasattr(value, a) for a in ("x", "y", "z")):
        return (float(value.x), float(value.y), float(value.z))
    return tuple(float(v) for v in value)


# -- theta ------------------------------------------------------------------------------------
def theta_workloads(n: int) -> list[Workload]:
    pos, vel = _columns(n)
    tenth = max(1, n // 10)

    def spawn() -> Round:
        w = World()
        return lambda: w.spawn_batch({Position: pos, Velocity: vel})

    def tick(system: Callable[[SystemContext], None]) -> Callable[[], Round]:
        def prepare() -> Round:
            w = World()
            w.spawn_batch({Position: pos, Velocity: vel})
            w.add_system(system, reads=[Velocity], writes=[Position])
            return w.step

        return prepare

    def mass_world() -> tuple[World, Any]:
        w = World()
        ents = w.spawn_batch({Position: pos, Velocity: vel})
        sub = ents[::10]
        w.insert_batch(sub, Mass, np.ones(len(sub), np.float32))
        return w, sub

    def query3() -> Round:
        w, _ = mass_world()

        def run() -> None:
            for _, (p, v, m) in w.query(Position, Velocity, Mass).iter(write=[Position]):
                integrate_scaled(p, v, m, DT)

        return run

    def churn() -> Round:
        w, sub = mass_world()
        tags = np.ones(len(sub), np.uint8)

        def run() -> None:
            w.insert_batch(sub, Tag, tags)
            w.remove_batch(sub, Tag)

        return run

    return [
        Workload("spawn", "theta", n, "entity", spawn, fresh=True),
        Workload("tick", "theta", n, "entity", tick(_movement)),
        Workload("tick", "theta_expr", n, "entity", tick(_movement_expr),
                 note="the same system as a numpy expression instead of the fused kernel"),
        Workload("query3", "theta", tenth, "entity", query3),
        Workload("churn", "theta", tenth, "entity", churn),
    ]


def theta_threads_workloads(n: int) -> list[Workload]:
    """Two independent systems whose time is spent in GIL-releasing code (the Cython kernel and
    numpy ufuncs), the case the thread pool exists for: pool ("theta") vs serial."""
    rng = np.random.default_rng(2)
    cols = {
        Position: rng.standard_normal((n, 3)).astype(np.float32),
        Velocity: rng.standard_normal((n, 3)).astype(np.float32),
        Mass: rng.random(n).astype(np.float32),
    }
    worlds: list[World] = []

    def decay(ctx: SystemContext) -> None:
        for _, (m,) in ctx.query(Mass):
            np.multiply(m, np.float32(0.999), out=m)
            np.sqrt(m, out=m)

    def prepare(parallel: bool) -> Callable[[], Round]:
        def build() -> Round:
            w = World(parallel=parallel)
            worlds.append(w)
            w.spawn_batch(cols)
            w.add_system(_movement, reads=[Velocity], writes=[Position])
            w.add_system(decay, writes=[Mass])
            return w.step

        return build

    def close() -> None:
        while worlds:
            worlds.pop().schedule.close()

    return [
        Workload("two_systems", "theta", 1, "frame", prepare(True), teardown=close),
        Workload("two_systems", "serial", 1, "frame", prepare(False), teardown=close),
    ]


def theta_per_entity_workloads(n: int = PER_ENTITY_N) -> list[Workload]:
    pos, vel = _columns(n)

    def world_and_ids() -> tuple[World, list[int]]:
        w = World()
        ents = w.spawn_batch({Position: pos, Velocity: vel})
        return w, [int(e) for e in ents]

    def get() -> Round:
        w, ents = world_and_ids()
        if as_floats(w.get(ents[0], Position)) != tuple(float(x) for x in pos[0]):
            raise AssertionError("World.get returned the wrong value")
        get_ = w.get

        def run() -> None:
            for e in ents:
                get_(e, Position)

        return run

    def set_() -> Round:
        w, ents = world_and_ids()
        put = w.set
        value = (1.0, 2.0, 3.0)

        def run() -> None:
            for e in ents:
                put(e, Position, value)

        return run

    def insert_remove() -> Round:
        w, ents = world_and_ids()
        insert, remove = w.insert, w.remove

        def run() -> None:
            for e in ents:
                insert(e, Tag, 1)
                remove(e, Tag)

        return run

    def spawn_one() -> Round:
        w = World()
        spawn = w.spawn
        zero = (0.0, 0.0, 0.0)

        def run() -> None:
            for _ in range(n):
                spawn({Position: zero, Velocity: zero})

        return run

    return [
        Workload("get", "theta", n, "call", get),
        Workload("set", "theta", n, "call", set_),
        Workload("insert_remove", "theta", n, "call", insert_remove),
        Workload("spawn_one", "theta", n, "call", spawn_one, fresh=True),
    ]


def theta_scheduler_workloads(systems: int = SCHEDULER_SYSTEMS) -> list[Workload]:
    """``scheduler``: systems that do nothing (the scheduler's own cost per system);
    ``scheduler_query``: each system iterates its declared query over 100 entities."""

    def prepare(query: bool) -> Callable[[], Round]:
        def build() -> Round:
            w = World()
            w.spawn_batch({Position: np.zeros((100, 3), np.float32),
                           Velocity: np.zeros((100, 3), np.float32)})

            def touch(ctx: SystemContext) -> None:
                for _ in ctx.query(Position, Velocity):
                    pass

            for i in range(systems):
                if query:
                    w.add_system(touch, name=f"touch_{i}", reads=[Velocity], writes=[Position])
                else:
                    w.add_system(lambda ctx: None, name=f"trivial_{i}")
            w.step()
            return w.step

        return build

    return [Workload("scheduler", "theta", systems, "system", prepare(False)),
            Workload("scheduler_query", "theta", systems, "system", prepare(True))]


# -- plain numpy: the floor for this layout -----------------------------------------------------
def numpy_workloads(n: int) -> list[Workload]:
    pos, vel = _columns(n)
    tenth = np.arange(0, n, 10)

    def spawn() -> Round:
        return lambda: (pos.copy(), vel.copy())

    def tick() -> Round:
        p, v = pos.copy(), vel.copy()

        def run() -> None:
            np.add(p, v * DT, out=p)

        return run

    def query3() -> Round:
        p, v = pos.copy(), vel.copy()
        mass = np.ones(len(tenth), np.float32)

        def run() -> None:
            p[tenth] += v[tenth] * (mass[:, None] * DT)

        return run

    def churn() -> Round:
        p, v = pos.copy(), vel.copy()
        keep = np.ones(n, np.bool_)
        keep[tenth] = False

        def run() -> None:
            # Move the 10% rows into a second table and back: gather, compact, concatenate.
            np.concatenate([p[keep], p[tenth]])
            np.concatenate([v[keep], v[tenth]])

        return run

    return [
        Workload("spawn", "numpy", n, "entity", spawn),
        Workload("tick", "numpy", n, "entity", tick),
        Workload("query3", "numpy", len(tenth), "entity", query3),
        Workload("churn", "numpy", len(tenth), "entity", churn),
    ]


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


def _esper_world(name: str) -> Any:
    """esper keeps its database in module state: give each workload a fresh world of its own."""
    import esper

    name = f"theta-bench-{name}"
    esper.switch_world("default")
    if name in esper.list_worlds():
        esper.delete_world(name)
    esper.switch_world(name)
    return esper


def _esper_done() -> None:
    """Drop the benchmark worlds (a million entities' worth of objects) and go back to default."""
    import esper

    esper.switch_world("default")
    for name in esper.list_worlds():
        if name.startswith("theta-bench-"):
            esper.delete_world(name)


def esper_workloads(n: int) -> list[Workload]:
    pos_a, vel_a = _columns(n)
    pos, vel = pos_a.tolist(), vel_a.tolist()
    dt = float(DT)
    tenth = max(1, len(range(0, n, 10)))

    def populate(name: str) -> Any:
        esper = _esper_world(name)
        create = esper.create_entity
        for (px, py, pz), (vx, vy, vz) in zip(pos, vel):
            create(EPos(px, py, pz), EVel(vx, vy, vz))
        return esper

    def spawn() -> Round:
        esper = _esper_world("spawn")
        create = esper.create_entity

        def run() -> None:
            for (px, py, pz), (vx, vy, vz) in zip(pos, vel):
                create(EPos(px, py, pz), EVel(vx, vy, vz))

        return run

    def tick() -> Round:
        esper = populate("tick")

        class Movement(esper.Processor):  # type: ignore[name-defined]
            def process(self) -> None:
                for _, (p, v) in esper.get_components(EPos, EVel):
                    p.x += v.x * dt
                    p.y += v.y * dt
                    p.z += v.z * dt

        esper.add_processor(Movement())
        process: Round = esper.process
        return process

    def with_mass(name: str) -> tuple[Any, list[int]]:
        esper = populate(name)
        ents = list(range(1, n + 1, 10))
        for e in ents:
            esper.add_component(e, EMass(1.0))
        return esper, ents

    def query3() -> Round:
        esper, _ = with_mass("query3")

        def run() -> None:
            for _, (p, v, m) in esper.get_components(EPos, EVel, EMass):
                p.x += v.x * m.m * dt
                p.y += v.y * m.m * dt
                p.z += v.z * m.m * dt

        return run

    def churn() -> Round:
        esper, ents = with_mass("churn")
        add, remove = esper.add_component, esper.remove_component

        def run() -> None:
            for e in ents:
                add(e, ETag(1))
            for e in ents:
                remove(e, ETag)

        return run

    slow = 3 if n >= 100_000 else None
    return [
        Workload("spawn", "esper", n, "entity", spawn, fresh=True, rounds=slow,
                 teardown=_esper_done),
        Workload("tick", "esper", n, "entity", tick, rounds=slow, teardown=_esper_done),
        Workload("query3", "esper", tenth, "entity", query3, rounds=slow, teardown=_esper_done),
        Workload("churn", "esper", tenth, "entity", churn, rounds=slow, teardown=_esper_done),
    ]


def esper_per_entity_workloads(n: int = PER_ENTITY_N) -> list[Workload]:
    def populate(name: str) -> tuple[Any, list[int]]:
        esper = _esper_world(name)
        ents = [esper.create_entity(EPos(0.0, 0.0, 0.0), EVel(0.0, 0.0, 0.0)) for _ in range(n)]
        return esper, ents

    def get() -> Round:
        esper, ents = populate("get")
        cfe = esper.component_for_entity

        def run() -> None:
            for e in ents:
                cfe(e, EPos)

        return run

    def set_() -> Round:
        esper, ents = populate("set")
        cfe = esper.component_for_entity

        def run() -> None:
            for e in ents:
                p = cfe(e, EPos)
                p.x = 1.0
                p.y = 2.0
                p.z = 3.0

        return run

    def insert_remove() -> Round:
        esper, ents = populate("insert_remove")
        add, remove = esper.add_component, esper.remove_component

        def run() -> None:
            for e in ents:
                add(e, ETag(1))
                remove(e, ETag)

        return run

    def spawn_one() -> Round:
        esper = _esper_world("spawn_one")
        create = esper.create_entity

        def run() -> None:
            for _ in range(n):
                create(EPos(0.0, 0.0, 0.0), EVel(0.0, 0.0, 0.0))

        return run

    return [
        Workload("get", "esper", n, "call", get, teardown=_esper_done),
        Workload("set", "esper", n, "call", set_, teardown=_esper_done),
        Workload("insert_remove", "esper", n, "call", insert_remove, teardown=_esper_done),
        Workload("spawn_one", "esper", n, "call", spawn_one, fresh=True, teardown=_esper_done),
    ]


def esper_scheduler_workloads(systems: int = SCHEDULER_SYSTEMS) -> list[Workload]:
    def prepare(query: bool) -> Callable[[], Round]:
        def build() -> Round:
            esper = _esper_world("scheduler_query" if query else "scheduler")
            for _ in range(100):
                esper.create_entity(EPos(0.0, 0.0, 0.0), EVel(0.0, 0.0, 0.0))

            class Trivial(esper.Processor):  # type: ignore[name-defined]
                def process(self) -> None:
                    pass

            class Touch(esper.Processor):  # type: ignore[name-defined]
                def process(self) -> None:
                    for _ in esper.get_components(EPos, EVel):
                        pass

            for _ in range(systems):
                esper.add_processor(Touch() if query else Trivial())
            process: Round = esper.process
            return process

        return build

    return [
        Workload("scheduler", "esper", systems, "system", prepare(False), teardown=_esper_done),
        Workload("scheduler_query", "esper", systems, "system", prepare(True),
                 teardown=_esper_done),
    ]


def esper_available() -> bool:
    try:
        import esper  # noqa: F401
    except ImportError:
        return False
    return True


def all_workloads(n: int = 1_000_000, per_entity_n: int = PER_ENTITY_N,
                  systems: int = SCHEDULER_SYSTEMS) -> list[Workload]:
    """Every workload, peers before theta within each group."""
    out = numpy_workloads(n)
    if esper_available():
        out += esper_workloads(n) + esper_per_entity_workloads(per_entity_n)
        out += esper_scheduler_workloads(systems)
    out += theta_workloads(n) + theta_threads_workloads(n)
    out += theta_per_entity_workloads(per_entity_n) + theta_scheduler_workloads(systems)
    return out


def format_table(results: Results) -> str:
    libs = ["theta", "theta_expr", "numpy", "esper", "serial"]
    lines = ["cost per item (ns, best round; lower is better)"]
    lines.append(f"{'row':<14}" + "".join(f"{lib:>13}" for lib in libs) + "   theta / peer")
    for group, row in results.best.items():
        cells = "".join(
            f"{results.ns_per_item(group, lib):>13.1f}" if lib in row else f"{'':>13}"
            for lib in libs
        )
        ratios = ", ".join(f"{k.split('_over_')[1]} {v:.3g}"
                           for k, v in results.ratios(group).items())
        lines.append(f"{group:<14}{cells}   {ratios}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="theta bench ecs", description=__doc__)
    parser.add_argument("-n", "--entities", type=int, default=1_000_000)
    parser.add_argument("--per-entity", type=int, default=PER_ENTITY_N,
                        help="entities for the one-call-at-a-time rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    log = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    results = run_all(all_workloads(args.entities, args.per_entity), args.repeats, log)
    doc: dict[str, Any] = {"n": args.entities, "per_entity_n": args.per_entity,
                           "unit": "ns/item", **as_dict(results, TARGETS)}
    text = json.dumps(doc, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text if args.json else format_table(results))
    return 0 if all(doc["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
