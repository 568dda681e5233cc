"""Queries: which archetypes hold a component set, cached so re-running costs no matching."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from .archetype import Archetype, Column, EntityIds
from .component import Component
from .errors import UnknownComponentError


class TableView(Protocol):
    """What a query needs of the world: its archetypes (a list that only ever grows) and the
    change tick that stamps columns handed out writable."""

    @property
    def tables(self) -> Sequence[Archetype]: ...

    @property
    def change_tick(self) -> int: ...


def read_only(view: Column) -> Column:
    """A view of ``view`` that cannot be made writable again (its buffer is read-only)."""
    return np.asarray(memoryview(view).toreadonly())  # type: ignore[arg-type]


class QueryBatch(NamedTuple):
    """One archetype's worth of results: ``for entities, (pos, vel) in world.query(...)``."""

    entities: EntityIds
    columns: tuple[Column, ...]


class Query:
    """A cached match of ``with_`` minus ``without`` over the world's archetypes.

    Archetypes are only ever added, so the cache keeps how many it has seen and examines only
    the new ones. Iterating yields read-only views unless components are named in ``write``.
    """

    __slots__ = ("_matched", "_seen", "_world", "with_", "without")

    def __init__(
        self, world: TableView, with_: Sequence[Component], without: Sequence[Component] = ()
    ) -> None:
        self._world = world
        self.with_ = tuple(with_)
        self.without = tuple(without)
        self._matched: list[Archetype] = []
        self._seen = 0

    def archetypes(self) -> list[Archetype]:
        """The matching archetypes (including empty ones), refreshed incrementally."""
        known = self._world.tables
        if self._seen < len(known):
            need = frozenset(c.id for c in self.with_)
            avoid = frozenset(c.id for c in self.without)
            for arch in known[self._seen :]:
                if need <= arch.component_ids and not (avoid & arch.component_ids):
                    self._matched.append(arch)
            self._seen = len(known)
        return self._matched

    def iter(self, write: Sequence[Component] = ()) -> Iterator[QueryBatch]:
        """Yield one batch per non-empty archetype; ``write`` columns are writable and stamped."""
        writable = {c.id for c in write}
        tick = self._world.change_tick
        for arch in self.archetypes():
            n = arch.count
            if not n:
                continue
            cols = []
            for comp in self.with_:
                if comp.id in writable:
                    arch.mark_written(comp.id, tick)
                    cols.append(arch.columns[comp.id][:n])
                else:
                    cols.append(read_only(arch.columns[comp.id][:n]))
            yield QueryBatch(read_only(arch.entities[:n]), tuple(cols))

    def __iter__(self) -> Iterator[QueryBatch]:
        return self.iter()

    def changed_since(
        self, tick: int, components: Sequence[Component] | None = None
    ) -> Iterator[QueryBatch]:
        """Yield only rows where any of ``components`` (default: all queried) changed after
        ``tick``. Columns are read-only copies of those rows."""
        watch = [c.id for c in (components if components is not None else self.with_)]
        outside = set(watch) - {c.id for c in self.with_}
        if outside:
            raise UnknownComponentError(
                "changed_since can only watch the query's own components"
            )
        for arch in self.archetypes():
            if not arch.count:
                continue
            if not watch:
                continue
            rows = np.flatnonzero(
                np.logical_or.reduce([arch.changed_mask(cid, tick) for cid in watch])
            )
            if not len(rows):
                continue
            cols = []
            for comp in self.with_:
                picked = arch.columns[comp.id][rows]
                picked.flags.writeable = False
                cols.append(picked)
            yield QueryBatch(arch.entities[rows], tuple(cols))

    def count(self) -> int:
        """How many entities match."""
        return sum(a.count for a in self.archetypes())

    def entities(self) -> EntityIds:
        """All matching entity ids, concatenated."""
        parts = [a.entities[: a.count] for a in self.archetypes() if a.count]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)
