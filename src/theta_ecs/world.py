"""The World: entities, their components in archetype tables, resources, events and a schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from ._entities import EntityAllocator
from .archetype import Archetype, Column, EntityIds
from .component import Component, ComponentRegistry
from .errors import ComponentDataError, StaleEntityError, UnknownComponentError
from .events import Events
from .query import Query
from .schedule import Scheduler, Stage, SystemFn
from .telemetry import MetricsSnapshot, Telemetry

T = TypeVar("T")

INDEX_BITS = 32
INDEX_MASK = (1 << INDEX_BITS) - 1


def entity_index(entity: int) -> int:
    return entity & INDEX_MASK


def entity_generation(entity: int) -> int:
    return entity >> INDEX_BITS


def _fits_integer_range(arr: npt.NDArray[Any], target: np.dtype[Any]) -> bool:
    if arr.size == 0 or target.kind not in "iu" or arr.dtype.kind not in "iu":
        return True
    info = np.iinfo(target)
    return bool(arr.min() >= info.min and arr.max() <= info.max)


def coerce_rows(comp: Component, values: npt.ArrayLike, n: int) -> Column:
    """``values`` as ``n`` rows of ``comp``'s column, or ComponentDataError (never a lossy cast)."""
    want = (n, *comp.row_shape)
    if comp.dtype.names:
        arr = np.asarray(values)
        if arr.dtype.names != comp.dtype.names:
            raise ComponentDataError(
                f"{comp.name}: expected a structured array with fields {comp.dtype.names}, "
                f"got dtype {arr.dtype}"
            )
        arr = arr.astype(comp.dtype, copy=False)
    else:
        arr = np.asarray(values)
        target = comp.column_dtype
        if n == 0 and arr.size == 0:  # np.asarray([]) is float64, yet holds nothing to lose
            return np.zeros(want, target)
        int_to_int = arr.dtype.kind in "iub" and target.kind in "iu"
        if arr.dtype.kind in "OUSV" or not (
            int_to_int or np.can_cast(arr.dtype, target, "same_kind")
        ):
            raise ComponentDataError(f"{comp.name}: cannot store dtype {arr.dtype} as {target}")
        if not _fits_integer_range(arr, target):
            raise ComponentDataError(f"{comp.name}: values out of range for {target}")
    if arr.shape != want:
        raise ComponentDataError(f"{comp.name}: expected shape {want}, got {arr.shape}")
    return arr


def coerce_one(comp: Component, value: object) -> Column:
    """One entity's value, checked like a batch of one."""
    if comp.dtype.names and isinstance(value, tuple):
        try:
            value = np.array([value], dtype=comp.dtype)
        except (TypeError, ValueError) as exc:
            raise ComponentDataError(f"{comp.name}: {exc}") from None
        return coerce_rows(comp, value, 1)[0]
    arr = np.asarray(value)
    return coerce_rows(comp, arr.reshape((1, *arr.shape)), 1)[0]


