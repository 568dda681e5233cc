"""The crowd scene: many agents wandering a square field, for interest-management benchmarks.

Each agent walks with Reynolds-style wander steering (its heading takes a random walk), turns back
towards the middle when it nears the edge, and now and then stops for a while and then walks on,
so at any moment about a fifth of the crowd stands still (bit-identical state from frame to
frame) and the rest move at walking pace, a few at a run. Everything is vectorized over agents.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..schedule import Stage
from ..world import World
from .base import SteppedScene, checked_dt
from .components import (
    CROWD_COMPONENTS,
    CROWD_HALF_EXTENT,
    CROWD_MAX_SPEED,
    CrowdHeading,
    CrowdPosition,
    CrowdVelocity,
)

F64 = npt.NDArray[np.float64]

WANDER_RATE = 0.8  # rad / sqrt(s): how fast the heading drifts
TURN_RATE = 1.5  # rad/s: the sharpest turn when steering back from the edge
EDGE_MARGIN = 0.1  # fraction of the extent where agents start steering inwards
ACCELERATION = 1.5  # 1/s: how quickly an agent reaches its target speed
STOP_RATE = 1.0 / 40.0  # per second, walking -> standing
START_RATE = 1.0 / 8.0  # per second, standing -> walking
RUNNER_FRACTION = 0.05
STILL_SPEED = 0.02  # below this a stopping agent is standing: its speed snaps to 0


class CrowdScene(SteppedScene):
    """``n`` agents in a World over ``[-extent, extent]`` on x and z, stepped at ``rate_hz``.

    ``step(dt)`` advances them and the World's tick (the steering is a system in the World's
    simulation stage). Deterministic given ``n``, ``seed``, ``extent`` and the sequence of ``dt``.
    """

    rate_hz = 20.0
    components = CROWD_COMPONENTS

    def __init__(
        self, n: int = 10_000, seed: int = 0, extent: float = 500.0, world: World | None = None
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if isinstance(extent, bool) or not isinstance(extent, (int, float, np.floating)) or not (
            1.0 <= extent <= CROWD_HALF_EXTENT - 1.0
        ):
            raise ValueError(f"extent must be in [1, {CROWD_HALF_EXTENT - 1.0}] m, got {extent!r}")
        self.n = int(n)
        self.seed = int(seed)
        self.extent = float(extent)
        self._rng = np.random.default_rng(self.seed)
        rng = self._rng

        self.pos = np.zeros((n, 3))
        self.pos[:, 0] = rng.uniform(-extent, extent, n)
        self.pos[:, 2] = rng.uniform(-extent, extent, n)
        self.heading = rng.uniform(-math.pi, math.pi, n)
        runner = rng.random(n) < RUNNER_FRACTION
        self.cruise = np.where(
            runner, rng.uniform(3.0, 6.0, n), np.clip(rng.normal(1.35, 0.2, n), 0.6, 2.2)
        )
        self.walking = rng.random(n) < START_RATE / (START_RATE + STOP_RATE)
        self.speed = np.where(self.walking, self.cruise, 0.0)
        self.time = 0.0
        self.frame = 0

        self.world = world if world is not None else World()
        self.world.register(*CROWD_COMPONENTS)
        self.entities = self.world.spawn_batch(
            {
                CrowdPosition: self.pos.astype(np.float32),
                CrowdVelocity: self.velocity().astype(np.float32),
                CrowdHeading: self.heading.astype(np.float32),
            },
            count=n,
        )
        self.system_name = self.world.add_system(
            self._system,
            stage=Stage.SIMULATION,
            writes=CROWD_COMPONENTS,
            name=f"theta.scenes.crowd.steering#{id(self):x}",
        )
        self.last_changed = np.arange(n)

    def velocity(self) -> F64:
        """Velocities from headings and speeds (yaw 0 faces +z)."""
        v = np.zeros((self.n, 3))
        v[:, 0] = self.speed * np.sin(self.heading)
        v[:, 2] = self.speed * np.cos(self.heading)
        return v

    def simulate(self, dt: float) -> None:
        """Advance the agents by ``dt`` without touching the World."""
        dt = checked_dt(dt)
        n, rng, ext = self.n, self._rng, self.extent
        # Draws in a fixed order and amount per frame keep a seeded run reproducible.
        u_switch = rng.random(n)
        wander = rng.normal(0.0, WANDER_RATE * math.sqrt(dt), n)

        was_moving = self.speed > 0.0
        stop = self.walking & (u_switch < STOP_RATE * dt)
        start = ~self.walking & (u_switch < START_RATE * dt)
        self.walking = (self.walking & ~stop) | start

        # Steering: wander, and near the edge turn towards the middle as fast as allowed.
        heading = self.heading + np.where(self.walking, wander, 0.0)
        x, z = self.pos[:, 0], self.pos[:, 2]
        near_edge = (np.abs(x) > ext * (1 - EDGE_MARGIN)) | (np.abs(z) > ext * (1 - EDGE_MARGIN))
        inward = np.arctan2(-x, -z)
        error = (inward - heading + math.pi) % (2 * math.pi) - math.pi
        turn = np.clip(error, -TURN_RATE * dt, TURN_RATE * dt)
        heading = np.where(near_edge & self.walking, heading + turn, heading)
        wrapped = (heading + math.pi) % (2 * math.pi) - math.pi
        self.heading = np.where(self.walking, wrapped, self.heading)  # standing: untouched bits

        target = np.where(self.walking, self.cruise, 0.0)
        self.speed += (target - self.speed) * min(1.0, ACCELERATION * dt)
        self.speed[~self.walking & (self.speed < STILL_SPEED)] = 0.0
        np.clip(self.speed, 0.0, CROWD_MAX_SPEED - 0.5, out=self.speed)

        vel = self.velocity()
        self.pos += vel * dt
        np.clip(self.pos[:, 0], -ext, ext, out=self.pos[:, 0])
        np.clip(self.pos[:, 2], -ext, ext, out=self.pos[:, 2])
        self.time += dt
        self.frame += 1
        # Rows that changed: agents that moved or turned (a standing agent is bit-identical).
        self.last_changed = np.flatnonzero(was_moving | (self.speed > 0.0) | start)

    def _write(self, rows: npt.NDArray[np.intp]) -> None:
        if not len(rows):
            return
        alive = self.world.alive_mask(self.entities[rows])
        rows = rows[alive]
        if not len(rows):
            return
        ents = self.entities[rows]
        self.world.insert_batch(ents, CrowdPosition, self.pos[rows].astype(np.float32))
        self.world.insert_batch(ents, CrowdVelocity, self.velocity()[rows].astype(np.float32))
        self.world.insert_batch(ents, CrowdHeading, self.heading[rows].astype(np.float32))

    @property
    def moving_count(self) -> int:
        return int((self.speed > 0.0).sum())
