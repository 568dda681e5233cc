"""Component storage: archetype moves, per-entity access, batch validation."""

import numpy as np
import pytest

from theta_ecs import (
    Component,
    ComponentDataError,
    ComponentRegistry,
    DuplicateComponentError,
    QuantizedFloat,
    UnknownComponentError,
    World,
    stable_id,
)

from .conftest import Health, Pos, Stats, Tag, Vel


def test_stable_id_is_siphash_of_name() -> None:
    assert Pos.id == stable_id("test.Position")
    assert Component("test.Position", np.float64).id == Pos.id
    assert Pos.id != Vel.id


def test_registry_rejects_dtype_clash() -> None:
    reg = ComponentRegistry([Pos])
    with pytest.raises(DuplicateComponentError):
        reg.register(Component("test.Position", np.float64))
    with pytest.raises(UnknownComponentError):
        reg.by_name("nope")


def test_component_declaration_validation() -> None:
    with pytest.raises(ValueError, match="field names"):
        Component("bad.Vec", np.dtype((np.float32, 3)), fields=("x", "y"))
    with pytest.raises(ValueError, match="unknown field"):
        Component("bad.Q", np.float32, quantization={"nope": QuantizedFloat(8, 0, 1)})
    with pytest.raises(TypeError):
        Component("bad.Obj", object)


def test_insert_remove_moves_between_archetypes(world: World) -> None:
    a = world.spawn({Pos: (1, 2, 3)})
    b = world.spawn({Pos: (4, 5, 6)})
    world.insert(a, Vel, (0.5, 0, 0))
    assert world.has(a, Vel) and not world.has(b, Vel)
    np.testing.assert_array_equal(world.get(a, Pos), [1, 2, 3])
    np.testing.assert_array_equal(world.get(b, Pos), [4, 5, 6])
    world.insert(a, Vel, (9, 9, 9))  # already present: overwrite
    np.testing.assert_array_equal(world.get(a, Vel), [9, 9, 9])
    world.remove(a, Pos)
    assert world.components_of(a) == (Vel,)
    with pytest.raises(UnknownComponentError):
        world.get(a, Pos)
    with pytest.raises(UnknownComponentError):
        world.remove(a, Pos)


def test_swap_remove_relocates_last_row(world: World) -> None:
    ents = [world.spawn({Health: i}) for i in range(5)]
    world.remove(ents[1], Health)
    assert [world.get(e, Health) for e in ents if e != ents[1]] == [0, 2, 3, 4]


def test_get_returns_plain_values_and_set_writes(world: World) -> None:
    e = world.spawn({Pos: (1, 1, 1), Health: 5})
    value = world.get(e, Pos)
    assert value == (1.0, 1.0, 1.0) and all(type(v) is float for v in value)
    assert world.get(e, Health) == 5 and type(world.get(e, Health)) is int
    world.set(e, Pos, (2, 3, 4))
    assert value == (1.0, 1.0, 1.0)  # a copy: later writes do not show through
    assert world.get(e, Pos) == (2.0, 3.0, 4.0)
    world.set(e, Pos, np.array([5, 6, 7], np.float32))  # numpy values take the checked path
    assert world.get(e, Pos) == (5.0, 6.0, 7.0)


def test_structured_component(world: World) -> None:
    e = world.spawn({Stats: (100, 2.5)})
    got = world.get(e, Stats)
    assert got["hp"] == 100 and got["speed"] == pytest.approx(2.5)
    arr = np.zeros(3, Stats.dtype)
    arr["hp"] = [1, 2, 3]
    ents = world.spawn_batch({Stats: arr})
    assert world.get(int(ents[2]), Stats)["hp"] == 3


@pytest.mark.parametrize(
    "values",
    [
        np.zeros((10, 2), np.float32),  # wrong width
        np.zeros((9, 3), np.float32),  # wrong count
        np.array([["a", "b", "c"]] * 10),  # strings
        np.zeros((10, 3), np.complex64),  # complex into float32
    ],
)
def test_spawn_batch_rejects_bad_shape_or_dtype(world: World, values: np.ndarray) -> None:
    with pytest.raises(ComponentDataError):
        world.spawn_batch({Pos: values, Vel: np.zeros((10, 3), np.float32)}, count=10)
    assert world.entity_count == 0


def test_no_silent_lossy_casts(world: World) -> None:
    with pytest.raises(ComponentDataError, match="cannot store"):
        world.spawn_batch({Health: np.array([1.5, 2.5])})
    with pytest.raises(ComponentDataError, match="out of range"):
        world.spawn_batch({Tag: np.array([1, 300])})
    with pytest.raises(ComponentDataError):
        world.spawn({Health: "ten"})
    ents = world.spawn_batch({Tag: np.array([1, 255])})
    assert world.get(int(ents[1]), Tag) == 255


def test_unregistered_thing_is_not_a_component(world: World) -> None:
    with pytest.raises(UnknownComponentError):
        world.spawn({"Position": (1, 2, 3)})  # type: ignore[dict-item]


def test_insert_and_remove_batch(world: World) -> None:
    ents = world.spawn_batch(
        {Pos: np.arange(3000, dtype=np.float32).reshape(1000, 3)}
    )
    extra = world.spawn_batch({Pos: np.zeros((10, 3), np.float32), Tag: np.ones(10, np.uint8)})
    chosen = np.concatenate([ents[::10], extra[:5]])
    world.insert_batch(chosen, Health, np.arange(len(chosen), dtype=np.int32))
    assert world.query(Pos, Health).count() == len(chosen)
    for i, e in enumerate(chosen):
        assert world.get(int(e), Health) == i
    for i in (1, 2, 3, 999):
        np.testing.assert_array_equal(world.get(int(ents[i]), Pos), [3 * i, 3 * i + 1, 3 * i + 2])
    world.remove_batch(chosen, Health)
    assert world.query(Health).count() == 0
    assert world.entity_count == 1010
    for i in (0, 10, 990, 5):
        np.testing.assert_array_equal(world.get(int(ents[i]), Pos), [3 * i, 3 * i + 1, 3 * i + 2])
    with pytest.raises(UnknownComponentError):
        world.remove_batch(ents[:2], Health)


def test_failed_remove_batch_changes_nothing(world: World) -> None:
    with_hp = world.spawn_batch({Pos: np.zeros((4, 3), np.float32), Health: np.ones(4, np.int32)})
    without = world.spawn_batch({Pos: np.zeros((4, 3), np.float32)})
    mixed = np.concatenate([with_hp, without[:1]])
    with pytest.raises(UnknownComponentError, match=r"no test\.Health"):
        world.remove_batch(mixed, Health)
    assert all(world.has(int(e), Health) for e in with_hp)
    assert world.query(Health).count() == 4


def test_empty_batches_are_accepted(world: World) -> None:
    assert len(world.spawn_batch({Health: [], Pos: []})) == 0
    assert len(world.spawn_batch({Pos: np.zeros((0, 3), np.float32)})) == 0
    world.despawn_batch([])
    assert world.entity_count == 0
