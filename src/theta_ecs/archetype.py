"""Archetype tables: every entity with exactly the same component set shares one table.

Each component is one numpy column (``capacity`` rows, grown geometrically), so a query hands a
system contiguous arrays. Each column carries two kinds of change stamp (the world's change tick,
a 64-bit counter that never wraps): a per-row tick written by per-entity access, and a
whole-column tick written when a system receives the column writable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .component import Component

Column = npt.NDArray[Any]
Ticks = npt.NDArray[np.uint64]
EntityIds = npt.NDArray[np.uint64]


class Archetype:
    """One table: the entities that have exactly ``components``."""

    __slots__ = (
        "_capacity",
        "add_edges",
        "column_ticks",
        "columns",
        "component_ids",
        "components",
        "count",
        "entities",
        "id",
        "remove_edges",
        "row_ticks",
    )

    def __init__(self, archetype_id: int, components: Iterable[Component], capacity: int = 8):
        self.id = archetype_id
        self.components: tuple[Component, ...] = tuple(sorted(components, key=lambda c: c.id))
        self.component_ids = frozenset(c.id for c in self.components)
        self._capacity = max(capacity, 8)
        self.count = 0
        self.entities: EntityIds = np.zeros(self._capacity, np.uint64)
        self.columns: dict[int, Column] = {c.id: c.empty(self._capacity) for c in self.components}
        self.row_ticks: dict[int, Ticks] = {
            c.id: np.zeros(self._capacity, np.uint64) for c in self.components
        }
        self.column_ticks: dict[int, int] = {c.id: 0 for c in self.components}
        self.add_edges: dict[int, Archetype] = {}
        self.remove_edges: dict[int, Archetype] = {}

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.components)
        return f"Archetype#{self.id}[{names}] ({self.count} rows)"

    @property
    def capacity(self) -> int:
        return self._capacity

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows, doubling so appends stay amortised O(1)."""
        needed = self.count + extra
        if needed <= self._capacity:
            return
        cap = max(needed, 2 * self._capacity)
        n = self.count
        ents = np.zeros(cap, np.uint64)
        ents[:n] = self.entities[:n]
        self.entities = ents
        for comp in self.components:
            col = comp.empty(cap)
            col[:n] = self.columns[comp.id][:n]
            self.columns[comp.id] = col
            ticks = np.zeros(cap, np.uint64)
            ticks[:n] = self.row_ticks[comp.id][:n]
            self.row_ticks[comp.id] = ticks
        self._capacity = cap

    def append(self, entities: EntityIds, values: Mapping[int, Column], tick: int) -> int:
        """Append rows for ``entities``; ``values`` holds a block per component id.

        Returns the first new row. Every new row counts as changed at ``tick``.
        """
        k = len(entities)
        self.reserve(k)
        start = self.count
        end = start + k
        self.entities[start:end] = entities
        for cid, col in self.columns.items():
            col[start:end] = values[cid]
            self.row_ticks[cid][start:end] = tick
        self.count = end
        return start

    def append_one(self, entity: int, values: Mapping[int, Any], tick: int) -> int:
        self.reserve(1)
        row = self.count
        self.entities[row] = entity
        for cid, col in self.columns.items():
            col[row] = values[cid]
            self.row_ticks[cid][row] = tick
        self.count = row + 1
        return row

    def copy_rows_into(
        self, rows: npt.NDArray[np.int64], dest: Archetype, dest_first: int
    ) -> None:
        """Copy the shared columns (values and row ticks) of ``rows`` into ``dest``."""
        k = len(rows)
        for cid in self.component_ids & dest.component_ids:
            dest.columns[cid][dest_first : dest_first + k] = self.columns[cid][rows]
            src_ticks = np.maximum(self.row_ticks[cid][rows], self.column_ticks[cid])
            dest.row_ticks[cid][dest_first : dest_first + k] = src_ticks

    def swap_remove(self, row: int) -> int | None:
        """Remove ``row`` by moving the last row into it; returns the moved entity, if any."""
        last = self.count - 1
        self.count = last
        if row == last:
            return None
        moved = int(self.entities[last])
        self.entities[row] = moved
        for cid, col in self.columns.items():
            col[row] = col[last]
            ticks = self.row_ticks[cid]
            ticks[row] = ticks[last]
        return moved

    def remove_rows(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[EntityIds, npt.NDArray[np.int64]]:
        """Remove distinct ``rows`` at once, filling holes from the tail.

        Returns (entities that moved, their new rows) so the caller can update locations.
        """
        n = self.count
        m = len(rows)
        keep_n = n - m
        holes = rows[rows < keep_n]
        holes.sort()
        doomed_tail = np.zeros(m, np.bool_)
        doomed_tail[rows[rows >= keep_n] - keep_n] = True
        movers = keep_n + np.flatnonzero(~doomed_tail)
        if len(holes):
            self.entities[holes] = self.entities[movers]
            for cid, col in self.columns.items():
                col[holes] = col[movers]
                ticks = self.row_ticks[cid]
                ticks[holes] = ticks[movers]
        self.count = keep_n
        return self.entities[holes].copy(), holes.astype(np.int64)

    def changed_mask(self, component_id: int, since: int) -> npt.NDArray[np.bool_]:
        """Per row: did ``component_id`` change after tick ``since``? A column handed out
        writable counts as changed in every row."""
        if self.column_ticks[component_id] > since:
            return np.ones(self.count, np.bool_)
        return self.row_ticks[component_id][: self.count] > since
