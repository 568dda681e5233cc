"""The scheduler: stages in a fixed order, systems ordered by declared dependencies.

Systems declare the components they read and write. Read columns reach them as read-only views,
so a write through one fails at once and is counted as a policy violation. Structural changes
(spawn, despawn, insert, remove) go through a per-system command buffer applied at the end of
the stage, so they never disturb an iteration in progress.

A frame's fixed cost is per system: one context (reused across frames), two clock reads and one
telemetry sample. Command buffers exist only for systems that record something.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

from .component import Component
from .errors import AccessPolicyViolation, ScheduleError, StaleEntityError, ThetaError
from .events import EventReader
from .query import Query, QueryBatch
from .worldview import WorldView

perf_counter = time.perf_counter

T = TypeVar("T")
E = TypeVar("E")
SystemFn = Callable[["SystemContext"], None]


class Stage(IntEnum):
    """Frame stages, run in this order; STARTUP runs on the first frame only."""

    STARTUP = 0
    SIMULATION = 1
    RENDER = 2
    EDITOR = 3


@dataclass
class SystemSpec:
    name: str
    fn: SystemFn
    stage: Stage
    reads: frozenset[Component]
    writes: frozenset[Component]
    after: tuple[str, ...]
    before: tuple[str, ...]
    exclusive: bool = False
    last_run_tick: int = 0
    completed: bool = False  # has run to the end at least once (startup systems run until then)
    readers: dict[type, EventReader[Any]] = field(default_factory=dict)
    context: SystemContext | None = None  # reused frame after frame

    def conflicts_with(self, other: SystemSpec) -> bool:
        """Whether the two may not run at the same time."""
        if self.exclusive or other.exclusive:
            return True
        return bool(
            self.writes & (other.reads | other.writes) or other.writes & (self.reads | self.writes)
        )


class DeferredCommands:
    """Structural changes recorded during a system and applied at the stage boundary.

    Values are checked and copied when recorded, so a bad value fails inside the system that
    gave it, and a buffer the caller reuses cannot change what was recorded.
    """

    def __init__(self, world: WorldView) -> None:
        self._world = world
        self._ops: list[Callable[[WorldView], None]] = []
        self._reserved: list[int] = []

    def _checked(self, components: Mapping[Component, object]) -> dict[Component, object]:
        check = self._world._checked_value
        return dict(check(c, v) for c, v in components.items())

    def spawn(self, components: Mapping[Component, object] | None = None) -> int:
        """Reserve an id now; the entity exists from the end of the stage."""
        values = self._checked(components or {})
        entity = self._world.reserve_entity()
        self._reserved.append(entity)
        self._ops.append(lambda w: w.spawn_reserved(entity, values))
        return entity

    def despawn(self, entity: int) -> None:
        self._ops.append(lambda w: w.despawn(entity))

    def insert(self, entity: int, comp: Component, value: object) -> None:
        comp, checked = self._world._checked_value(comp, value)
        self._ops.append(lambda w: w.insert(entity, comp, checked))

    def remove(self, entity: int, comp: Component) -> None:
        comp = self._world._known(comp)

        def remove_if_present(w: WorldView) -> None:
            if not w.has(entity, comp):  # e.g. two systems removed it this stage
                w.telemetry.count("deferred_noop_drops")
                return
            w.remove(entity, comp)

        self._ops.append(remove_if_present)

    def run(self, op: Callable[[WorldView], None]) -> None:
        """Any other world mutation, deferred the same way."""
        self._ops.append(op)

    def __len__(self) -> int:
        return len(self._ops)

    def apply(self) -> None:
        """Apply in order; an op on an entity that died meanwhile is dropped and counted."""
        ops, self._ops = self._ops, []
        self._reserved = []
        self._world.advance_change_tick()
        for op in ops:
            try:
                op(self._world)
            except StaleEntityError:
                self._world.telemetry.count("deferred_stale_drops")

    def discard(self) -> None:
        """Drop everything recorded (the system failed) and give back reserved ids."""
        self._ops = []
        for entity in self._reserved:
            self._world.release_reserved(entity)
        self._reserved = []


class SystemContext:
    """What a system sees: its declared columns, resources, events and a command buffer.

    The scheduler keeps one context per system and refreshes it before each run.
    """

    __slots__ = ("_commands", "_declared", "_plans", "_spec", "_world", "dt", "last_run_tick",
                 "tick")

    def __init__(self, world: WorldView, spec: SystemSpec, dt: float) -> None:
        self._world = world
        self._spec = spec
        self._commands: DeferredCommands | None = None
        self._declared = spec.reads | spec.writes
        # (components, without) -> the query and its writable column ids, checked once
        self._plans: dict[tuple[tuple[Component, ...], tuple[Component, ...]],
                          tuple[Query, frozenset[int]]] = {}
        self.dt = dt
        self.tick = world.advance_change_tick()
        self.last_run_tick = spec.last_run_tick

    @property
    def commands(self) -> DeferredCommands:
        """This run's command buffer (made on first use), applied at the end of the stage."""
        if self._commands is None:
            self._commands = DeferredCommands(self._world)
        return self._commands

    @property
    def name(self) -> str:
        return self._spec.name

    def _violation(self, message: str) -> AccessPolicyViolation:
        self._world.telemetry.count("policy_violations")
        return AccessPolicyViolation(f"system {self._spec.name!r}: {message}")

    def _allowed(self, components: Sequence[Component]) -> None:
        declared = self._declared
        for comp in components:
            if comp not in declared:
                raise self._violation(f"queried {comp.name}, which it did not declare")

    def query(self, *components: Component, without: Sequence[Component] = ()) -> Iterator[
        QueryBatch
    ]:
        """Per-archetype batches; declared writes are writable views, reads are read-only."""
        key = (components, tuple(without))
        plan = self._plans.get(key)
        if plan is None:
            self._allowed(components)
            q = self._world.query(*components, without=without)
            writable = frozenset(c.id for c in components if c in self._spec.writes)
            plan = self._plans[key] = (q, writable)
        return plan[0].batches(plan[1])

    def changed(self, *components: Component, since: int | None = None) -> Iterator[QueryBatch]:
        """Rows whose components changed since this system last ran (or ``since``)."""
        self._allowed(components)
        q = self._world.query(*components)
        return q.changed_since(self.last_run_tick if since is None else since)

    def get(self, entity: int, comp: Component) -> Any:
        self._allowed((comp,))
        return self._world.get(entity, comp)

    def set(self, entity: int, comp: Component, value: object) -> None:
        if comp not in self._spec.writes:
            raise self._violation(f"set {comp.name}, which it declared read-only or not at all")
        self._world.set(entity, comp, value)

    def resource(self, kind: type[T]) -> T:
        return self._world.resource(kind)

    def send(self, event: object) -> None:
        self._world.events.send(event)

    def read(self, kind: type[E]) -> list[E]:
        """Events of ``kind`` this system has not seen yet."""
        reader = self._spec.readers.get(kind)
        if reader is None:
            reader = self._spec.readers[kind] = EventReader(self._world.events.channel(kind))
        events: list[E] = reader.read()
        return events


