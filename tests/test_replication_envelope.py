"""Replication packets inside the FlatBuffers envelope: one-to-one, schema-checked, fuzzed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.backends.loopback import LinkModel, LoopbackLink
from theta_ecs.errors import ThetaError
from theta_ecs.replication import Receiver, Replicator, ReplicatorConfig
from theta_ecs.replication.envelope import unwrap, wrap
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization import (
    DecodeError,
    ReplicationSchema,
    SchemaMismatchError,
    capture,
)
from theta_ecs.serialization.packet import (
    AckPacket,
    ChunkPacket,
    ChunkRequest,
    StatePacket,
    encode_packet,
)
from theta_ecs.stdcomponents import Position, Velocity
from theta_ecs.wire import envelope as wire

SCHEMA = ReplicationSchema([Position, Velocity])


@pytest.mark.parametrize(
    "pkt",
    [
        StatePacket(10, None, SCHEMA.wire_hash, b"full"),
        StatePacket(99, 93, SCHEMA.wire_hash, b"\x01\x02", True, 0),
        StatePacket(99, 93, SCHEMA.wire_hash, b"\x01\x02", True, 0xABCDEF),
        ChunkPacket(7, 2, 5, 0xFEEDBEEF, b"chunk data"),
        AckPacket(1234, 0xF0F0F0F0),
    ],
)
def test_wrap_unwrap_is_exact(pkt: object) -> None:
    raw = encode_packet(pkt)  # type: ignore[arg-type]
    env = wrap(raw, SCHEMA, timestamp=1.5)
    assert env is not None and env[4:8] == b"THNW"
    assert unwrap(env, SCHEMA) == raw


def test_state_packets_take_their_tick_from_the_header() -> None:
    """The body carries only the baseline's distance; sequence and timestamp ride the header."""
    raw = encode_packet(StatePacket(99, 93, SCHEMA.wire_hash, b"\x01\x02", True, 0xABCDEF))
    env_bytes = wrap(raw, SCHEMA, timestamp=4294.967796)
    assert env_bytes is not None
    env = wire.decode_envelope(env_bytes)
    assert env.header.sequence == 99 and env.header.timestamp_us == 500  # wrapped at 2^32 us
    assert env.header.schema_hash == SCHEMA.hash
    assert env.body == wire.ComponentDelta(6, b"\x01\x02")


def test_a_baseline_before_the_first_sequence_is_refused() -> None:
    env = wire.encode_envelope(
        wire.Envelope(wire.Header(3, schema_hash=SCHEMA.hash), wire.ComponentDelta(4, b""))
    )
    with pytest.raises(DecodeError, match="baseline"):
        unwrap(env, SCHEMA)


def test_chunk_requests_have_no_envelope_body() -> None:
    assert wrap(encode_packet(ChunkRequest(3, (1, 2))), SCHEMA) is None


def test_another_schema_is_refused() -> None:
    env = wrap(encode_packet(AckPacket(5, 0)), SCHEMA)
    assert env is not None
    with pytest.raises(SchemaMismatchError):
        unwrap(env, ReplicationSchema([Position]))


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_hostile_envelopes_raise_decode_error(data: bytes) -> None:
    try:
        unwrap(data, SCHEMA)
    except ThetaError as exc:
        assert isinstance(exc, DecodeError | SchemaMismatchError)


def test_replication_converges_through_enveloped_datagrams() -> None:
    scene = CubesScene(60, seed=2)
    schema = ReplicationSchema(scene.components)
    rep, rcv = Replicator(schema, ReplicatorConfig()), Receiver(schema)
    down = LoopbackLink(LinkModel(latency_s=0.02, loss=0.05, seed=1))
    up = LoopbackLink(LinkModel(latency_s=0.02, loss=0.05, seed=2))
    now = 0.0
    states = {}
    for i in range(90):
        if i < 60:
            scene.step(1 / 60)
        else:
            scene.world.tick += 1
        now += 1 / 60
        st_ = capture(scene.world, schema)
        states[st_.tick] = st_
        for d in up.receive(now):
            rep.receive(unwrap(d, schema), now)
        for p in rep.produce(st_, now):
            env = wrap(p, schema, now)
            down.send(env if env is not None else p, now)
        for d in down.receive(now):
            rcv.receive(unwrap(d, schema), now)
        for p in rcv.produce(now):
            env = wrap(p, schema, now)
            if env is not None:  # chunk re-requests have no envelope body (none occur here)
                up.send(env, now)
    assert rcv.applied.same_state(states[scene.world.tick])
    assert np.array_equal(rcv.applied.entities, states[scene.world.tick].entities)
