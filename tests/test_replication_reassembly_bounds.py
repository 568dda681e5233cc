"""Junk chunks cannot block reassembly (issue 7, defect 1).

Eight well-formed chunk datagrams with far-future sequences used to fill the receiver's table of
incomplete messages for good: every genuine multi-datagram state was dropped from then on, and
the client kept asking for the junk's missing chunks. The table is now bounded by count (the
stalest goes), by age and by a sequence window after the applied state, and each drop is counted.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.replication import Receiver, ReplicatorConfig
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization import Reassembler, ReplicationSchema, split
from theta_ecs.serialization.chunking import ChunkDrops
from theta_ecs.serialization.codec import StateCodec
from theta_ecs.serialization.errors import ChunkError
from theta_ecs.serialization.packet import ChunkPacket, ChunkRequest, decode_packet, encode_packet
from theta_ecs.serialization.snapshot import Snapshot

from .test_replication_convergence import CLEAN, Harness, assert_client_matches

FAR = 3_000_000_000  # sequences a forger picks: far beyond anything a real sender reaches


def junk_chunk(sequence: int, index: int = 0, count: int = 40) -> bytes:
    """A well-formed chunk of a message that will never complete."""
    payload = bytes(range(200))
    return encode_packet(ChunkPacket(sequence, index, count, zlib.crc32(payload), payload))


def chunk(sequence: int, index: int, count: int) -> ChunkPacket:
    pkt = decode_packet(junk_chunk(sequence, index, count))
    assert isinstance(pkt, ChunkPacket)
    return pkt


def test_a_901_cube_join_after_eight_junk_chunks_converges() -> None:
    """The original failure: before the fix ``applied_sequence`` stayed -1 for ever."""
    scene = CubesScene(901, seed=4)
    schema = ReplicationSchema(scene.components)
    h = Harness(scene.world, schema, ReplicatorConfig(), CLEAN)
    for k in range(8):
        h.rcv.receive(junk_chunk(FAR + k), 0.0)
    assert len(h.rcv.reassembler.pending) == 8  # the table is full of junk
    for _ in range(40):
        scene.step(1 / 60)
        h.tick(1 / 60)
    assert h.rcv.applied_sequence > 0
    assert len(h.rcv.applied) == 901
    assert_client_matches(h)
    drops = h.rcv.stats.chunk_drops
    # The join's first chunk evicted the stalest junk entry; the rest fell outside the window
    # once the join was applied. Nothing of the junk is left, nor asked for.
    assert drops.evicted == 1
    assert drops.out_of_window == 7
    assert h.rcv.reassembler.pending == {}
    assert not any(
        isinstance(p, ChunkRequest) and p.sequence >= FAR
        for p in map(decode_packet, h.rcv.produce(h.now + 1.0))
    )


def test_junk_after_the_join_is_refused_and_the_client_keeps_up() -> None:
    scene = CubesScene(200, seed=6)
    schema = ReplicationSchema(scene.components)
    # A small packet budget chunks every delta, so every state is a multi-datagram one.
    h = Harness(scene.world, schema, ReplicatorConfig(packet_budget=300), CLEAN)
    for _ in range(20):
        scene.step(1 / 60)
        h.tick(1 / 60)
    applied = h.rcv.applied_sequence
    assert applied > 0
    for k in range(50):  # far-future junk, and junk just ahead of the applied state
        h.rcv.receive(junk_chunk(FAR + k), h.now)
        h.rcv.receive(junk_chunk(applied + 100 + k), h.now)
    drops = h.rcv.stats.chunk_drops
    assert drops.out_of_window == 50
    assert len(h.rcv.reassembler.pending) <= h.rcv.reassembler.max_pending
    for _ in range(60):
        scene.step(1 / 60)
        h.tick(1 / 60)
    assert h.rcv.applied_sequence >= scene.world.tick - 3
    assert_client_matches(h)
    for _ in range(90):  # 1.5 s more: any junk left has been silent for over max_age
        scene.step(1 / 60)
        h.tick(1 / 60)
    # Each in-window junk message was pushed out by fresher ones, lost to the genuine message
    # of its sequence, or expired: none is left, and the genuine states all got through.
    assert drops.evicted + drops.superseded + drops.expired == 50
    assert all(s > h.rcv.applied_sequence for s in h.rcv.reassembler.pending)
    assert h.rcv.applied_sequence >= scene.world.tick - 3
    assert_client_matches(h)


def test_one_far_future_state_datagram_cannot_make_every_genuine_state_stale() -> None:
    """A whole state in one datagram gets the same window as chunks: before, a 13-byte empty
    full state with a far-future sequence was applied (the client's world emptied) and every
    genuine state after it was counted stale, for good."""
    scene = CubesScene(50, seed=8)
    schema = ReplicationSchema(scene.components)
    h = Harness(scene.world, schema, ReplicatorConfig(), CLEAN)
    for _ in range(10):
        scene.step(1 / 60)
        h.tick(1 / 60)
    assert len(h.rcv.applied) == 50
    for seq in (FAR, h.rcv.applied_sequence + 5000):
        junk = StateCodec(schema).encode(Snapshot.empty(schema), seq)
        assert h.rcv.receive(junk, h.now) is False
    assert h.rcv.stats.out_of_window == 2
    assert len(h.rcv.applied) == 50
    for _ in range(30):
        scene.step(1 / 60)
        h.tick(1 / 60)
    assert h.rcv.stats.stale == 0
    assert h.rcv.applied_sequence >= scene.world.tick - 3
    assert_client_matches(h)


def test_silent_messages_expire_and_stop_being_requested() -> None:
    r = Reassembler(max_age=2.0, request_after=0.05, request_interval=0.1)
    assert r.add(chunk(10, 0, 3), now=0.0) is None
    assert [q.sequence for q in r.requests(0.5)] == [10]  # missing chunks asked for
    assert r.requests(2.5) == []  # silent for longer than max_age: dropped, not asked about
    assert r.pending == {}
    assert r.drops.expired == 1
    # A message that keeps receiving chunks is not expired, however long it takes.
    for i in range(3):
        r.add(chunk(20, i, 4), now=1.5 * i)
    assert r.expire(4.0) == 0
    assert 20 in r.pending


def test_a_full_table_evicts_the_stalest_not_the_newcomer() -> None:
    r = Reassembler(max_pending=3)
    r.add(chunk(FAR, 0, 5), now=0.0)
    r.add(chunk(FAR + 1, 0, 5), now=0.1)
    r.add(chunk(FAR + 2, 0, 5), now=0.2)
    r.add(chunk(FAR + 1, 1, 5), now=0.3)  # FAR + 1 is making progress
    r.add(chunk(7, 0, 2), now=0.4)  # a lower sequence than all of them still gets in
    assert set(r.pending) == {FAR + 1, FAR + 2, 7}
    assert r.drops.evicted == 1
    # Equal times: the least complete goes, then the highest sequence (what junk looks like).
    r2 = Reassembler(max_pending=2)
    r2.add(chunk(100, 0, 3), now=0.0)
    r2.add(chunk(100, 1, 3), now=0.0)
    r2.add(chunk(200, 0, 3), now=0.0)
    r2.add(chunk(50, 0, 3), now=0.0)
    assert set(r2.pending) == {100, 50}


def test_the_window_follows_the_applied_state_and_widens_with_silence() -> None:
    r = Reassembler(window=100, window_rate=50.0)
    assert r.plausible(FAR, 0.0)  # nothing applied yet: any sequence may be the join
    r.add(chunk(FAR, 0, 2), now=0.0)
    r.add(chunk(40, 0, 2), now=0.0)
    r.add(chunk(60, 0, 2), now=0.0)
    r.advance(50, now=1.0)
    assert set(r.pending) == {60}  # 40 is superseded, FAR out of the window
    assert (r.drops.superseded, r.drops.out_of_window) == (1, 1)
    assert r.add(chunk(50, 0, 2), now=1.0) is None and r.drops.stale == 1
    assert r.add(chunk(151, 0, 2), now=1.0) is None and r.drops.out_of_window == 2
    r.add(chunk(150, 0, 2), now=1.0)
    assert 150 in r.pending
    # After 2 s with nothing applied the sender has moved on: 100 more sequences are plausible.
    r.add(chunk(250, 0, 2), now=3.0)
    assert 250 in r.pending
    r.advance(40, now=3.0)  # never backwards
    assert r.plausible(250, 3.0)


def test_genuine_split_messages_still_reassemble_in_any_order() -> None:
    message = np.random.default_rng(1).integers(0, 256, 9000, dtype=np.uint8).tobytes()
    parts = [decode_packet(c) for c in split(message, 33, budget=500)]
    r = Reassembler()
    r.advance(30, now=0.0)
    out = None
    for p in reversed(parts):
        assert isinstance(p, ChunkPacket)
        out = r.add(p, now=0.1)
    assert out == message
    assert r.drops.total() == 0


def test_drops_land_in_the_receivers_stats() -> None:
    rcv = Receiver(ReplicationSchema(CubesScene(1, seed=0).components))
    assert isinstance(rcv.stats.chunk_drops, ChunkDrops)
    assert rcv.stats.chunk_drops is rcv.reassembler.drops
    rcv.receive(junk_chunk(5, 0, 3), 0.0)
    rcv.receive(junk_chunk(5, 0, 3), 0.0)
    assert rcv.stats.chunk_drops.duplicate == 1
    rcv.produce(10.0)
    assert rcv.stats.chunk_drops.expired == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),  # sequence
            st.integers(0, 70_000),  # index
            st.integers(0, 70_000),  # count
            st.integers(0, 2**32 - 1),  # checksum
            st.binary(max_size=64),
            st.floats(0.0, 1.0),  # time since the previous chunk
            st.booleans(),  # apply something first
        ),
        max_size=40,
    )
)
def test_hostile_chunks_keep_the_table_bounded(chunks: list[tuple[Any, ...]]) -> None:
    """Whatever chunks arrive: ChunkError or a counted drop, never another exception, and the
    table never holds more than ``max_pending`` messages, none silent or out of the window."""
    r = Reassembler(max_pending=4, max_age=1.0, window=100, window_rate=10.0)
    now = 0.0
    for seq, index, count, crc, payload, dt, apply in chunks:
        now += dt
        if apply:
            r.advance(seq // 2, now)
        with contextlib.suppress(ChunkError):
            r.add(ChunkPacket(seq, index, count, crc, payload), now)
        assert len(r._pending) <= 4
        assert all(r.plausible(s, now) for s in r.pending)
        r.requests(now)
        assert all(now - p.last_seen <= 1.0 for p in r._pending.values())
