"""A client's area of interest over the network: what the server accepts as one.

A client sends a sphere (``Client.set_interest``); the server turns it into the
:class:`~theta_ecs.replication.AreaOfInterest` of that client's replicator, within bounds: a
hostile value must not make every tick's visibility query expensive (the grid query visits every
cell of the sphere's bounding box), nor mean anything odd. What it refuses it counts, by reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from theta_ecs.replication import AreaOfInterest, InterestManager

from .errors import NetError

__all__ = [
    "MAX_INTEREST_CELLS",
    "MAX_INTEREST_COORDINATE",
    "REFUSAL_REASONS",
    "InterestRefusedError",
    "area_from",
    "check_sphere",
    "default_max_radius",
]

#: Largest |x|, |y|, |z| of a centre, in metres (beyond it a position means nothing here).
MAX_INTEREST_COORDINATE = 1.0e6
#: The default largest radius spans this many grid cells: a query's box stays ~17 cells a side.
MAX_INTEREST_CELLS = 8
#: Why a server refuses an area: no interest management here, a radius over the bound or not a
#: number, a centre outside the coordinate bound or not three numbers.
REFUSAL_REASONS = ("unsupported", "radius", "center")


class InterestRefusedError(NetError, ValueError):
    """An area of interest that cannot be used: ``reason`` (one of REFUSAL_REASONS), the value
    and the limit it broke."""

    def __init__(self, reason: str, value: object, limit: object) -> None:
        super().__init__(f"area of interest refused ({reason}): {value!r}, limit {limit!r}")
        self.reason = reason
        self.value = value
        self.limit = limit


def check_sphere(center: Sequence[float], radius: float) -> tuple[tuple[float, float, float],
                                                                 float]:
    """The sphere as plain floats, or InterestRefusedError (radius 0: no area, everything)."""
    try:
        x, y, z = (float(c) for c in center)
    except (TypeError, ValueError):
        raise InterestRefusedError("center", center, "three numbers") from None
    for c in (x, y, z):
        if not (math.isfinite(c) and abs(c) <= MAX_INTEREST_COORDINATE):
            raise InterestRefusedError("center", (x, y, z), MAX_INTEREST_COORDINATE)
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise InterestRefusedError("radius", radius, "a number") from None
    if not (math.isfinite(r) and r >= 0):
        raise InterestRefusedError("radius", radius, "finite, >= 0")
    return (x, y, z), r


def default_max_radius(manager: InterestManager) -> float:
    return MAX_INTEREST_CELLS * manager.grid.cell_size


def area_from(manager: InterestManager | None, center: Sequence[float], radius: float,
              max_radius: float | None = None) -> AreaOfInterest | None:
    """The replicator's area for a client's sphere (None: radius 0, the whole scene), or
    InterestRefusedError when this server cannot or will not use it."""
    if manager is None:
        raise InterestRefusedError("unsupported", radius, "no interest management here")
    (x, y, z), r = check_sphere(center, radius)
    if r == 0:
        return None
    limit = default_max_radius(manager) if max_radius is None else max_radius
    if r > limit:
        raise InterestRefusedError("radius", r, limit)
    return AreaOfInterest(np.array([x, y, z]), r)
