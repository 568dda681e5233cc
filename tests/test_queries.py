"""Queries: filters, caching, views, change ticks."""

import numpy as np
import pytest

from theta_ecs import World

from .conftest import Health, Pos, Tag, Vel


def _setup(world: World) -> tuple[np.ndarray, np.ndarray]:
    a = world.spawn_batch({Pos: np.ones((10, 3), np.float32), Vel: np.ones((10, 3), np.float32)})
    b = world.spawn_batch(
        {Pos: np.ones((5, 3), np.float32), Vel: np.ones((5, 3), np.float32),
         Tag: np.ones(5, np.uint8)}
    )
    world.spawn_batch({Pos: np.zeros((7, 3), np.float32)})
    return a, b


def test_with_without_filters(world: World) -> None:
    a, _b = _setup(world)
    assert world.query(Pos).count() == 22
    assert world.query(Pos, Vel).count() == 15
    assert set(world.query(Pos, Vel, without=[Tag]).entities().tolist()) == set(a.tolist())
    assert world.query(Health).count() == 0


def test_query_is_cached_and_sees_new_archetypes(world: World) -> None:
    _setup(world)
    q = world.query(Pos, Vel)
    assert world.query(Pos, Vel) is q
    matched = q.archetypes()
    assert len(matched) == 2
    assert q.archetypes() is matched  # no re-matching when nothing changed
    world.spawn({Pos: (0, 0, 0), Vel: (0, 0, 0), Health: 3})
    assert len(q.archetypes()) == 3


def test_iteration_yields_views_read_only_by_default(world: World) -> None:
    _setup(world)
    for ents, (pos, vel) in world.query(Pos, Vel):
        assert len(ents) == len(pos) == len(vel)
        with pytest.raises(ValueError, match="read-only"):
            pos += vel
    for _, (pos, vel) in world.query(Pos, Vel).iter(write=[Pos]):
        pos += vel
    for ents, (pos, _vel) in world.query(Pos, Vel):
        np.testing.assert_array_equal(pos, 2.0)
        for e in ents[:2]:
            np.testing.assert_array_equal(world.get(int(e), Pos), [2, 2, 2])


def test_changed_since_tracks_per_entity_and_vectorized_writes(world: World) -> None:
    ents = world.spawn_batch({Pos: np.zeros((100, 3), np.float32)})
    world.change_tick = 10
    baseline = 10
    assert list(world.query(Pos).changed_since(baseline)) == []
    world.change_tick = 11
    world.set(int(ents[4]), Pos, (1, 1, 1))
    world.set(int(ents[7]), Pos, (2, 2, 2))
    (batch,) = list(world.query(Pos).changed_since(baseline))
    assert sorted(batch.entities.tolist()) == sorted([int(ents[4]), int(ents[7])])
    world.change_tick = 12
    for _, (pos,) in world.query(Pos).iter(write=[Pos]):
        pos[:1] += 1
    (batch,) = list(world.query(Pos).changed_since(11))
    assert len(batch.entities) == 100  # a writable view marks the whole archetype column


def test_change_ticks_survive_archetype_moves(world: World) -> None:
    e = world.spawn({Pos: (0, 0, 0)})
    world.change_tick = 5
    world.set(e, Pos, (1, 1, 1))
    world.change_tick = 9
    world.insert(e, Health, 1)
    assert [b.entities.tolist() for b in world.query(Pos).changed_since(4)] == [[e]]
    assert list(world.query(Pos).changed_since(5)) == []
    assert [b.entities.tolist() for b in world.query(Health).changed_since(8)] == [[e]]


def test_query_views_follow_growth_and_stay_independent(world: World) -> None:
    world.spawn_batch({Pos: np.ones((3, 3), np.float32), Vel: np.zeros((3, 3), np.float32)})
    q = world.query(Pos, Vel)
    ents, (pos, vel) = next(iter(q))
    assert len(ents) == 3 and not vel.flags.writeable and not ents.flags.writeable
    with pytest.raises(ValueError):
        vel.flags.writeable = True  # the buffer itself is read-only
    vel.shape = (9,)  # reshaping one batch's view leaves later batches alone
    world.spawn_batch({Pos: np.full((100, 3), 2, np.float32),
                       Vel: np.full((100, 3), 5, np.float32)})  # the table reallocates
    ents, (pos, vel) = next(iter(q.iter(write=[Pos])))
    assert len(ents) == 103 and vel.shape == (103, 3) and vel[-1, 0] == 5
    assert pos.flags.writeable and not vel.flags.writeable
    pos[0] = 9
    assert world.get(int(ents[0]), Pos) == (9.0, 9.0, 9.0)
