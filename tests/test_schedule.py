"""The scheduler: stage order, dependencies, access policy, deferred commands, telemetry."""

import json

import numpy as np
import pytest

from theta_ecs import AccessPolicyViolation, ScheduleError, Stage, SystemContext, World

from .conftest import Health, Pos, Tag, Vel


def test_stages_run_in_order_and_startup_once(world: World) -> None:
    seen: list[str] = []
    for stage in reversed(Stage):
        world.add_system(lambda ctx, s=stage: seen.append(s.name), stage=stage, name=stage.name)
    world.step()
    world.step()
    assert seen == ["STARTUP", "SIMULATION", "RENDER", "EDITOR", "SIMULATION", "RENDER", "EDITOR"]


def test_after_before_ordering_and_cycles(world: World) -> None:
    seen: list[str] = []
    world.add_system(lambda ctx: seen.append("c"), name="c", after=["b"])
    world.add_system(lambda ctx: seen.append("b"), name="b")
    world.add_system(lambda ctx: seen.append("a"), name="a", before=["b"])
    world.step()
    assert seen == ["a", "b", "c"]
    world.add_system(lambda ctx: None, name="x", after=["y"])
    world.add_system(lambda ctx: None, name="y", after=["x"])
    with pytest.raises(ScheduleError, match="cycle"):
        world.step()


def test_unknown_dependency_and_duplicate_names(world: World) -> None:
    world.add_system(lambda ctx: None, name="a", after=["ghost"])
    with pytest.raises(ScheduleError, match="ghost"):
        world.step()
    with pytest.raises(ScheduleError, match="already"):
        world.add_system(lambda ctx: None, name="a")


def test_movement_system_updates_positions(world: World) -> None:
    ents = world.spawn_batch({Pos: np.zeros((50, 3), np.float32),
                              Vel: np.full((50, 3), 2.0, np.float32)})

    def movement(ctx: SystemContext) -> None:
        for _, (p, v) in ctx.query(Pos, Vel):
            p += v * ctx.dt

    world.add_system(movement, reads=[Vel], writes=[Pos])
    for _ in range(4):
        world.step(0.5)
    np.testing.assert_allclose(world.get(int(ents[10]), Pos), [4, 4, 4])


def test_write_to_read_only_column_raises_and_is_counted(world: World) -> None:
    world.spawn_batch({Pos: np.zeros((5, 3), np.float32), Vel: np.ones((5, 3), np.float32)})

    def sneaky(ctx: SystemContext) -> None:
        for _, (_p, v) in ctx.query(Pos, Vel):
            v += 1  # declared read-only

    world.add_system(sneaky, reads=[Vel], writes=[Pos])
    with pytest.raises(AccessPolicyViolation, match="sneaky"):
        world.step()
    assert world.telemetry.counters["policy_violations"] == 1
    for _, (v,) in world.query(Vel):
        np.testing.assert_array_equal(v, 1.0)


def test_undeclared_component_access_is_a_violation(world: World) -> None:
    e = world.spawn({Pos: (0, 0, 0), Health: 3})

    def peeks(ctx: SystemContext) -> None:
        list(ctx.query(Health))

    def sets(ctx: SystemContext) -> None:
        ctx.set(e, Pos, (1, 1, 1))

    world.add_system(peeks, reads=[Pos])
    with pytest.raises(AccessPolicyViolation, match="did not declare"):
        world.step()
    world.schedule.remove("peeks")
    world.add_system(sets, reads=[Pos])
    with pytest.raises(AccessPolicyViolation, match="read-only"):
        world.step()
    assert world.telemetry.counters["policy_violations"] == 2


def test_spawn_and_despawn_inside_iteration_are_deferred(world: World) -> None:
    world.spawn_batch({Health: np.arange(10, dtype=np.int32)})
    spawned: list[int] = []

    def reaper(ctx: SystemContext) -> None:
        for ents, (hp,) in ctx.query(Health):
            for e, h in zip(ents.tolist(), hp.tolist()):
                if h % 2:
                    ctx.commands.despawn(e)
                    spawned.append(ctx.commands.spawn({Health: 100 + h, Tag: 1}))
            assert len(ents) == 10  # the iteration is not disturbed
        assert not any(ctx._world.is_alive(e) for e in spawned)

    world.add_system(reaper, reads=[Health])
    world.step()
    assert world.entity_count == 10
    assert sorted(world.get(e, Health) for e in spawned) == [101, 103, 105, 107, 109]
    assert world.query(Health, Tag).count() == 5


