"""What every scene shares: a World stepped at a fixed rate by one system that simulates, then
writes back only the rows that changed (so per-row change ticks stay exact)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..schedule import SystemContext
from ..world import World


def checked_dt(dt: object) -> float:
    """``dt`` as float seconds in (0, 1], or ValueError: a bad step is refused before any
    state moves."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise ValueError(f"dt must be a number of seconds, got {dt!r}")
    value = float(dt)
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"dt must be in (0, 1] seconds, got {dt!r}")
    return value


class SteppedScene:
    """Base of the scenes: ``step`` runs the world; the scene's system calls ``simulate`` and
    ``_write(last_changed)``."""

    rate_hz: float
    world: World
    last_changed: npt.NDArray[np.intp]

    def simulate(self, dt: float) -> None:
        raise NotImplementedError

    def _write(self, rows: npt.NDArray[np.intp]) -> None:
        raise NotImplementedError

    def step(self, dt: float | None = None) -> None:
        """Advance one frame of ``dt`` seconds (default ``1 / rate_hz``)."""
        self.world.step(1.0 / self.rate_hz if dt is None else dt)

    def _system(self, ctx: SystemContext) -> None:
        self.simulate(ctx.dt)
        self._write(self.last_changed)
