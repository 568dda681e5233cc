"""Generational entity ids: spawn, despawn, reuse without aliasing."""

import numpy as np
import pytest

from theta_ecs import StaleEntityError, World, entity_generation, entity_index
from theta_ecs._entities import EntityAllocator

from .conftest import Health, Pos


def test_spawn_despawn_is_alive(world: World) -> None:
    e = world.spawn({Pos: (1, 2, 3)})
    assert world.is_alive(e)
    assert world.entity_count == 1
    world.despawn(e)
    assert not world.is_alive(e)
    assert world.entity_count == 0


def test_recycled_index_never_aliases_stale_id(world: World) -> None:
    old = world.spawn({Health: 10})
    world.despawn(old)
    new = world.spawn({Health: 20})
    assert entity_index(new) == entity_index(old)
    assert entity_generation(new) == entity_generation(old) + 1
    assert not world.is_alive(old)
    with pytest.raises(StaleEntityError, match="not alive"):
        world.get(old, Health)
    with pytest.raises(StaleEntityError):
        world.despawn(old)
    assert world.get(new, Health) == 20


def test_never_spawned_and_garbage_ids_are_stale(world: World) -> None:
    with pytest.raises(StaleEntityError):
        world.get(12345, Health)
    with pytest.raises(StaleEntityError):
        world.get(-1, Health)
    with pytest.raises(StaleEntityError):
        world.insert(1 << 64, Health, 1)


def test_allocator_batch_reuses_free_list_first() -> None:
    alloc = EntityAllocator(4)
    ids = alloc.allocate(10)
    for e in ids:
        alloc.place(int(e), 0, 0)
    assert alloc.alive_count == 10
    alloc.release_batch(ids[:3])
    again = alloc.allocate(5)
    reused = {int(e) & 0xFFFFFFFF for e in again[:3]}
    assert reused == {int(e) & 0xFFFFFFFF for e in ids[:3]}
    assert all(int(e) >> 32 == 1 for e in again[:3])
    assert [int(e) & 0xFFFFFFFF for e in again[3:]] == [10, 11]
    assert alloc.alive_mask(ids).tolist() == [False] * 3 + [True] * 7


def test_despawn_batch_keeps_other_entities_intact(world: World) -> None:
    pos = np.arange(300, dtype=np.float32).reshape(100, 3)
    ents = world.spawn_batch({Pos: pos})
    doomed = ents[::3]
    world.despawn_batch(doomed)
    assert world.entity_count == 100 - len(doomed)
    for i, e in enumerate(ents):
        if i % 3 == 0:
            assert not world.is_alive(int(e))
        else:
            np.testing.assert_array_equal(world.get(int(e), Pos), pos[i])


def test_despawn_batch_rejects_duplicates_and_stale(world: World) -> None:
    ents = world.spawn_batch({Health: np.arange(5, dtype=np.int32)})
    with pytest.raises(ValueError, match="twice"):
        world.despawn_batch(np.array([ents[0], ents[0]]))
    world.despawn(int(ents[1]))
    with pytest.raises(StaleEntityError):
        world.despawn_batch(ents[:3])
    assert world.entity_count == 4
