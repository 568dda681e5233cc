"""Instance streams from ECS columns: only what change ticks say, one span per archetype."""

from __future__ import annotations

import numpy as np
import pytest

from theta_ecs import Stage, World
from theta_ecs.commandlog import Transform
from theta_ecs.scenes.components import CubePosition
from theta_ecs.stdcomponents import Color, Position, Rotation, Scale
from theta_xr.binding import STANDARD, Binding, scene_binding
from theta_xr.errors import BindingError
from theta_xr.instances import InstanceSet
from theta_xr.math3d import frustum_planes, projection_from_fov, symmetric_fov
from theta_xr.meshes import MeshLibrary


def make(n: int = 10, *, cull: bool = True) -> tuple[World, InstanceSet, np.ndarray]:
    world = World()
    ents = world.spawn_batch({Position: np.arange(3 * n, dtype=np.float32).reshape(n, 3),
                              Color: np.full((n, 4), 255, np.uint8)})
    inst = InstanceSet(world, (STANDARD,), MeshLibrary(), cull=cull)
    return world, inst, ents


def writes(inst: InstanceSet) -> dict[str, tuple[int, int]]:
    return {w.stream: (w.first, len(w.data)) for u in inst.sync() for w in u.writes}


def test_first_sync_sends_columns_and_defaults_for_missing_ones() -> None:
    world, inst, _ = make(10)
    ups = inst.sync()
    assert len(ups) == 1 and ups[0].realloc
    got = {w.stream: w for w in ups[0].writes}
    assert set(got) == {"pos", "rot", "scale", "color", "mesh"}
    np.testing.assert_array_equal(got["pos"].data, np.arange(30, dtype=np.float32).reshape(10, 3))
    # absent columns: the binding's defaults for the whole allocation
    assert got["rot"].data.shape == (64, 4) and (got["rot"].data[:, 3] == 1).all()
    assert (got["scale"].data == 1).all() and (got["mesh"].data == 0).all()
    assert np.shares_memory(got["pos"].data, world.query(Position).archetypes()[0].columns[
        Position.id])  # the column itself, not a copy


def test_only_changed_rows_are_sent() -> None:
    world, inst, ents = make(100)
    inst.sync()
    assert writes(inst) == {}
    world.set(int(ents[40]), Position, (1.0, 2.0, 3.0))
    world.set(int(ents[42]), Position, (1.0, 2.0, 3.0))
    assert writes(inst) == {"pos": (40, 3)}  # one span covering both rows
    assert inst.rows_uploaded == 3


def test_a_system_writing_the_column_resends_it() -> None:
    world, inst, _ = make(50)
    inst.sync()

    def move(ctx: object) -> None:
        for _, (pos,) in ctx.query(Position):  # type: ignore[attr-defined]
            pos += 1.0

    world.add_system(move, stage=Stage.SIMULATION, writes=[Position])
    world.step()
    assert writes(inst) == {"pos": (0, 50)}
    assert writes(inst) == {}


def test_despawn_resends_the_row_that_moved_into_the_hole() -> None:
    world, inst, ents = make(10)
    inst.sync()
    world.despawn(int(ents[3]))  # entity 9 moves to row 3 with its old change tick
    w = writes(inst)
    assert w["pos"] == (3, 1) and w["color"] == (3, 1)
    assert inst.count == 9


def test_growth_reallocates_and_new_archetypes_get_their_own_slot() -> None:
    world, inst, _ = make(10)
    inst.sync()
    world.spawn_batch({Position: np.zeros((100, 3), np.float32),
                       Color: np.zeros((100, 4), np.uint8)})
    ups = inst.sync()
    assert ups[0].realloc and ups[0].slot.capacity >= 110
    world.spawn({Position: (0.0, 0.0, 0.0), Rotation: (0.0, 0.0, 0.0, 1.0),
                 Scale: (2.0, 2.0, 2.0)})
    ups = inst.sync()
    assert len(inst.slots) == 2 and len(ups) == 1
    assert {w.stream for w in ups[0].writes} >= {"pos", "rot", "scale", "color"}


def test_culling_is_one_pass_over_the_columns() -> None:
    world = World()
    world.spawn_batch({Position: np.array([[0, 0, -5], [0, 0, 5], [100, 0, -5], [0, 0, -600]],
                                          np.float32)})
    inst = InstanceSet(world, (STANDARD,), MeshLibrary())
    inst.sync()
    vp = projection_from_fov(*symmetric_fov(90.0, 1.0), 0.1, 500.0)
    planes = frustum_planes(vp)[None]
    [(slot, w)] = inst.cull(planes)
    assert w.data.tolist() == [1, 0, 0, 0] and slot.visible_count == 1
    assert inst.cull(planes) == []  # same answer: nothing to upload


def test_bindings_check_their_components() -> None:
    with pytest.raises(BindingError, match="float32 x 4"):
        Binding(Position, rotation=Scale)
    with pytest.raises(BindingError, match="packed"):
        Binding(Transform, rotation=Rotation)
    assert scene_binding("editor").packed and not scene_binding("cubes").packed
    assert scene_binding("cubes").position is CubePosition
    with pytest.raises(BindingError):
        scene_binding("nope")


def test_packed_transform_column_is_one_stream() -> None:
    world = World()
    ident = (1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    world.spawn({Transform: ident})
    inst = InstanceSet(world, (scene_binding("editor"),), MeshLibrary())
    got = {w.stream: w for u in inst.sync() for w in u.writes}
    assert "transform" in got and got["transform"].data.nbytes == 40
    b = scene_binding("editor")
    arch = world.query(Transform).archetypes()[0]
    np.testing.assert_array_equal(b.positions(arch), [[1.0, 2.0, 3.0]])


def test_far_apart_changes_are_separate_spans() -> None:
    from theta_xr.instances import MAX_SPANS, SPLIT_GAP, spans

    world, inst, ents = make(20_000)
    inst.sync()
    for i in (10, 12, 15_000):
        world.set(int(ents[i]), Position, (0.0, 0.0, 0.0))
    got = [(w.first, len(w.data)) for u in inst.sync() for w in u.writes]
    assert got == [(10, 3), (15_000, 1)]
    assert inst.rows_uploaded == 4
    rows = np.arange(MAX_SPANS + 1) * (SPLIT_GAP + 1)
    assert spans(rows) == [(0, int(rows[-1]) + 1)]  # too many: one span
    assert spans(np.array([], np.intp)) == []
