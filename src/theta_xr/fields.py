"""Synthetic cube fields for benchmarks and tests: ``n`` cubes in front of the viewer.

The cubes fill a box in front of the default head pose (looking down -z), so about two thirds
are inside the simulated HMD's frusta; their columns are the standard components.
"""

from __future__ import annotations

import math

import numpy as np

from theta_ecs.stdcomponents import Color, Position, Rotation, Scale
from theta_ecs.world import World

from .components import MeshHandle


def cube_field(world: World, n: int, seed: int = 0) -> np.ndarray:
    """Spawn ``n`` cubes (Position, Rotation, Scale, Color, MeshHandle); returns their ids."""
    rng = np.random.default_rng(seed)
    side = max(1.0, math.cbrt(n)) * 0.6  # about 0.6 m per cube per axis
    pos = np.empty((n, 3), np.float32)
    pos[:, 0] = rng.uniform(-side, side, n)
    pos[:, 1] = rng.uniform(-side / 2, side / 2, n) + 1.5
    pos[:, 2] = rng.uniform(-2 * side - 1.0, -1.0, n)
    q = rng.normal(size=(n, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return world.spawn_batch({
        Position: pos,
        Rotation: q,
        Scale: np.full((n, 3), 0.25, np.float32),
        Color: rng.integers(40, 255, (n, 4)).astype(np.uint8),
        MeshHandle: np.zeros(n, np.uint16),
    })


def jiggle(world: World, t: float) -> None:
    """Move every cube a little, as a simulation system would: whole columns handed out
    writable, so the renderer sees every row changed (its worst case)."""
    for arch in world.query(Position).archetypes():
        col = arch.columns[Position.id][: arch.count]
        col[:, 1] += np.float32(0.001 * math.sin(t))
        arch.column_ticks[Position.id] = world.advance_change_tick()
