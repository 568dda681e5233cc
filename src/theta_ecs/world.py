"""The World: entities, their components in archetype tables, resources, events and a schedule."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from ._core import WorldCore
from ._entities import INDEX_BITS, INDEX_MASK, EntityAllocator
from .archetype import Archetype, Column, EntityIds
from .component import Component, ComponentRegistry
from .errors import ComponentDataError, StaleEntityError, UnknownComponentError
from .events import Events
from .query import Query
from .schedule import Scheduler, Stage, SystemFn
from .telemetry import MetricsSnapshot, Telemetry
from .values import as_array, coerce_one, coerce_rows

T = TypeVar("T")

__all__ = ["INDEX_BITS", "INDEX_MASK", "World", "entity_generation", "entity_index"]


def entity_index(entity: int) -> int:
    return entity & INDEX_MASK


def entity_generation(entity: int) -> int:
    return entity >> INDEX_BITS


def _entity_id(entity: object) -> int:
    """A Python int in 0..2^64-1, or StaleEntityError (floats and bools are not ids)."""
    if isinstance(entity, (bool, np.bool_)) or not isinstance(entity, (int, np.integer)):
        raise StaleEntityError(f"{entity!r} is not an entity id")
    value = int(entity)
    if not 0 <= value < 1 << 64:
        raise StaleEntityError(f"{entity!r} is not an entity id")
    return value


def _entity_ids(entities: npt.ArrayLike) -> EntityIds:
    """A contiguous uint64 array of ids, or a ThetaError (floats, negatives, 2-D input)."""
    arr = np.asarray(entities)
    if arr.size == 0:
        return np.zeros(0, np.uint64)
    if arr.dtype.kind not in "ui":
        raise StaleEntityError(f"entity ids must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ComponentDataError("entity ids must be a 1-D array")
    if arr.dtype.kind == "i" and (arr < 0).any():
        raise StaleEntityError("negative entity id in the batch")
    return np.ascontiguousarray(arr, dtype=np.uint64)


class World(WorldCore):
    """Holds every entity and component of one simulation.

    Entities are 64-bit ids (32-bit index, 32-bit generation). Component values live in archetype
    tables as numpy columns; queries hand systems views of those columns. The per-entity
    operations (``get``, ``set``, ``insert``, ``remove``, ``has``, ``spawn``, ``despawn``) are
    implemented in C by :class:`theta_ecs._core.WorldCore`; the methods here are the batched
    operations and the checked paths the C code falls back on.
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
        self._archetype_by_set: dict[frozenset[int], Archetype] = {}
        self._queries: dict[tuple[tuple[int, ...], tuple[int, ...]], Query] = {}
        self._query_cache: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[Query, object]] = {}
        self._resources: dict[type, object] = {}
        self._empty = self._archetype_for(())
        self._remember_spawn_route(self._empty)
        #: Frame number: advances once per :meth:`step`.
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

    @property
    def tables(self) -> Sequence[Archetype]:
        """The live, append-only archetype list (what queries match against); do not modify."""
        return self._archetypes

    # -- checked paths the C core falls back on ---------------------------------------------
    @staticmethod
    def _entity_id(entity: object) -> int:
        return _entity_id(entity)

    @staticmethod
    def _coerce(comp: Component, value: object) -> Column:
        return coerce_one(comp, value)

    # -- entities -----------------------------------------------------------------------------
    @property
    def entity_count(self) -> int:
        return int(self._entities.alive_count)

    def is_alive(self, entity: int) -> bool:
        """Whether ``entity`` names a live entity (False for any other integer)."""
        if isinstance(entity, (bool, np.bool_)) or not isinstance(entity, (int, np.integer)):
            raise StaleEntityError(f"{entity!r} is not an entity id")
        return 0 <= entity < 1 << 64 and bool(self._entities.is_alive(int(entity)))

    def alive_mask(self, entities: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Vectorized :meth:`is_alive`: one bool per id."""
        return self._entities.alive_mask(_entity_ids(entities))

    def _check(self, entity: int) -> tuple[Archetype, int]:
        entity = _entity_id(entity)
        if not self._entities.is_alive(entity):
            raise StaleEntityError(
                f"entity {int(entity):#x} (index {entity_index(entity)}, generation "
                f"{entity_generation(entity)}) is not alive"
            )
        arch_id, row = self._entities.locate(entity)
        return self._archetypes[arch_id], row

    def _check_batch(self, entities: npt.ArrayLike) -> EntityIds:
        ents = _entity_ids(entities)
        alive = self._entities.alive_mask(ents)
        if not alive.all():
            bad = int(ents[np.flatnonzero(~alive)[0]])
            raise StaleEntityError(f"entity {bad:#x} in the batch is not alive")
        if self._entities.has_duplicates(ents):
            raise ComponentDataError("an entity appears twice in the batch")
        return ents

    def _spawn_checked(self, components: Mapping[Component, object]) -> int:
        """:meth:`spawn` for what the C path does not take (first use of a component set,
        numpy values, unregistered components); remembers the route for next time."""
        values = {self._known(c): coerce_one(c, v) for c, v in components.items()}
        arch = self._archetype_for(values)
        entity = int(self._entities.allocate_one())
        self._place_new(entity, arch, {c.id: v for c, v in values.items()})
        self._remember_spawn_route(arch)
        return entity

    def _place_new(self, entity: int, arch: Archetype, values: Mapping[int, Any]) -> None:
        row = arch.append_one(entity, values, self.change_tick)
        self._entities.place(entity, arch.id, row)

    def reserve_entity(self) -> int:
        """An id usable now, alive once :meth:`spawn_reserved` places it (deferred spawns)."""
        return int(self._entities.allocate_one())

    def _spawn_reserved_checked(self, entity: int, components: Mapping[Component, object]) -> None:
        """:meth:`spawn_reserved` off the C path (the caller releases the id on a bad value)."""
        values = {self._known(c): coerce_one(c, v) for c, v in components.items()}
        arch = self._archetype_for(values)
        self._place_new(entity, arch, {c.id: v for c, v in values.items()})
        self._remember_spawn_route(arch)

    def release_reserved(self, entity: int) -> None:
        """Give back a reserved id that will never be spawned."""
        entity = _entity_id(entity)
        if not self._entities.is_reserved(entity):
            raise StaleEntityError(f"entity {entity:#x} is not reserved")
        self._entities.release(entity)

    def spawn_batch(
        self, columns: Mapping[Component, npt.ArrayLike], count: int | None = None
    ) -> EntityIds:
        """Create many entities at once from one array per component; returns their ids."""
        if not columns and count is None:
            raise ComponentDataError("spawn_batch needs columns or an explicit count")
        comps = [self._known(c) for c in columns]
        if count is None:
            first = as_array(comps[0].name, next(iter(columns.values())))
            n = int(first.shape[0]) if first.ndim else 0
        else:
            try:
                n = operator.index(count)
            except TypeError:
                raise ComponentDataError(f"count must be an integer, got {count!r}") from None
        if n < 0:
            raise ComponentDataError("count must not be negative")
        values = {c.id: coerce_rows(c, columns[c], n) for c in comps}
        arch = self._archetype_for(comps)
        ents = self._entities.allocate(n)
        first_row = arch.append(ents, values, self.change_tick)
        self._entities.place_range(ents, arch.id, first_row)
        return ents

    def despawn_batch(self, entities: npt.ArrayLike) -> None:
        ents = self._check_batch(entities)
        archs, rows = self._entities.locate_batch(ents)
        for arch_id in np.unique(archs):
            arch = self._archetypes[int(arch_id)]
            moved, new_rows = arch.remove_rows(rows[archs == arch_id])
            self._entities.place_batch(moved, arch.id, new_rows)
        self._entities.release_batch(ents)

    # -- per-entity component access ----------------------------------------------------------
    def components_of(self, entity: int) -> tuple[Component, ...]:
        arch, _ = self._check(entity)
        return arch.components

    # -- batched structural changes -----------------------------------------------------------
    def insert_batch(self, entities: npt.ArrayLike, comp: Component, values: npt.ArrayLike) -> None:
        """Add (or overwrite) ``comp`` on many entities; ``values`` has one row per entity."""
        ents = self._check_batch(entities)
        comp = self._known(comp)
        vals = coerce_rows(comp, values, len(ents))
        self._restructure(ents, comp, vals)

    def remove_batch(self, entities: npt.ArrayLike, comp: Component) -> None:
        """Take ``comp`` off many entities; every one of them must have it."""
        comp = self._known(comp)
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
                src.row_ticks[comp.id][src_rows] = self.change_tick
                continue
            dest = self._with(src, comp) if vals is not None else self._without(src, comp)
            dest.reserve(len(group))
            first = dest.count
            src.copy_rows_into(src_rows, dest, first)
            dest.entities[first : first + len(group)] = ents[group]
            if vals is not None:
                dest.columns[comp.id][first : first + len(group)] = vals[group]
                dest.row_ticks[comp.id][first : first + len(group)] = self.change_tick
            dest.count = first + len(group)
            moved, new_rows = src.remove_rows(src_rows)
            self._entities.place_batch(moved, src.id, new_rows)
            self._entities.place_range(ents[group], dest.id, first)

    # -- queries ------------------------------------------------------------------------------
    def query(self, *components: Component, without: Sequence[Component] = ()) -> Query:
        """The cached query for entities having all ``components`` and none of ``without``."""
        # Keyed by object identity (the cache keeps the objects alive, so ids are not reused):
        # a repeated query skips the registry; an equal but distinct object is checked below.
        fast_key = (tuple(map(id, components)), tuple(map(id, without)))
        hit = self._query_cache.get(fast_key)
        if hit is not None:
            return hit[0]
        asked = (components, tuple(without))
        components = tuple(self._known(c) for c in components)
        without = tuple(self._known(c) for c in without)
        key = (tuple(c.id for c in components), tuple(sorted(c.id for c in without)))
        q = self._queries.get(key)
        if q is None:
            q = Query(self, components, without)
            self._queries[key] = q
        self._query_cache[fast_key] = (q, asked)
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
        """Run one frame: every stage in order, then advance the frame and change ticks."""
        self.schedule.run_frame(self, dt)
        self.events.update()
        self.tick += 1
        self.advance_change_tick()
