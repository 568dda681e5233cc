"""Decompression is bounded by what the schema can need: a bomb is refused while inflating,
genuine states (however well they compress) are not."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from theta_ecs import World
from theta_ecs.replication import Receiver
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization import (
    BodyTooLargeError,
    ReplicationSchema,
    StateCodec,
    capture,
    encode_body,
    max_body_bytes,
)
from theta_ecs.serialization.packet import StatePacket, encode_packet

SCHEMA = ReplicationSchema(CubesScene(4, seed=1).components)


def _bomb(size: int) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(
        3, write_content_size=False, format=zstandard.FORMAT_ZSTD1_MAGICLESS
    )
    body = zstandard.ZstdCompressor(compression_params=params).compress(b"\0" * size)
    return encode_packet(StatePacket(5, None, SCHEMA.wire_hash, body, True, 0))


def _world(n: int, rng: np.random.Generator | None) -> World:
    world = World()
    cols = {}
    for comp in SCHEMA.components:
        shape = (n, *comp.dtype.shape)
        base = comp.dtype.base if comp.dtype.shape else comp.dtype
        cols[comp] = (
            np.zeros(shape, base)
            if rng is None
            else rng.uniform(-1, 1, shape).astype(base)
        )
    world.spawn_batch(cols)
    return world


def test_a_decompression_bomb_is_refused_and_counted() -> None:
    rx = Receiver(SCHEMA, max_entities=1000)
    limit = max_body_bytes(SCHEMA, 0, 1000)
    packet = _bomb(16 << 20)
    assert len(packet) < 2000  # a small datagram
    assert not rx.receive(packet)
    assert rx.stats.oversize == 1 and rx.stats.malformed == 0
    assert rx.applied_sequence == -1
    with pytest.raises(BodyTooLargeError) as info:
        StateCodec(SCHEMA, max_entities=1000).decode_bytes(packet)
    assert info.value.limit == limit


def test_corrupt_bodies_stay_malformed_not_oversize() -> None:
    rx = Receiver(SCHEMA)
    packet = _bomb(4096)
    assert not rx.receive(packet[:-3])  # truncated frame
    assert rx.stats.malformed == 1 and rx.stats.oversize == 0


def test_genuine_states_that_compress_hugely_still_decode() -> None:
    n = 20_000
    world = _world(n, None)  # every value zero: thousands of times smaller compressed
    codec = StateCodec(SCHEMA, max_entities=n)
    state = capture(world, SCHEMA, tick=1)
    packet = codec.encode(state, 1, compress=True)
    rx = Receiver(SCHEMA, max_entities=n)
    assert rx.receive(packet)
    assert rx.stats.oversize == 0 and len(rx.applied) == n


def test_the_bound_covers_worst_case_full_states_and_deltas() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    first = capture(_world(n, rng), SCHEMA, tick=1)
    full = encode_body(SCHEMA, first)
    assert len(full) <= max_body_bytes(SCHEMA, 0, n)
    # every entity's every value changed at random, against the same ids
    second = capture(_world(n, np.random.default_rng(8)), SCHEMA, tick=2)
    delta = encode_body(SCHEMA, second, first)
    assert len(delta) <= max_body_bytes(SCHEMA, n, 0)
