"""Regression tests for misuse of the core: each must end in our exception or a counted drop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from theta_ecs import (
    ComponentDataError,
    ManifestMismatchError,
    ScheduleError,
    Stage,
    StaleEntityError,
    SystemContext,
    UnknownComponentError,
    World,
    manifest,
)
from theta_ecs._entities import EntityAllocator, EntityStateError

from .conftest import Health, Pos, Stats, Tag, Vel


# -- entity ids -------------------------------------------------------------------------------
def test_allocator_rejects_unknown_ids_instead_of_touching_memory() -> None:
    alloc = EntityAllocator(16)
    (e,) = alloc.allocate(1)
    for bad in (2**32 - 1, (5 << 32) | int(e), 12345):
        with pytest.raises(EntityStateError):
            alloc.locate(bad)
        with pytest.raises(EntityStateError):
            alloc.place(bad, 0, 0)
        with pytest.raises(EntityStateError):
            alloc.release(bad)
    alloc.place(int(e), 0, 0)
    alloc.release(int(e))
    with pytest.raises(EntityStateError):
        alloc.release(int(e))  # a double free would hand the index out twice
    a, b = alloc.allocate(2)
    assert a != b


def test_spawn_reserved_only_accepts_reserved_ids(world: World) -> None:
    live = world.spawn({Pos: (1, 2, 3)})
    with pytest.raises(StaleEntityError, match="not reserved"):
        world.spawn_reserved(live, {Vel: (1, 1, 1)})
    with pytest.raises(StaleEntityError):
        world.spawn_reserved(2**32 - 1, {Pos: (0, 0, 0)})
    assert world.entity_count == 1
    reserved = world.reserve_entity()
    assert not world.is_alive(reserved) and world.entity_count == 1
    with pytest.raises(ComponentDataError):
        world.spawn_reserved(reserved, {Health: "many"})
    assert world.entity_count == 1  # the reserved id was released, not leaked
    with pytest.raises(StaleEntityError):
        world.spawn_reserved(reserved, {Health: 1})


def test_generation_never_wraps_into_a_stale_id(world: World) -> None:
    e0 = world.spawn({Pos: (1, 2, 3)})
    world._entities.generation[0] = 2**32 - 1  # as if index 0 had been despawned 2^32-1 times
    last = (2**32 - 1) << 32
    world.despawn(last)
    e2 = world.spawn({Pos: (9, 9, 9)})
    assert e2 & 0xFFFFFFFF != 0  # index 0 is retired, not reused with generation 0
    assert not world.is_alive(e0) and not world.is_alive(last)
    assert world._entities.retired_count == 1


@pytest.mark.parametrize("bad", [0.0, 0.7, np.float64(0.9), False, True, "0", None])
def test_non_integer_ids_are_rejected(world: World, bad: object) -> None:
    world.spawn({Pos: (1, 2, 3)})
    world.spawn({Pos: (4, 5, 6)})
    with pytest.raises(StaleEntityError):
        world.get(bad, Pos)  # type: ignore[arg-type]
    with pytest.raises(StaleEntityError):
        world.is_alive(bad)  # type: ignore[arg-type]
    assert world.entity_count == 2


def test_batches_of_floats_or_negatives_are_rejected(world: World) -> None:
    world.spawn({Pos: (1, 2, 3)})
    for bad in (np.array([0.7]), [-1], np.array([[0]])):
        with pytest.raises((StaleEntityError, ComponentDataError)):
            world.despawn_batch(bad)
    assert world.entity_count == 1
    assert world.is_alive(0) and not world.is_alive(-1) and not world.is_alive(2**64)
    assert world.alive_mask([0, 1, 2**40]).tolist() == [True, False, False]


def test_small_batch_duplicate_check(world: World) -> None:
    ents = world.spawn_batch({Health: np.arange(5000, dtype=np.int32)})
    with pytest.raises(ComponentDataError, match="twice"):
        world.insert_batch([ents[7], ents[7]], Tag, np.ones(2, np.uint8))
    world.insert_batch([ents[7], ents[8]], Tag, np.ones(2, np.uint8))
    assert world.query(Tag).count() == 2


# -- values -----------------------------------------------------------------------------------
def test_structured_values_are_checked_per_field_and_copied(world: World) -> None:
    bad = np.array([(1, 300.5)], dtype=[("hp", "i8"), ("speed", "f8")])
    ok = np.array([(7, 1.5)], dtype=[("hp", "i8"), ("speed", "f8")])
    with pytest.raises(ComponentDataError, match="hp"):
        world.spawn_batch({Stats: np.array([(2**40, 1.0)], dtype=bad.dtype)})
    with pytest.raises(ComponentDataError):
        world.spawn_batch({Stats: np.array([(1.5, 1.0)], dtype=[("hp", "f8"), ("speed", "f8")])})
    (e,) = world.spawn_batch({Stats: ok})
    got = world.get(int(e), Stats)
    got["hp"] = 999
    assert world.get(int(e), Stats)["hp"] == 7
    world.spawn_batch({Stats: bad})  # 300.5 fits float32: accepted


def test_bad_shapes_types_and_overflows_raise_our_error(world: World) -> None:
    with pytest.raises(ComponentDataError):
        world.spawn_batch({Pos: [[1, 2, 3], [1, 2]]})
    with pytest.raises(ComponentDataError):
        world.spawn_batch({}, count=1.5)  # type: ignore[arg-type]
    with pytest.raises(ComponentDataError, match="overflow"):
        world.spawn({Pos: np.array([1e300, 0, 0])})
    e_inf = world.spawn({Pos: np.array([np.inf, 0, 0])})  # an infinity stays an infinity
    assert np.isinf(world.get(e_inf, Pos)[0])
    e = world.spawn({Pos: (0, 0, 0)})
    for call in (
        lambda: world.get(e, "Position"),
        lambda: world.has(e, "Position"),
        lambda: world.set(e, "Position", 1),
        lambda: world.remove(e, "Position"),
        lambda: world.remove_batch([e], "Position"),
        lambda: world.query("Position"),
    ):
        with pytest.raises(UnknownComponentError):
            call()  # type: ignore[no-untyped-call]
    with pytest.raises(UnknownComponentError):
        list(world.query(Pos).changed_since(0, [Vel]))


def test_read_only_views_cannot_be_made_writable(world: World) -> None:
    world.spawn({Pos: (0, 0, 0)})

    def sneaky(ctx: SystemContext) -> None:
        for _, (p,) in ctx.query(Pos):
            p.flags.writeable = True

    world.add_system(sneaky, reads=[Pos])
    with pytest.raises(ValueError, match="WRITEABLE"):
        world.step()
    for _, (p,) in world.query(Pos):
        assert not p.any()


# -- change detection -------------------------------------------------------------------------
def test_changes_later_in_the_frame_are_seen_next_run(world: World) -> None:
    world.spawn({Pos: (0, 0, 0)})
    seen: list[int] = []

    def watcher(ctx: SystemContext) -> None:
        seen.append(sum(len(b.entities) for b in ctx.changed(Pos)))

    def writer(ctx: SystemContext) -> None:
        if ctx.resource(list)[0] == 3:
            for _, (p,) in ctx.query(Pos):
                p += 1
        ctx.resource(list)[0] += 1

    world.insert_resource([0])
    world.add_system(watcher, reads=[Pos])
    world.add_system(writer, writes=[Pos], after=["watcher"])
    for _ in range(6):
        world.step()
    assert seen == [1, 0, 0, 0, 1, 0]  # the spawn, then the write of frame 4, once each


def test_deferred_spawns_are_seen_as_changes(world: World) -> None:
    seen: list[int] = []

    def spawner(ctx: SystemContext) -> None:
        ctx.commands.spawn({Pos: (1, 1, 1)})

    def watcher(ctx: SystemContext) -> None:
        seen.append(sum(len(b.entities) for b in ctx.changed(Pos)))

    world.add_system(spawner, reads=[Pos], stage=Stage.SIMULATION)
    world.add_system(watcher, reads=[Pos], stage=Stage.SIMULATION, after=["spawner"])
    for _ in range(3):
        world.step()
    assert seen == [0, 1, 1]


# -- failures inside a frame ------------------------------------------------------------------
def test_failed_startup_system_is_retried_and_later_ones_still_run(world: World) -> None:
    ran: list[str] = []

    def s1(ctx: SystemContext) -> None:
        ran.append("s1")
        if ran.count("s1") == 1:
            raise RuntimeError("first try fails")

    def s2(ctx: SystemContext) -> None:
        ran.append("s2")

    world.add_system(s1, stage=Stage.STARTUP)
    world.add_system(s2, stage=Stage.STARTUP, after=["s1"])
    with pytest.raises(RuntimeError):
        world.step()
    world.step()
    world.step()
    assert ran == ["s1", "s1", "s2"]


def test_a_failing_system_keeps_earlier_commands_and_releases_its_own(world: World) -> None:
    def spawner(ctx: SystemContext) -> None:
        ctx.commands.spawn({Health: 1})

    def bad(ctx: SystemContext) -> None:
        ctx.commands.spawn({Health: 2})
        raise RuntimeError("boom")

    world.add_system(spawner, reads=[Health])
    world.add_system(bad, reads=[Health], after=["spawner"])
    with pytest.raises(RuntimeError):
        world.step()
    assert world.entity_count == 1
    assert world._entities.reserved_count == 0
    assert "simulation" in world.telemetry.stages and world.telemetry.frames == 1


def test_bad_deferred_values_fail_inside_the_system(world: World) -> None:
    def bad(ctx: SystemContext) -> None:
        ctx.commands.spawn({Health: "lots"})

    world.add_system(bad, reads=[Health])
    with pytest.raises(ComponentDataError):
        world.step()
    assert world._entities.reserved_count == 0


def test_deferred_values_are_copied_and_double_removes_counted(world: World) -> None:
    ents = [world.spawn({Pos: (0, 0, 0), Vel: (0, 0, 0)}) for _ in range(3)]
    buf = np.zeros(3, np.float32)

    def writer(ctx: SystemContext) -> None:
        for i, e in enumerate(ents):
            buf[:] = i
            ctx.commands.insert(e, Health, np.int32(i))
            ctx.commands.insert(e, Pos, buf)

    def remover(ctx: SystemContext) -> None:
        ctx.commands.remove(ents[0], Vel)

    world.add_system(writer, writes=[Pos, Health])
    world.add_system(remover, reads=[Vel], name="r1")
    world.add_system(lambda ctx: remover(ctx), reads=[Vel], name="r2")
    world.step()
    assert [float(world.get(e, Pos)[0]) for e in ents] == [0.0, 1.0, 2.0]
    assert not world.has(ents[0], Vel)
    assert world.telemetry.counters["deferred_noop_drops"] == 1


# -- schedule edge cases ----------------------------------------------------------------------
def test_ordering_against_a_later_stage_is_an_error(world: World) -> None:
    world.add_system(lambda ctx: None, name="draw", stage=Stage.RENDER)
    world.add_system(lambda ctx: None, name="sim", stage=Stage.SIMULATION, after=["draw"])
    with pytest.raises(ScheduleError, match="fixed order"):
        world.step()


def test_startup_system_added_later_runs_once(world: World) -> None:
    world.step()
    ran: list[int] = []
    world.add_system(lambda ctx: ran.append(1), name="late", stage=Stage.STARTUP)
    world.step()
    world.step()
    assert ran == [1]


# -- manifest input ---------------------------------------------------------------------------
def test_malformed_manifest_files_raise_our_error(tmp_path: Path) -> None:
    for content in ("[1, 2]", json.dumps({"components": [{"id": 1}]}), '"text"'):
        (tmp_path / "m.json").write_text(content)
        with pytest.raises(ManifestMismatchError, match="not a component manifest"):
            manifest.check([], tmp_path / "m.json", None)
    with pytest.raises(ManifestMismatchError, match="cannot read"):
        manifest.check([], tmp_path, None)
