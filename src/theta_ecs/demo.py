"""The core demo: a few thousand moving entities stepped by the scheduler, with live telemetry."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from .kernels import integrate
from .schedule import Stage, SystemContext
from .stdcomponents import Color, Position, Velocity
from .world import World

BOUNDS = np.float32(50.0)


@dataclass
class DemoConfig:
    entities: int = 5_000
    seconds: float = 4.0
    rate_hz: float = 60.0
    seed: int = 0


@dataclass
class Rng:
    """The demo's random source, kept as a world resource so systems share one stream."""

    generator: np.random.Generator


def build_world(cfg: DemoConfig) -> World:
    world = World()
    rng = np.random.default_rng(cfg.seed)
    world.insert_resource(Rng(rng))
    n = cfg.entities
    world.spawn_batch(
        {
            Position: rng.uniform(-BOUNDS, BOUNDS, (n, 3)).astype(np.float32),
            Velocity: rng.normal(0.0, 5.0, (n, 3)).astype(np.float32),
            Color: rng.integers(0, 256, (n, 4), dtype=np.uint8),
        }
    )

    def movement(ctx: SystemContext) -> None:
        for _, (pos, vel) in ctx.query(Position, Velocity):
            integrate(pos, vel, ctx.dt)

    def bounce(ctx: SystemContext) -> None:
        for _, (pos, vel) in ctx.query(Position, Velocity):
            out = np.abs(pos) > BOUNDS
            vel[out] *= -1.0
            np.clip(pos, -BOUNDS, BOUNDS, out=pos)

    def churn(ctx: SystemContext) -> None:
        """Spawn and despawn a few entities per frame through the deferred command buffer."""
        gen = ctx.resource(Rng).generator
        for ents, _ in ctx.query(Position):
            if len(ents) > cfg.entities:
                for e in gen.choice(ents, size=min(8, len(ents) - cfg.entities), replace=False):
                    ctx.commands.despawn(int(e))
        for _ in range(8):
            ctx.commands.spawn(
                {Position: gen.uniform(-1, 1, 3), Velocity: gen.normal(0, 5, 3), Color: (255,) * 4}
            )

    def render(ctx: SystemContext) -> None:
        """Build per-instance model translations, as a renderer would upload them."""
        for _, (pos, col) in ctx.query(Position, Color):
            models = np.zeros((len(pos), 4, 4), np.float32)
            models[:, [0, 1, 2, 3], [0, 1, 2, 3]] = 1.0
            models[:, :3, 3] = pos
            _ = col.astype(np.float32) / 255.0

    world.add_system(movement, stage=Stage.SIMULATION, reads=[Velocity], writes=[Position])
    world.add_system(
        bounce, stage=Stage.SIMULATION, writes=[Position, Velocity], after=["movement"]
    )
    world.add_system(render, stage=Stage.RENDER, reads=[Position, Color])
    world.add_system(churn, stage=Stage.EDITOR, reads=[Position])
    return world


def run(cfg: DemoConfig, out: TextIO = sys.stdout) -> World:
    world = build_world(cfg)
    period = 1.0 / cfg.rate_hz
    header = (
        f"{'time s':>7} {'frame':>6} {'entities':>9} {'frame ms':>9} {'avg ms':>7} "
        f"{'sim ms':>7} {'render ms':>9} {'editor ms':>9}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    start = time.perf_counter()
    next_frame = start
    next_report = start
    while (now := time.perf_counter()) - start < cfg.seconds:
        if now < next_frame:
            time.sleep(next_frame - now)
        next_frame += period
        world.step(period)
        if time.perf_counter() >= next_report:
            next_report += 0.5
            snap = world.metrics()
            st = snap.stages
            print(
                f"{time.perf_counter() - start:7.2f} {snap.frame:6d} {snap.entity_count:9d} "
                f"{snap.frame_time.last_ms:9.3f} {snap.frame_time.mean_ms:7.3f} "
                f"{st['simulation'].mean_ms:7.3f} {st['render'].mean_ms:9.3f} "
                f"{st['editor'].mean_ms:9.3f}",
                file=out,
                flush=True,
            )
    snap = world.metrics()
    print("\nper-system mean ms: " + ", ".join(
        f"{name} {s.mean_ms:.3f}" for name, s in snap.systems.items()), file=out)
    return world
