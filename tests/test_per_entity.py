"""The C per-entity paths (get/set/insert/remove/spawn/despawn) against the checked Python rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theta_ecs import (
    Component,
    ComponentDataError,
    DuplicateComponentError,
    StaleEntityError,
    SystemContext,
    UnknownComponentError,
    Vector,
    World,
)
from theta_ecs.values import coerce_one

from .conftest import Health, Pos, Stats, Tag, Vel

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32",
          "float64", "bool"]
SCALARS = {d: Component(f"test.pe.{d}", np.dtype(d)) for d in DTYPES}
PLAIN_NUMBERS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 127, 128, -129, 255, 256, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1]),
    st.floats(allow_nan=False),
    st.sampled_from([float("inf"), -float("inf"), 3.5e38, -3.5e38, 1e300]),
)


@given(dtype=st.sampled_from(DTYPES), value=PLAIN_NUMBERS)
def test_fast_coercion_follows_the_checked_rules(dtype: str, value: object) -> None:
    comp = SCALARS[dtype]
    world = World()
    e = world.spawn({comp: False if dtype == "bool" else 0})
    try:
        expected = coerce_one(comp, value)
    except ComponentDataError:
        with pytest.raises(ComponentDataError):
            world.set(e, comp, value)
        assert world.get(e, comp) == (False if dtype == "bool" else 0)  # untouched
        return
    world.set(e, comp, value)
    got = world.get(e, comp)
    stored = expected.astype(comp.dtype).item()  # what the checked path leaves in the column
    assert got == stored and type(got) is type(stored)


def test_vector_value_is_a_read_only_copy() -> None:
    world = World()
    e = world.spawn({Pos: (1.5, -2, 3)})
    v = world.get(e, Pos)
    assert isinstance(v, Vector) and v.component is Pos
    assert len(v) == 3 and v[0] == 1.5 and v[-1] == 3.0 and v[1:] == (-2.0, 3.0)
    assert (v.x, v.y, v.z) == (1.5, -2.0, 3.0)
    x, y, z = v
    assert (x, y, z) == (1.5, -2.0, 3.0) and v == [1.5, -2.0, 3.0] and v != (0, 0, 0)
    arr = np.asarray(v)
    assert arr.dtype == np.float32 and arr.tolist() == [1.5, -2.0, 3.0]
    assert hash(v) == hash((1.5, -2.0, 3.0)) and "x=1.5" in repr(v)
    with pytest.raises(IndexError):
        v[3]
    with pytest.raises(AttributeError):
        _ = v.w
    moved = v + np.ones(3) * 0.5  # arithmetic gives arrays, as get used to return
    moved += 1
    assert isinstance(moved, np.ndarray) and moved.tolist() == [3.0, -0.5, 4.5]
    assert (2 * v).tolist() == [3.0, -4.0, 6.0] and (-v)[1] == 2.0 and (v - v).sum() == 0
    assert (1 - v)[0] == -0.5 and (v / 2)[0] == 0.75 and (3 / v)[0] == 2.0
    world.set(e, Pos, moved)
    assert world.get(e, Pos) == (3.0, -0.5, 4.5)
    with pytest.raises(TypeError):
        Vector()  # only World.get makes them
    bare = Vector.__new__(Vector)
    with pytest.raises(TypeError):
        _ = bare.x  # no component behind it: an error, not a crash
    world.set(e, Pos, v)  # a Vector goes back in as a value
    world.set(e, Pos, (0, 0, 0))
    assert v == (1.5, -2.0, 3.0) and world.get(e, Pos) == (0.0, 0.0, 0.0)


def test_other_shapes_keep_numpy_copies() -> None:
    mat = Component("test.pe.Matrix", np.dtype((np.float32, (2, 2))))
    wide = Component("test.pe.Wide", np.dtype((np.float64, 20)))
    world = World()
    e = world.spawn({mat: np.eye(2), wide: np.arange(20.0), Stats: (3, 1.5)})
    m = world.get(e, mat)
    m[0, 0] = 9
    np.testing.assert_array_equal(world.get(e, mat), np.eye(2))
    assert tuple(world.get(e, wide)) == tuple(float(i) for i in range(20))
    world.set(e, wide, list(range(20, 40)))
    assert world.get(e, wide)[0] == 20.0
    s = world.get(e, Stats)
    assert s["hp"] == 3 and isinstance(s, np.void)


def test_bad_values_change_nothing() -> None:
    world = World()
    e = world.spawn({Pos: (1, 2, 3), Health: 4})
    with pytest.raises(ComponentDataError):
        world.set(e, Pos, (1.0, 2.0, 1e300))  # the third part overflows: no part is written
    with pytest.raises(ComponentDataError):
        world.set(e, Pos, (1.0, 2.0))
    with pytest.raises(ComponentDataError):
        world.insert(e, Tag, 256)
    with pytest.raises(ComponentDataError):
        world.insert(e, Tag, 1.5)
    assert world.get(e, Pos) == (1.0, 2.0, 3.0) and not world.has(e, Tag)
    before = world.entity_count
    for bad in ({Pos: (0, 0, "x")}, {Pos: (0, 0, 0), Health: 2**40}):
        with pytest.raises(ComponentDataError):
            world.spawn(bad)
    assert world.entity_count == before
    assert world.query(Pos).count() == 1


def test_moves_keep_values_and_change_ticks() -> None:
    world = World()
    ents = [world.spawn({Pos: (i, i, i), Health: i}) for i in range(4)]
    tick_before = world.change_tick
    world.advance_change_tick()
    world.insert(ents[1], Tag, 7)
    arch = next(a for a in world.archetypes if Tag.id in a.component_ids)
    assert arch.row_ticks[Pos.id][0] <= tick_before  # moved, not rewritten
    assert arch.row_ticks[Tag.id][0] == world.change_tick
    list(world.query(Pos).iter(write=[Pos]))  # the whole column is handed out writable
    stamped = world.change_tick
    world.advance_change_tick()
    world.remove(ents[0], Health)  # its Pos row carries the column stamp along
    dest = next(a for a in world.archetypes if a.component_ids == {Pos.id})
    assert dest.row_ticks[Pos.id][0] == stamped
    assert [world.get(e, Health) for e in ents[1:]] == [1, 2, 3]
    assert world.get(ents[1], Tag) == 7 and world.get(ents[0], Pos) == (0.0, 0.0, 0.0)
    world.remove(ents[1], Tag)
    assert not world.has(ents[1], Tag) and world.get(ents[1], Pos) == (1.0, 1.0, 1.0)
    with pytest.raises(UnknownComponentError):
        world.remove(ents[1], Tag)


def test_despawn_relocates_and_stale_ids_fail_everywhere() -> None:
    world = World()
    ents = [world.spawn({Pos: (i, 0, 0)}) for i in range(3)]
    world.despawn(ents[0])
    assert world.get(ents[2], Pos) == (2.0, 0.0, 0.0)
    calls = (
        lambda: world.get(ents[0], Pos),
        lambda: world.set(ents[0], Pos, (0, 0, 0)),
        lambda: world.insert(ents[0], Vel, (0, 0, 0)),
        lambda: world.remove(ents[0], Pos),
        lambda: world.has(ents[0], Pos),
        lambda: world.despawn(ents[0]),
        lambda: world.get(-5, Pos),
        lambda: world.get(2**64, Pos),
    )
    for call in calls:
        with pytest.raises(StaleEntityError):
            call()
    assert world.get(np.uint64(ents[1]), Pos) == (1.0, 0.0, 0.0)  # numpy ids take the checked path


def test_equal_component_objects_take_the_checked_path() -> None:
    world = World()
    e = world.spawn({Health: 1})
    twin = Component("test.Health", np.int32)  # equal to Health, another object
    assert world.get(e, twin) == 1
    world.set(e, twin, 5)
    world.insert(e, twin, 6)
    assert world.get(e, Health) == 6
    assert world.spawn({twin: 2}) != e
    clash = Component("test.Health", np.float64)
    with pytest.raises(DuplicateComponentError):
        world.spawn({clash: 1.0})
    with pytest.raises(DuplicateComponentError):
        world.get(e, clash)


def test_table_bounds_are_checked_at_the_python_surface() -> None:
    world = World()
    e = world.spawn({Pos: (1, 2, 3)})
    arch = next(a for a in world.archetypes if a.component_ids == {Pos.id})
    with pytest.raises(ValueError):
        arch.count = arch.capacity + 1  # the C paths trust count: it may not pass capacity
    with pytest.raises(IndexError):
        arch.swap_remove(5)
    assert arch.count == 1 and world.get(e, Pos) == (1.0, 2.0, 3.0)


def test_a_corrupted_location_is_an_error_not_a_wild_read() -> None:
    world = World()
    e = world.spawn({Pos: (1, 2, 3)})
    world._entities.place(e, 99, 0)  # private state poked from Python
    with pytest.raises(StaleEntityError, match="no valid location"):
        world.get(e, Pos)
    world._entities.place(e, 1, 10**6)
    with pytest.raises(StaleEntityError, match="no valid location"):
        world.set(e, Pos, (0, 0, 0))


def test_deferred_values_are_checked_when_recorded_and_copied() -> None:
    world = World()
    world.spawn({Pos: (0, 0, 0), Health: 1})  # the route exists: deferred spawns take the C path
    buf = [1.0, 2.0, 3.0]
    made: list[int] = []

    def spawner(ctx: SystemContext) -> None:
        made.append(ctx.commands.spawn({Pos: buf, Health: 7}))
        buf[0] = 99.0  # the recorded value is a copy
        with pytest.raises(ComponentDataError):
            ctx.commands.spawn({Pos: (0, 0, 0), Health: 2**40})  # fails here, in the system
        ctx.commands.insert(made[0], Tag, 3)

    world.add_system(spawner, reads=[Pos], writes=[Health, Tag])
    world.step()
    assert world.get(made[0], Pos) == (1.0, 2.0, 3.0) and world.get(made[0], Tag) == 3
    assert world.entity_count == 2 and world._entities.reserved_count == 0


def test_spawn_reserved_releases_the_id_on_a_bad_value() -> None:
    world = World()
    world.spawn({Health: 1})
    reserved = world.reserve_entity()
    with pytest.raises(ComponentDataError):
        world.spawn_reserved(reserved, {Health: 2**40})  # known route: the C path
    assert world._entities.reserved_count == 0 and not world.is_alive(reserved)
    with pytest.raises(StaleEntityError):
        world.spawn_reserved(reserved, {Health: 1})
    again = world.reserve_entity()
    world.spawn_reserved(again, {Health: 5})
    assert world.get(again, Health) == 5