def test_deferred_ops_on_dead_entities_are_counted_drops(world: World) -> None:
    e = world.spawn({Health: 1})

    def twice(ctx: SystemContext) -> None:
        ctx.commands.despawn(e)
        ctx.commands.despawn(e)

    world.add_system(twice, reads=[Health])
    world.step()
    assert not world.is_alive(e)
    assert world.telemetry.counters["deferred_stale_drops"] == 1


def test_resources_and_events(world: World) -> None:
    class Score:
        def __init__(self) -> None:
            self.value = 0

    world.insert_resource(Score())
    received: list[str] = []

    def reader(ctx: SystemContext) -> None:
        received.extend(ctx.read(str))

    def sender(ctx: SystemContext) -> None:
        ctx.resource(Score).value += 1
        ctx.send(f"frame {ctx.resource(Score).value}")

    world.add_system(reader, name="reader")  # runs before the sender each frame
    world.add_system(sender, name="sender", after=["reader"])
    for _ in range(3):
        world.step()
    world.step()
    assert world.resource(Score).value == 4
    assert received == ["frame 1", "frame 2", "frame 3"]  # each event seen exactly once


def test_parallel_scheduler_matches_serial() -> None:
    results = []
    for parallel in (False, True):
        w = World(parallel=parallel)
        w.spawn_batch({Pos: np.zeros((1000, 3), np.float32), Vel: np.ones((1000, 3), np.float32),
                       Health: np.zeros(1000, np.int32)})

        def move(ctx: SystemContext) -> None:
            for _, (p, v) in ctx.query(Pos, Vel):
                p += v

        def heal(ctx: SystemContext) -> None:
            for _, (h,) in ctx.query(Health):
                h += 2

        w.add_system(move, reads=[Vel], writes=[Pos])
        w.add_system(heal, writes=[Health])
        waves = w.schedule._waves(w.schedule.systems(Stage.SIMULATION))
        assert len(waves) == 1  # no shared writes: one parallel wave
        for _ in range(5):
            w.step()
        w.schedule.close()
        results.append((w.query(Pos).entities(), [b.columns[0].copy() for b in w.query(Pos)],
                         [b.columns[0].copy() for b in w.query(Health)]))
    np.testing.assert_array_equal(results[0][1][0], results[1][1][0])
    np.testing.assert_array_equal(results[0][2][0], results[1][2][0])


def test_conflicting_systems_are_not_grouped(world: World) -> None:
    world.add_system(lambda ctx: None, name="w1", writes=[Pos])
    world.add_system(lambda ctx: None, name="r1", reads=[Pos])
    world.add_system(lambda ctx: None, name="w2", writes=[Vel])
    waves = world.schedule._waves(world.schedule.systems(Stage.SIMULATION))
    assert [[s.name for s in w] for w in waves] == [["w1"], ["r1", "w2"]]


def test_telemetry_snapshot_exports_json(world: World) -> None:
    world.spawn_batch({Pos: np.zeros((3, 3), np.float32)})
    world.add_system(lambda ctx: None, name="noop", reads=[Pos])
    for _ in range(5):
        world.step()
    data = json.loads(world.metrics().to_json())
    assert data["archetype_count"] == len(world.archetypes)
    assert data["frame"] == 5
    assert data["entity_count"] == 3
    assert set(data["stages"]) == {"startup", "simulation", "render", "editor"}
    assert data["systems"]["noop"]["mean_ms"] >= 0
    assert data["frame_time"]["peak_ms"] >= data["frame_time"]["mean_ms"] > 0


def test_contexts_are_refreshed_each_run_and_commands_made_on_use(world: World) -> None:
    seen: list[tuple[int, int, bool]] = []

    def watcher(ctx: SystemContext) -> None:
        seen.append((ctx.last_run_tick, ctx.tick, ctx._commands is None))
        if len(seen) == 2:
            ctx.commands.spawn({Health: 1})

    world.add_system(watcher, reads=[Health])
    for _ in range(3):
        world.step()
    (l0, t0, fresh0), (l1, t1, fresh1), (l2, t2, fresh2) = seen
    assert l0 == 0 and l1 == t0 and l2 == t1 and t0 < t1 < t2
    assert fresh0 and fresh1 and fresh2  # the buffer from frame 2 does not leak into frame 3
    assert world.entity_count == 1
    assert world.telemetry.systems["watcher"].count == 3
