"""Embedding theta's core in an engine's own fixed-step loop.

The engine owns the clock and the frame. Each frame it measures the real time that passed, feeds
it to an accumulator, and steps the World in fixed increments ("Fix Your Timestep", Glenn
Fiedler): the simulation is deterministic whatever the frame rate, a slow frame is caught up in
several steps (capped, so a long hitch cannot spiral), and rendering blends the last two
simulation states by the leftover fraction of a step. The World never runs a loop of its own.

What the engine does around ``world.step``:
- gameplay code between steps uses the per-entity API (``world.get`` / ``world.set``);
- vectorized systems run inside the step (``world.add_system``);
- the renderer reads columns through a query, never entity by entity;
- telemetry is read as a JSON snapshot (``world.metrics()``) or, on a server, scraped through
  ``theta_ecs.prometheus`` (see docs/metrics.md).

Run it: ``python examples/fixed_step_loop.py --seconds 2 --hz 60``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from theta_ecs import Component, Stage, SystemContext, World
from theta_ecs.kernels import integrate

Position = Component("example.Position", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Velocity = Component("example.Velocity", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Player = Component("example.Player", np.uint8)


def movement(ctx: SystemContext) -> None:
    """A vectorized system: every entity with a Position and a Velocity moves."""
    for _, (pos, vel) in ctx.query(Position, Velocity):
        integrate(pos, vel, np.float32(ctx.dt))


@dataclass
class FixedStepLoop:
    """The engine's side: a clock, an accumulator, and the world it steps."""

    world: World
    hz: float = 60.0
    clock: Callable[[], float] = time.perf_counter
    max_steps_per_frame: int = 5
    accumulator: float = 0.0
    steps: int = 0
    dropped_s: float = 0.0  # time thrown away by the catch-up cap (a hitch, a debugger pause)
    previous: dict[int, np.ndarray] = field(default_factory=dict)
    _last: float | None = None

    @property
    def dt(self) -> float:
        return 1.0 / self.hz

    def frame(self, on_step: Callable[[World], None] | None = None) -> float:
        """One engine frame: the fixed steps that are due, then the blend factor for rendering
        (0 = the previous state, 1 = the current one)."""
        now = self.clock()
        elapsed = 0.0 if self._last is None else now - self._last
        self._last = now
        self.accumulator += elapsed
        cap = self.max_steps_per_frame * self.dt
        if self.accumulator > cap:
            self.dropped_s += self.accumulator - cap
            self.accumulator = cap
        while self.accumulator >= self.dt:
            self.previous = self.positions()
            if on_step is not None:
                on_step(self.world)  # gameplay: input, scripts, per-entity changes
            self.world.step(self.dt)
            self.accumulator -= self.dt
            self.steps += 1
        return self.accumulator / self.dt

    def positions(self) -> dict[int, np.ndarray]:
        """Every Position, by entity id (what a renderer would upload, one copy per archetype)."""
        out: dict[int, np.ndarray] = {}
        for ents, (pos,) in self.world.query(Position):
            out.update(zip(ents.tolist(), pos.copy()))
        return out

    def render_positions(self, alpha: float) -> dict[int, np.ndarray]:
        """Positions blended between the last two steps: smooth motion at any frame rate."""
        current = self.positions()
        return {e: self.previous.get(e, p) * (1 - alpha) + p * alpha for e, p in current.items()}


def build_world(crowd: int = 1_000, seed: int = 0) -> tuple[World, int]:
    """A crowd drifting at random velocities, and one player entity the 'input' steers."""
    rng = np.random.default_rng(seed)
    world = World()
    world.spawn_batch({
        Position: rng.uniform(-50, 50, (crowd, 3)).astype(np.float32),
        Velocity: rng.normal(0, 1, (crowd, 3)).astype(np.float32),
    })
    player = world.spawn({Position: (0.0, 0.0, 0.0), Velocity: (0.0, 0.0, 0.0), Player: 1})
    world.add_system(movement, stage=Stage.SIMULATION, reads=[Velocity], writes=[Position])
    return world, player


def steer(player: int, speed: float = 2.0) -> Callable[[World], None]:
    """Gameplay between steps through the per-entity API: the player walks along +x."""

    def on_step(world: World) -> None:
        world.set(player, Velocity, (speed, 0.0, 0.0))

    return on_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="real seconds to run")
    parser.add_argument("--hz", type=float, default=60.0, help="simulation rate")
    parser.add_argument("--fps", type=float, default=144.0, help="the engine's frame cap")
    parser.add_argument("--crowd", type=int, default=1_000)
    args = parser.parse_args(argv)

    world, player = build_world(args.crowd)
    loop = FixedStepLoop(world, hz=args.hz)
    on_step = steer(player)
    start = time.perf_counter()
    frames = 0
    alpha = 0.0
    while time.perf_counter() - start < args.seconds:
        frame_start = time.perf_counter()
        alpha = loop.frame(on_step)
        loop.render_positions(alpha)  # hand these to the renderer
        frames += 1
        spare = 1.0 / args.fps - (time.perf_counter() - frame_start)
        if spare > 0:
            time.sleep(spare)  # the engine's frame pacing (vsync, a frame cap)
    metrics = world.metrics()
    print(json.dumps({
        "frames": frames,
        "steps": loop.steps,
        "hz": args.hz,
        "player_x": float(world.get(player, Position)[0]),
        "last_alpha": round(alpha, 3),
        "dropped_s": round(loop.dropped_s, 4),
        "step_ms_mean": round(metrics.frame_time.mean_ms, 3),
        "entities": metrics.entity_count,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