class World:
    """Holds every entity and component of one simulation.

    Entities are 64-bit ids (32-bit index, 32-bit generation). Component values live in archetype
    tables as numpy columns; queries hand systems views of those columns.
    """

    def __init__(
        self,
        registry: ComponentRegistry | None = None,
        *,
        capacity: int = 1024,
        parallel: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else ComponentRegistry()
        self._entities = EntityAllocator(capacity)
        self._archetypes: list[Archetype] = []
        self._archetype_by_set: dict[frozenset[int], Archetype] = {}
        self._queries: dict[tuple[tuple[int, ...], tuple[int, ...]], Query] = {}
        self._resources: dict[type, object] = {}
        self._reserved = 0
        self._empty = self._archetype_for(())
        self.tick = 1
        self.telemetry = Telemetry()
        self.events = Events()
        self.schedule = Scheduler(parallel=parallel)

    # -- components ---------------------------------------------------------------------------
    def register(self, *components: Component) -> None:
        for comp in components:
            self.registry.register(comp)

    def _known(self, comp: Component) -> Component:
        if not isinstance(comp, Component):
            raise UnknownComponentError(f"{comp!r} is not a Component")
        return self.registry.register(comp)

    def _archetype_for(self, components: Iterable[Component]) -> Archetype:
        comps = tuple(components)
        key = frozenset(c.id for c in comps)
        arch = self._archetype_by_set.get(key)
        if arch is None:
            arch = Archetype(len(self._archetypes), comps)
            self._archetypes.append(arch)
            self._archetype_by_set[key] = arch
        return arch

    def _with(self, arch: Archetype, comp: Component) -> Archetype:
        dest = arch.add_edges.get(comp.id)
        if dest is None:
            dest = self._archetype_for((*arch.components, comp))
            arch.add_edges[comp.id] = dest
            dest.remove_edges[comp.id] = arch
        return dest

    def _without(self, arch: Archetype, comp: Component) -> Archetype:
        dest = arch.remove_edges.get(comp.id)
        if dest is None:
            dest = self._archetype_for(c for c in arch.components if c.id != comp.id)
            arch.remove_edges[comp.id] = dest
            dest.add_edges[comp.id] = arch
        return dest

    @property
    def archetypes(self) -> Sequence[Archetype]:
        return tuple(self._archetypes)

    # -- entities -----------------------------------------------------------------------------
    @property
    def entity_count(self) -> int:
        return int(self._entities.alive_count) - self._reserved

    def is_alive(self, entity: int) -> bool:
        return bool(self._entities.is_alive(entity))

    def alive_mask(self, entities: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Vectorized :meth:`is_alive`: one bool per id."""
        return self._entities.alive_mask(np.ascontiguousarray(entities, dtype=np.uint64))

    def _check(self, entity: int) -> tuple[Archetype, int]:
        if not isinstance(entity, (int, np.integer)) or not 0 <= entity < 1 << 64:
            raise StaleEntityError(f"{entity!r} is not an entity id")
        if not self._entities.is_alive(entity):
            raise StaleEntityError(
                f"entity {int(entity):#x} (index {entity_index(entity)}, generation "
                f"{entity_generation(entity)}) is not alive"
            )
        arch_id, row = self._entities.locate(entity)
        return self._archetypes[arch_id], row

    def _check_batch(self, entities: npt.ArrayLike) -> EntityIds:
        ents = np.ascontiguousarray(entities, dtype=np.uint64)
        if ents.ndim != 1:
            raise ComponentDataError("entity ids must be a 1-D array")
        alive = self._entities.alive_mask(ents)
        if not alive.all():
            bad = int(ents[np.flatnonzero(~alive)[0]])
            raise StaleEntityError(f"entity {bad:#x} in the batch is not alive")
        if self._entities.has_duplicates(ents):
            raise ComponentDataError("an entity appears twice in the batch")
        return ents

    def spawn(self, components: Mapping[Component, object] | None = None) -> int:
        """Create one entity with ``components`` ({Component: value}); returns its id."""
        values = {self._known(c): coerce_one(c, v) for c, v in (components or {}).items()}
        arch = self._archetype_for(values)
        entity = int(self._entities.allocate_one())
        self._place_new(entity, arch, {c.id: v for c, v in values.items()})
        return entity

    def _place_new(self, entity: int, arch: Archetype, values: Mapping[int, Any]) -> None:
        row = arch.append_one(entity, values, self.tick)
        self._entities.place(entity, arch.id, row)

    def reserve_entity(self) -> int:
        """An id usable now, alive once :meth:`spawn_reserved` places it (deferred spawns)."""
        self._reserved += 1
        return int(self._entities.allocate_one())

    def spawn_reserved(self, entity: int, components: Mapping[Component, object]) -> None:
        values = {self._known(c): coerce_one(c, v) for c, v in components.items()}
        arch = self._archetype_for(values)
        self._reserved -= 1
        self._place_new(entity, arch, {c.id: v for c, v in values.items()})

    def spawn_batch(
        self, columns: Mapping[Component, npt.ArrayLike], count: int | None = None
    ) -> EntityIds:
        """Create many entities at once from one array per component; returns their ids."""
        if not columns and count is None:
            raise ComponentDataError("spawn_batch needs columns or an explicit count")
        comps = [self._known(c) for c in columns]
        n = count
        if n is None:
            first = np.asarray(next(iter(columns.values())))
            n = int(first.shape[0]) if first.ndim else 0
        if n < 0:
            raise ComponentDataError("count must not be negative")
        values = {c.id: coerce_rows(c, columns[c], n) for c in comps}
        arch = self._archetype_for(comps)
        ents = self._entities.allocate(n)
        first_row = arch.append(ents, values, self.tick)
        self._entities.place_range(ents, arch.id, first_row)
        return ents

    def despawn(self, entity: int) -> None:
        arch, row = self._check(entity)
        moved = arch.swap_remove(row)
        if moved is not None:
            self._entities.place(moved, arch.id, row)
        self._entities.release(entity)

    def despawn_batch(self, entities: npt.ArrayLike) -> None:
        ents = self._check_batch(entities)
        archs, rows = self._entities.locate_batch(ents)
        for arch_id in np.unique(archs):
            arch = self._archetypes[int(arch_id)]
            moved, new_rows = arch.remove_rows(rows[archs == arch_id])
            self._entities.place_batch(moved, arch.id, new_rows)
        self._entities.release_batch(ents)

    # -- per-entity component access ----------------------------------------------------------
    def has(self, entity: int, comp: Component) -> bool:
        arch, _ = self._check(entity)
        return comp.id in arch.component_ids

    def components_of(self, entity: int) -> tuple[Component, ...]:
        arch, _ = self._check(entity)
        return arch.components

    def get(self, entity: int, comp: Component) -> Any:
        """A copy of the entity's value of ``comp``."""
        arch, row = self._check(entity)
        col = arch.columns.get(comp.id)
        if col is None:
            raise UnknownComponentError(f"entity {entity:#x} has no {comp.name}")
        value = col[row]
        return value.copy() if isinstance(value, np.ndarray) else value

    def set(self, entity: int, comp: Component, value: object) -> None:
        """Overwrite the entity's value of ``comp`` and mark that row changed."""
        arch, row = self._check(entity)
        col = arch.columns.get(comp.id)
        if col is None:
            raise UnknownComponentError(f"entity {entity:#x} has no {comp.name}")
        col[row] = coerce_one(comp, value)
        arch.row_ticks[comp.id][row] = self.tick

    def insert(self, entity: int, comp: Component, value: object) -> None:
        """Add ``comp`` to the entity (moving it to another archetype), or set it if present."""
        arch, row = self._check(entity)
        comp = self._known(comp)
        val = coerce_one(comp, value)
        if comp.id in arch.component_ids:
            arch.columns[comp.id][row] = val
            arch.row_ticks[comp.id][row] = self.tick
            return
        dest = self._with(arch, comp)
        self._move(entity, arch, row, dest, {comp.id: val})

    def remove(self, entity: int, comp: Component) -> None:
        """Take ``comp`` off the entity."""
        arch, row = self._check(entity)
        if comp.id not in arch.component_ids:
            raise UnknownComponentError(f"entity {entity:#x} has no {comp.name}")
        self._move(entity, arch, row, self._without(arch, comp), {})

    def _move(
        self, entity: int, src: Archetype, row: int, dest: Archetype, extra: Mapping[int, Any]
    ) -> None:
        dest.reserve(1)
        new_row = dest.count
        dest.entities[new_row] = entity
        for cid, col in dest.columns.items():
            if cid in extra:
                col[new_row] = extra[cid]
                dest.row_ticks[cid][new_row] = self.tick
            else:
                col[new_row] = src.columns[cid][row]
                dest.row_ticks[cid][new_row] = max(
                    int(src.row_ticks[cid][row]), src.column_ticks[cid]
                )
        dest.count = new_row + 1
        moved = src.swap_remove(row)
        if moved is not None:
            self._entities.place(moved, src.id, row)
        self._entities.place(entity, dest.id, new_row)

    # -- batched structural changes -----------------------------------------------------------
    def insert_batch(self, entities: npt.ArrayLike, comp: Component, values: npt.ArrayLike) -> None:
        """Add (or overwrite) ``comp`` on many entities; ``values`` has one row per entity."""
        ents = self._check_batch(entities)
        comp = self._known(comp)
        vals = coerce_rows(comp, values, len(ents))
        self._restructure(ents, comp, vals)

    def remove_batch(self, entities: npt.ArrayLike, comp: Component) -> None:
        """Take ``comp`` off many entities; every one of them must have it."""
        ents = self._check_batch(entities)
        self._restructure(ents, comp, None)

    def _restructure(self, ents: EntityIds, comp: Component, vals: Column | None) -> None:
        archs, rows = self._entities.locate_batch(ents)
        order = np.argsort(archs, kind="stable")
        bounds = np.flatnonzero(np.diff(archs[order])) + 1
        groups = [g for g in np.split(order, bounds) if len(g)]
        if vals is None:  # check every group before changing anything
            for group in groups:
                if comp.id not in self._archetypes[int(archs[group[0]])].component_ids:
                    raise UnknownComponentError(
                        f"entity {int(ents[group[0]]):#x} has no {comp.name} to remove"
                    )
        for group in groups:
            src = self._archetypes[int(archs[group[0]])]
            src_rows = rows[group]
            has = comp.id in src.component_ids
            if vals is not None and has:
                src.columns[comp.id][src_rows] = vals[group]
                src.row_ticks[comp.id][src_rows] = self.tick
                continue
            dest = self._with(src, comp) if vals is not None else self._without(src, comp)
            dest.reserve(len(group))
            first = dest.count
            src.copy_rows_into(src_rows, dest, first)
            dest.entities[first : first + len(group)] = ents[group]
            if vals is not None:
                dest.columns[comp.id][first : first + len(group)] = vals[group]
                dest.row_ticks[comp.id][first : first + len(group)] = self.tick
            dest.count = first + len(group)
            moved, new_rows = src.remove_rows(src_rows)
            self._entities.place_batch(moved, src.id, new_rows)
            self._entities.place_range(ents[group], dest.id, first)

    # -- queries ------------------------------------------------------------------------------
    def query(self, *components: Component, without: Sequence[Component] = ()) -> Query:
        """The cached query for entities having all ``components`` and none of ``without``."""
        key = (tuple(c.id for c in components), tuple(sorted(c.id for c in without)))
        q = self._queries.get(key)
        if q is None:
            for c in (*components, *without):
                self._known(c)
            q = Query(self, components, without)
            self._queries[key] = q
        return q

    # -- resources ----------------------------------------------------------------------------
    def insert_resource(self, value: object, as_type: type | None = None) -> None:
        """Store a world-global singleton, keyed by its type."""
        self._resources[as_type or type(value)] = value

    def resource(self, kind: type[T]) -> T:
        try:
            return cast(T, self._resources[kind])
        except KeyError:
            raise UnknownComponentError(f"no resource of type {kind.__name__}") from None

    def get_resource(self, kind: type[T]) -> T | None:
        return cast("T | None", self._resources.get(kind))

    def remove_resource(self, kind: type) -> None:
        self._resources.pop(kind, None)

    # -- running ------------------------------------------------------------------------------
    def add_system(
        self,
        fn: SystemFn,
        *,
        stage: Stage = Stage.SIMULATION,
        reads: Sequence[Component] = (),
        writes: Sequence[Component] = (),
        after: Sequence[str] = (),
        before: Sequence[str] = (),
        name: str | None = None,
        exclusive: bool = False,
    ) -> str:
        """Schedule ``fn(ctx)`` in ``stage``; returns the system's name (for ordering)."""
        for c in (*reads, *writes):
            self._known(c)
        return self.schedule.add(
            fn, stage=stage, reads=reads, writes=writes, after=after, before=before,
            name=name, exclusive=exclusive,
        )

    def system(self, **kwargs: Any) -> Callable[[SystemFn], SystemFn]:
        """Decorator form of :meth:`add_system`."""

        def register(fn: SystemFn) -> SystemFn:
            self.add_system(fn, **kwargs)
            return fn

        return register

    def metrics(self) -> MetricsSnapshot:
        """Frame telemetry plus entity and archetype counts, frozen for export."""
        return self.telemetry.snapshot(self.tick, self.entity_count, len(self._archetypes))

    def step(self, dt: float = 1.0 / 60.0) -> None:
        """Run one frame: every stage in order, then advance the change tick."""
        self.schedule.run_frame(self, dt)
        self.events.update()
        self.tick += 1
