"""Acks that lie cannot stall replication (issue 7, defect 2).

An ack of a state the client never received used to become the replicator's baseline for good:
every later delta was against a state the client lacked, the client applied nothing, and nothing
recovered. Now acks naming states never (or not yet wholly) sent are refused and counted; a
receiver that lacks a delta's baseline sends a ResyncRequest; the replicator answers it with a
full state, and never takes the disowned state as a baseline again.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs import World
from theta_ecs.backends.loopback import LinkModel
from theta_ecs.replication import Receiver, Replicator, ReplicatorConfig
from theta_ecs.replication.envelope import unwrap, wrap
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization import ReplicationSchema, capture
from theta_ecs.serialization.packet import (
    AckPacket,
    ChunkRequest,
    ResyncRequest,
    StatePacket,
    decode_packet,
    encode_packet,
)
from theta_ecs.stdcomponents import Position

from .test_replication_convergence import CLEAN, Harness, assert_client_matches


def ack(latest: int, mask: int = 0) -> bytes:
    return encode_packet(AckPacket(latest, mask))


def cubes(n: int, seed: int, config: ReplicatorConfig | None = None) -> tuple[CubesScene, Harness]:
    scene = CubesScene(n, seed=seed)
    schema = ReplicationSchema(scene.components)
    return scene, Harness(scene.world, schema, config or ReplicatorConfig(), CLEAN)


def run(scene: CubesScene, h: Harness, ticks: int) -> None:
    for _ in range(ticks):
        scene.step(1 / 60)
        h.tick(1 / 60)


def send_and_lose(scene: CubesScene, h: Harness) -> int:
    """The server sends one state that the link loses; its sequence."""
    scene.step(1 / 60)
    h.now += 1 / 60
    state = capture(scene.world, h.schema)
    h.history[state.tick] = state
    assert h.rep.produce(state, h.now)  # sent ... and lost
    return state.tick


def test_a_forged_ack_of_a_lost_state_falls_back_to_a_full_state() -> None:
    scene, h = cubes(101, seed=2)
    run(scene, h, 30)
    lost = send_and_lose(scene, h)
    h.rep.receive(ack(lost), h.now)  # nobody can tell this from a genuine ack
    assert h.rep.acked_sequence == lost
    applied_before = h.rcv.applied_sequence
    run(scene, h, 60)
    # Before the fix the client applied nothing from here on.
    assert h.rcv.applied_sequence > applied_before
    assert h.rcv.applied_sequence >= scene.world.tick - 3
    assert_client_matches(h)
    assert h.rcv.stats.missing_baseline > 0
    assert h.rcv.stats.resync_requests >= 1
    assert h.rep.stats.resyncs == 1
    # The join, then full states from the fallback until the client's ack returns (one RTT).
    assert 2 <= h.rep.stats.full_snapshots <= 1 + 6
    # The disowned state is never a baseline again, even if its ack is replayed.
    h.rep.receive(ack(lost), h.now)
    assert h.rep.acked_sequence != lost


def test_a_corrupted_ack_naming_a_lost_state_recovers() -> None:
    scene, h = cubes(101, seed=5)
    run(scene, h, 30)
    lost = send_and_lose(scene, h)
    corrupted = []

    def corrupt_next_ack(data: bytes) -> bytes:
        pkt = decode_packet(data)
        if not corrupted and isinstance(pkt, AckPacket) and pkt.latest < lost:
            corrupted.append(pkt)  # a bit error turns the genuine ack into one of `lost`
            return ack(lost, pkt.mask)
        return data

    h.tamper = corrupt_next_ack
    run(scene, h, 60)
    assert corrupted
    assert h.rcv.applied_sequence >= scene.world.tick - 3  # before the fix: stuck for good
    assert_client_matches(h)
    assert h.rep.stats.resyncs == 1


def test_acks_of_states_never_sent_are_refused_and_counted() -> None:
    world = World()
    world.spawn_batch({Position: np.arange(150, dtype=np.float32).reshape(-1, 3)})
    schema = ReplicationSchema([Position])
    rep = Replicator(schema)
    for tick in (10, 12, 14):  # 11 and 13 are never sent
        rep.produce(capture(world, schema, tick=tick), tick / 60)
    rep.receive(ack(12), 0.3)
    assert rep.acked_sequence == 12 and rep.stats.forged_acks == 0
    rep.receive(ack(15), 0.3)  # ahead of anything sent
    rep.receive(ack(13), 0.3)  # in a gap between sent states
    rep.receive(ack(14, mask=0b1), 0.3)  # 14 is real, but bit 0 names 13 as well
    assert rep.stats.forged_acks == 3
    assert rep.acked_sequence == 12  # none of them moved the baseline
    rep.receive(ack(5), 0.3)  # older than anything remembered: stale, not forged
    assert rep.stats.forged_acks == 3 and rep.stats.stale_acks == 1
    rep.receive(ack(14, mask=0b10), 0.3)  # 14 and 12: genuine
    assert rep.acked_sequence == 14
    # The next delta is against 14, as the genuine ack said.
    pkt = decode_packet(rep.produce(capture(world, schema, tick=16), 0.4)[0])
    assert isinstance(pkt, StatePacket) and pkt.baseline == 14


def test_an_ack_of_a_state_whose_chunks_have_not_all_left_is_refused() -> None:
    world = World()
    rng = np.random.default_rng(3)
    ids = world.spawn_batch({Position: rng.uniform(-500, 500, (20_000, 3)).astype(np.float32)})
    schema = ReplicationSchema([Position])
    rep = Replicator(schema, ReplicatorConfig(bandwidth_budget=12_000))
    join = rep.produce(capture(world, schema, tick=1), 0.0)
    rep.receive(ack(1), 0.05)
    assert rep.acked_sequence == 1
    # The client asks for the whole join again: the resends take this tick's budget, so the
    # chunks of the next (large) delta wait in the outbox.
    rep.receive(encode_packet(ChunkRequest(1, tuple(range(len(join))))), 0.05)
    world.insert_batch(ids, Position, rng.uniform(-500, 500, (20_000, 3)).astype(np.float32))
    rep.produce(capture(world, schema, tick=2), 1 / 30)
    assert rep._outbox
    rep.receive(ack(2), 0.04)  # the client cannot hold a state still leaving
    assert rep.stats.forged_acks == 1 and rep.acked_sequence == 1
    tick, now = 2, 1 / 30
    for _ in range(20):  # pace the rest of state 2 out (later deltas queue behind it)
        if not any(seq == 2 for seq, _, _ in rep._outbox):
            break
        tick, now = tick + 1, now + 1 / 60
        rep.produce(capture(world, schema, tick=tick), now)
    assert not any(seq == 2 for seq, _, _ in rep._outbox)
    rep.receive(ack(2), now)
    assert rep.acked_sequence == 2


def test_resync_requests_are_checked_against_what_was_sent() -> None:
    scene, h = cubes(40, seed=7)
    run(scene, h, 20)
    acked = h.rep.acked_sequence
    assert acked is not None
    fulls = h.rep.stats.full_snapshots  # the join: full states until the first ack came back
    newest = h.rep.last_state.tick
    # Names a packet that was never sent against that baseline: refused, nothing changes.
    h.rep.receive(encode_packet(ResyncRequest(newest, max(acked - 5, 0))), h.now)
    h.rep.receive(encode_packet(ResyncRequest(newest + 50, acked)), h.now)
    assert h.rep.stats.refused_resyncs == 2 and h.rep.stats.resyncs == 0
    assert h.rep.acked_sequence == acked
    # An old request about a baseline the replicator no longer uses: stale, nothing changes.
    run(scene, h, 10)
    assert h.rep.acked_sequence != acked
    sent_against = [s for s, b in h.rep._sent_baselines.items() if b == acked]
    h.rep.receive(encode_packet(ResyncRequest(sent_against[0], acked)), h.now)
    assert h.rep.stats.stale_resyncs == 1 and h.rep.stats.resyncs == 0
    run(scene, h, 10)
    assert h.rep.stats.full_snapshots == fulls
    assert_client_matches(h)


def test_the_receiver_does_not_ask_for_a_resync_over_a_reordered_old_delta() -> None:
    scene = CubesScene(20, seed=8)
    schema = ReplicationSchema(scene.components)
    rep, rcv = Replicator(schema), Receiver(schema)
    packets = []
    now = 0.0
    for i in range(12):
        scene.step(1 / 60)
        now += 1 / 60
        packets.append(rep.produce(capture(scene.world, schema), now))
        if i < 10:
            for p in packets[-1]:
                rcv.receive(p, now)
            for p in rcv.produce(now):
                rep.receive(p, now)
    late, newest = packets[-2], packets[-1]
    for p in newest + late:  # the older delta arrives after the newer one
        rcv.receive(p, now)
    assert rcv.stats.resync_requests == 0
    assert not any(isinstance(decode_packet(p), ResyncRequest) for p in rcv.produce(now + 1))


def test_junk_deltas_do_not_make_the_receiver_ask_for_ever() -> None:
    scene, h = cubes(20, seed=9)
    run(scene, h, 20)
    applied = h.rcv.applied_sequence
    wire_hash = h.schema.wire_hash
    far = encode_packet(StatePacket(applied + 10**6, applied + 10**6 - 1, wire_hash, b"x"))
    near = encode_packet(StatePacket(applied + 50, applied + 45, wire_hash, b"x"))
    h.rcv.receive(far, h.now)  # outside the plausible window: no request at all
    assert not any(isinstance(decode_packet(p), ResyncRequest) for p in h.rcv.produce(h.now))
    h.rcv.receive(near, h.now)  # plausible: asked about once, refused by the replicator ...
    assert any(isinstance(decode_packet(p), ResyncRequest) for p in h.rcv.produce(h.now))
    run(scene, h, 30)  # ... and forgotten as soon as genuine state applies again
    assert h.rcv.stats.resync_requests == 1
    assert h.rep.stats.refused_resyncs == 0 and h.rep.stats.resyncs == 0  # never sent up
    assert h.rcv.applied_sequence >= scene.world.tick - 3
    # A request that does reach the replicator about a packet it never sent is refused.
    h.rep.receive(encode_packet(ResyncRequest(applied + 50, applied + 45)), h.now)
    assert h.rep.stats.refused_resyncs == 1 and h.rep.stats.resyncs == 0
    # With the stream dead, a stuck receiver stops asking after a while.
    h.rcv.receive(encode_packet(StatePacket(scene.world.tick + 30, scene.world.tick + 20,
                                            wire_hash, b"x")), h.now)
    asked = [any(isinstance(decode_packet(p), ResyncRequest) for p in h.rcv.produce(h.now + t))
             for t in (0.0, 0.5, 1.0, 5.0, 6.0)]
    assert asked[:3] == [True, True, True] and asked[3:] == [False, False]


def test_a_resync_request_travels_outside_the_envelope() -> None:
    scene = CubesScene(5, seed=1)
    schema = ReplicationSchema(scene.components)
    raw = encode_packet(ResyncRequest(40, 33))
    assert wrap(raw, schema) is None  # the session sends it as it is, like a chunk request
    assert decode_packet(raw) == ResyncRequest(40, 33)
    env = wrap(ack(7), schema)
    assert env is not None and unwrap(env, schema) == ack(7)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 6), st.integers(1, 255)),
        min_size=1,
        max_size=12,
    )
)
def test_corrupted_acks_never_stall_replication(flips: list[tuple[int, int, int]]) -> None:
    """Bit errors in acks on a lossy link: whatever they turn into, the client converges once
    the link heals."""
    scene = CubesScene(30, seed=3)
    schema = ReplicationSchema(scene.components)
    lossy = LinkModel(latency_s=0.03, loss=0.15, reorder=0.1, seed=11)
    h = Harness(scene.world, schema, ReplicatorConfig(), lossy)
    plan = {n: (pos, xor) for n, pos, xor in flips}
    seen = [0]

    def flip(data: bytes) -> bytes:
        n = seen[0]
        seen[0] += 1
        if n in plan and isinstance(decode_packet(data), AckPacket):
            pos, xor = plan[n]
            raw = bytearray(data)
            raw[pos % len(raw)] ^= xor
            return bytes(raw)
        return data

    h.tamper = flip
    run(scene, h, 100)
    h.tamper = lambda p: p
    h.set_link(CLEAN)
    run(scene, h, 30)
    for _ in range(10):  # the scene rests; the last packets drain
        scene.world.tick += 1
        h.tick(1 / 60)
    assert h.rcv.applied_sequence >= scene.world.tick - 3
    assert h.history[h.rcv.applied_sequence].same_state(h.history[scene.world.tick])
    assert_client_matches(h)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=3, max_size=12),  # tick steps between sent states
    st.lists(
        st.one_of(
            st.builds(AckPacket, st.integers(0, 60), st.integers(0, 2**32 - 1)),
            st.builds(ResyncRequest, st.integers(1, 60), st.integers(0, 59)).filter(
                lambda r: r.baseline < r.sequence
            ),
            st.builds(ChunkRequest, st.integers(0, 60), st.tuples(st.integers(0, 5))),
        ),
        max_size=20,
    ),
)
def test_hostile_acks_and_requests_never_make_an_unsent_state_the_baseline(
    steps: list[int], packets: list[AckPacket | ResyncRequest | ChunkRequest]
) -> None:
    world = World()
    world.spawn_batch({Position: np.arange(600, dtype=np.float32).reshape(-1, 3)})
    schema = ReplicationSchema([Position])
    rep = Replicator(schema, ReplicatorConfig(packet_budget=400))  # every state is chunked
    sent: set[int] = set()
    tick, now = 0, 0.0
    for i, step in enumerate(steps):
        tick, now = tick + step, now + 1 / 60
        if rep.produce(capture(world, schema, tick=tick), now) and rep.last_state.tick == tick:
            sent.add(tick)
        for pkt in packets[i::len(steps)]:
            rep.receive(encode_packet(pkt), now)
            acked = rep.acked_sequence
            assert acked is None or acked in sent
            if acked is not None:
                state = rep._history[acked]
                assert not state.unsent and not state.disowned


def test_a_second_of_lost_acks_does_not_cost_the_client_its_baseline() -> None:
    """While the client's acks are lost the server keeps deltaing against the last acked state.
    The client kept only its newest ``max_history`` states, so after 64 ticks it dropped that
    baseline: every later delta was undecodable (the world froze though the downlink was fine)
    until a resync and a full state. The baseline in use is kept now."""
    scene = CubesScene(300, seed=9)
    schema = ReplicationSchema(scene.components)
    rep, rcv = Replicator(schema), Receiver(schema)
    now = 0.0
    for t in range(160):
        scene.step(1 / 60)
        now += 1 / 60
        for p in rep.produce(capture(scene.world, schema), now):
            rcv.receive(p, now)
        assert rcv.applied_sequence == scene.world.tick  # every state applies at once
        acks_lost = 30 <= t < 130
        for q in rcv.produce(now):
            if not acks_lost:
                rep.receive(q, now)
    assert rcv.stats.missing_baseline == 0 and rep.stats.resyncs == 0
    assert rep.stats.full_snapshots == 1
    assert rcv.applied_sequence == scene.world.tick