_STAGES = tuple(Stage)
_STAGE_NAMES = {stage: stage.name.lower() for stage in Stage}


def _order(systems: list[SystemSpec]) -> list[SystemSpec]:
    """Topological order by after/before; ties keep insertion order. Raises on a cycle."""
    names = {s.name for s in systems}
    deps: dict[str, set[str]] = {s.name: set() for s in systems}
    for s in systems:
        for a in s.after:
            if a in names:
                deps[s.name].add(a)
        for b in s.before:
            if b in names:
                deps[b].add(s.name)
    done: list[SystemSpec] = []
    placed: set[str] = set()
    pending = list(systems)
    while pending:
        ready = [s for s in pending if deps[s.name] <= placed]
        if not ready:
            cycle = ", ".join(s.name for s in pending)
            raise ScheduleError(f"dependency cycle among systems: {cycle}")
        first = ready[0]
        done.append(first)
        placed.add(first.name)
        pending.remove(first)
    return done


class Scheduler:
    """Runs systems stage by stage; optionally runs non-conflicting systems on threads."""

    def __init__(self, parallel: bool = False, workers: int = 2) -> None:
        self.parallel = parallel
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._systems: dict[str, SystemSpec] = {}
        self._ordered: dict[Stage, list[SystemSpec]] | None = None

    def add(
        self,
        fn: SystemFn,
        *,
        stage: Stage,
        reads: Sequence[Component],
        writes: Sequence[Component],
        after: Sequence[str],
        before: Sequence[str],
        name: str | None,
        exclusive: bool,
    ) -> str:
        name = name or getattr(fn, "__name__", None) or repr(fn)
        if name in self._systems:
            raise ScheduleError(f"a system named {name!r} is already scheduled")
        writes_set = frozenset(writes)
        self._systems[name] = SystemSpec(
            name=name,
            fn=fn,
            stage=Stage(stage),
            reads=frozenset(reads) - writes_set,
            writes=writes_set,
            after=tuple(after),
            before=tuple(before),
            exclusive=exclusive,
        )
        self._ordered = None
        return name

    def remove(self, name: str) -> None:
        if self._systems.pop(name, None) is None:
            raise ScheduleError(f"no system named {name!r}")
        self._ordered = None

    def systems(self, stage: Stage) -> list[SystemSpec]:
        if self._ordered is None:
            for s in self._systems.values():
                for dep in (*s.after, *s.before):
                    other = self._systems.get(dep)
                    if other is None:
                        raise ScheduleError(f"system {s.name!r} is ordered against unknown {dep!r}")
                    if (dep in s.after and other.stage > s.stage) or (
                        dep in s.before and other.stage < s.stage
                    ):
                        raise ScheduleError(
                            f"system {s.name!r} ({s.stage.name}) cannot run "
                            f"{'after' if dep in s.after else 'before'} {dep!r} "
                            f"({other.stage.name}): stages run in a fixed order"
                        )
            self._ordered = {
                st: _order([s for s in self._systems.values() if s.stage == st]) for st in Stage
            }
        return self._ordered[stage]

    def _waves(self, systems: list[SystemSpec]) -> list[list[SystemSpec]]:
        """Split an ordered stage into consecutive groups whose members may run together."""
        waves: list[list[SystemSpec]] = []
        for s in systems:
            wave = waves[-1] if waves else None
            if (
                wave is None
                or any(s.conflicts_with(o) for o in wave)
                or any(o.name in s.after or s.name in o.before for o in wave)
            ):
                waves.append([s])
            else:
                wave.append(s)
        return waves

    @staticmethod
    def _context(world: WorldView, spec: SystemSpec, dt: float) -> SystemContext:
        """The system's context, refreshed for this run (a new change tick, no commands)."""
        ctx = spec.context
        if ctx is None or ctx._world is not world:
            ctx = spec.context = SystemContext(world, spec, dt)
            return ctx
        ctx.dt = dt
        ctx.tick = world.advance_change_tick()
        ctx.last_run_tick = spec.last_run_tick
        ctx._commands = None
        return ctx

    @staticmethod
    def _violation(
        world: WorldView, spec: SystemSpec, exc: BaseException
    ) -> AccessPolicyViolation | None:
        """numpy's error for a write through a read-only view is a policy violation."""
        if (
            isinstance(exc, ValueError)
            and not isinstance(exc, ThetaError)
            and "read-only" in str(exc)
        ):
            world.telemetry.count("policy_violations")
            return AccessPolicyViolation(
                f"system {spec.name!r} wrote to a column it declared read-only"
            )
        return None

    def _run_one(self, world: WorldView, spec: SystemSpec, ctx: SystemContext) -> None:
        t0 = perf_counter()
        try:
            spec.fn(ctx)
        except ValueError as exc:
            violation = self._violation(world, spec, exc)
            if violation is not None:
                raise violation from exc
            raise
        finally:
            world.telemetry.record_system(spec.name, perf_counter() - t0)
            spec.last_run_tick = ctx.tick
        spec.completed = True

    def run_stage(self, world: WorldView, stage: Stage, dt: float) -> None:
        """Run a stage's systems, then apply the command buffers of those that finished.

        If a system raises, the systems that completed still get their commands applied, the
        failed system's buffer is discarded (its reserved ids released), and the error is
        re-raised once the stage's bookkeeping is done.
        """
        systems = self.systems(stage)
        if stage is Stage.STARTUP:
            systems = [s for s in systems if not s.completed]
        t0 = perf_counter()
        done: list[SystemContext] = []
        error: BaseException | None = None
        try:
            if self.parallel and len(systems) > 1:
                self._run_waves(world, systems, dt, done)
            else:
                # One clock read per system: each system's time runs from the end of the
                # previous one, so it includes preparing its context (a fraction of a µs).
                record = world.telemetry.record_system
                t1 = t0
                for spec in systems:
                    ctx = self._context(world, spec, dt)
                    try:
                        spec.fn(ctx)
                    except BaseException as exc:
                        if ctx._commands is not None:
                            ctx._commands.discard()
                        violation = self._violation(world, spec, exc)
                        if violation is not None:
                            raise violation from exc
                        raise
                    finally:
                        t2 = perf_counter()
                        record(spec.name, t2 - t1)
                        t1 = t2
                        spec.last_run_tick = ctx.tick
                    spec.completed = True
                    done.append(ctx)
        except BaseException as exc:
            error = exc
        finally:
            for ctx in done:
                if ctx._commands is not None and len(ctx._commands):
                    ctx._commands.apply()
            world.telemetry.record_stage(_STAGE_NAMES[stage], perf_counter() - t0)
        if error is not None:
            raise error

    def _run_waves(
        self, world: WorldView, systems: list[SystemSpec], dt: float, done: list[SystemContext]
    ) -> None:
        """Run non-conflicting neighbours on threads; ``done`` gets completed contexts in
        schedule order."""
        finished: dict[int, SystemContext] = {}
        failed: list[SystemContext] = []

        def run(spec: SystemSpec) -> None:
            ctx = self._context(world, spec, dt)
            try:
                self._run_one(world, spec, ctx)
            except BaseException:
                failed.append(ctx)
                raise
            finished[id(spec)] = ctx

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="theta-system")
        try:
            for wave in self._waves(systems):
                if len(wave) == 1:
                    run(wave[0])
                    continue
                futures = [self._pool.submit(run, s) for s in wave]
                errors = [f.exception() for f in futures]  # wait for the whole wave
                first = next((e for e in errors if e is not None), None)
                if first is not None:
                    raise first
        finally:
            for ctx in failed:
                if ctx._commands is not None:
                    ctx._commands.discard()
            done.extend(finished[id(s)] for s in systems if id(s) in finished)

    def run_frame(self, world: WorldView, dt: float) -> None:
        t0 = perf_counter()
        try:
            for stage in _STAGES:
                self.run_stage(world, stage, dt)
        finally:
            world.telemetry.record_frame(perf_counter() - t0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
