"""Interest management: each peer receives only the entities inside its area of interest.

A uniform spatial grid is rebuilt once per tick from the state's positions (entities sorted by
cell key); a peer's query enumerates the cells its sphere overlaps, takes their row ranges by
binary search and filters by exact distance, all vectorized. Leaving uses a slightly larger
radius than entering (hysteresis), so an entity on the border does not flap in and out: an
entity enters at ``radius`` and leaves beyond ``radius * (1 + hysteresis)``. Entering and leaving
need nothing special on the wire: the peer's delta adds or removes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..component import Component
from ..serialization.schema import ReplicationSchema
from ..serialization.snapshot import Snapshot

_BIAS = 1 << 20
_LIMIT = (1 << 20) - 1


@dataclass
class AreaOfInterest:
    """A sphere (a disc in 2-D) around ``center``."""

    center: npt.NDArray[np.float64]
    radius: float
    hysteresis: float = 0.1

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, np.float64)
        if not self.radius > 0:
            raise ValueError("an area of interest needs a positive radius")


class SpatialGrid:
    """Rows bucketed by cell; ``query`` returns the rows within a radius of a point."""

    def __init__(self, cell_size: float, dims: int = 3) -> None:
        if not cell_size > 0:
            raise ValueError("cell size must be positive")
        if dims not in (1, 2, 3):
            raise ValueError("a grid has 1 to 3 dimensions")
        self.cell_size = float(cell_size)
        self.dims = dims
        self._pos = np.zeros((0, dims))
        self._keys = np.zeros(0, np.int64)
        self._order = np.zeros(0, np.int64)

    def _cells(self, pos: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        c = np.floor(pos / self.cell_size)
        return np.clip(np.nan_to_num(c), -_LIMIT, _LIMIT).astype(np.int64) + _BIAS

    def _key(self, cells: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        key = np.zeros(cells.shape[0], np.int64)
        for d in range(self.dims):
            key = (key << 21) | cells[:, d]
        return key

    def build(self, positions: npt.ArrayLike) -> None:
        pos = np.asarray(positions, np.float64).reshape(-1, self.dims)
        self._pos = pos
        keys = self._key(self._cells(pos))
        self._order = np.argsort(keys, kind="stable")
        self._keys = keys[self._order]

    def query(self, center: npt.ArrayLike, radius: float) -> npt.NDArray[np.int64]:
        """Sorted rows whose position lies within ``radius`` of ``center``."""
        c = np.asarray(center, np.float64).reshape(self.dims)
        lo = self._cells((c - radius)[None, :])[0]
        hi = self._cells((c + radius)[None, :])[0]
        axes = [np.arange(lo[d], hi[d] + 1) for d in range(self.dims)]
        box = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        keys = self._key(box)
        start = np.searchsorted(self._keys, keys, "left")
        stop = np.searchsorted(self._keys, keys, "right")
        lens = stop - start
        total = int(lens.sum())
        if not total:
            return np.zeros(0, np.int64)
        offs = np.repeat(start - np.cumsum(lens) + lens, lens) + np.arange(total)
        rows = self._order[offs]
        delta = self._pos[rows] - c
        inside = np.einsum("ij,ij->i", delta, delta) <= radius * radius
        return np.sort(rows[inside])


class InterestManager:
    """Builds the grid from a snapshot's ``position`` lanes and answers per-peer visibility."""

    def __init__(
        self, schema: ReplicationSchema, position: Component, cell_size: float, dims: int = 3
    ) -> None:
        self.schema = schema
        self.position = position
        self.codec = schema.codec(position)
        self.column = schema.index_of[position.id]
        self.grid = SpatialGrid(cell_size, dims)
        self.dims = dims
        self._state: Snapshot | None = None
        self._has_pos = np.zeros(0, bool)

    def update(self, state: Snapshot) -> None:
        """Re-bucket every entity of this tick's state."""
        lanes = state.values[:, self.schema.lane_slices[self.column]]
        pos = np.asarray(self.codec.from_lanes(lanes), np.float64).reshape(len(state), -1)
        self.grid.build(pos[:, : self.dims])
        self._has_pos = state.presence[:, self.column] != 0
        self._state = state

    def visible(
        self, area: AreaOfInterest, current: npt.NDArray[np.uint64] | None = None
    ) -> npt.NDArray[np.bool_]:
        """Mask over the state's rows: inside the area, or still inside its leave radius and
        already known to the peer (``current``); entities without a position are global."""
        if self._state is None:
            raise RuntimeError("InterestManager.update() was not called")
        state = self._state
        mask = ~self._has_pos
        mask[self.grid.query(area.center[: self.dims], area.radius)] = True
        if current is not None and len(current):
            outer = self.grid.query(area.center[: self.dims], area.radius * (1 + area.hysteresis))
            known = np.isin(state.entities[outer], current)
            mask[outer[known]] = True
        return mask
