"""The spatial grid against brute force, and the budget's priority order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs import World
from theta_ecs.replication import Replicator, ReplicatorConfig, SpatialGrid
from theta_ecs.serialization import ReplicationSchema, Snapshot, StateCodec, capture
from theta_ecs.stdcomponents import Position


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 400),
    st.floats(0.5, 50),
    st.floats(0.1, 80),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
)
def test_grid_query_equals_brute_force(n: int, cell: float, radius: float, dims: int,
                                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-100, 100, (n, dims))
    grid = SpatialGrid(cell, dims)
    grid.build(pts)
    center = rng.uniform(-120, 120, dims)
    expect = np.flatnonzero(np.sum((pts - center) ** 2, axis=1) <= radius * radius)
    assert np.array_equal(grid.query(center, radius), expect)


def test_budget_sends_the_biggest_change_first_and_then_the_ones_that_waited() -> None:
    world = World()
    ents = world.spawn_batch({Position: np.zeros((40, 3), np.float32)})
    schema = ReplicationSchema([Position])
    rep = Replicator(schema, ReplicatorConfig(compress=False))
    codec = StateCodec(schema)
    first = capture(world, schema, tick=1)
    rep.produce(first, 0.0)  # the join goes out whole
    rep.receive(b"\xb7\x23\x01\x00\x00\x00\x00", 0.0)  # ack of sequence 1
    assert rep.acked_sequence == 1
    rep.config = ReplicatorConfig(bandwidth_budget=40, compress=False)

    moved = np.zeros((40, 3), np.float32)
    moved[:, 0] = 0.01  # everyone moves a little...
    moved[17, 0] = 900.0  # ...and one moves far
    world.insert_batch(ents, Position, moved)
    sent: list[Snapshot] = []
    base = first
    for tick in range(2, 12):
        state = capture(world, schema, tick=tick)
        (packet,) = rep.produce(state, 0.0)
        assert len(packet) <= 40
        got = codec.decode_bytes(packet, base)
        sent.append(got)
    # The far mover went in the first packet.
    row = int(np.flatnonzero(sent[0].entities == ents[17])[0])
    assert not np.array_equal(sent[0].values[row], first.values[row])
    # Deltas are against the acked baseline (1): each packet re-sends what still differs, and
    # entities that waited gain priority, so over the ticks every entity gets its turn.
    covered = np.zeros(40, bool)
    for snap in sent:
        covered |= np.any(snap.values != first.values, axis=1)
    assert covered.all()
    assert rep.stats.deferred_entities > 0
