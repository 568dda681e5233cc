"""An authorized but hostile author signs arbitrary entries: peers never crash and still agree."""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs.commandlog import (
    COMPONENTS,
    CommandPayloadError,
    DecodeError,
    Entry,
    EntryId,
    Role,
    Scope,
    Signer,
)
from theta_ecs.commandlog.clock import MAX_CLOCK
from theta_ecs.commandlog.editor import COMMAND_TYPES, EXISTENCE, make_net_id
from theta_ecs.commandlog.entry import (
    decode_batch,
    decode_packet,
    encode_batch_body,
    encode_batches_packet,
)

from .test_commandlog_support import counters, exchange, make_peer, roster, signer

KINDS = [c.kind for c in COMMAND_TYPES] + ["theta.editor.unknown"]
COMPONENT_IDS = [EXISTENCE] + [c.id for c in COMPONENTS]


def _signed_packet(s: Signer, entries: list[Entry]) -> bytes:
    body = encode_batch_body(s.author, tuple(entries))
    return encode_batches_packet([body + s.sign(body)])


hostile_entries = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(COMPONENT_IDS),
        st.integers(0, 3),  # which entity (0: one of the victim's, 1..3: arbitrary ids)
        st.binary(max_size=60),  # payload: often the wrong size, sometimes exactly right
        st.integers(1, 40),  # clock
        st.booleans(),  # base on a real entry or not
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_entries, st.integers(0, 1 << 30))
def test_hostile_signed_entries_are_contained(
    specs: list[tuple[str, int, int, bytes, int, bool]], seed: int
) -> None:
    rng = random.Random(seed)
    r = roster(3)
    victim, b, c = make_peer(0, r), make_peer(1, r), make_peer(2, r)
    nid = victim.editor.create_entity({"px": 1.0}, mesh=True)
    victim.editor.mesh_add_vertex(nid, (0.0, 0.0, 0.0))
    exchange(victim, b, c)
    known = [e.id for e in victim.log.ordered()]
    mallory = signer(2)  # c's key, used to sign raw entries no honest editor would make
    entries = []
    for seq, (kind, comp, which, payload, clock, based) in enumerate(specs, start=3):
        entity = nid if which == 0 else make_net_id(mallory.author, which)
        base = rng.choice(known) if based else EntryId(0, 0)
        entries.append(Entry(clock, mallory.author, seq, kind, Scope(entity, comp), payload, base))
    packets = [_signed_packet(mallory, entries[i : i + 5]) for i in range(0, len(entries), 5)]
    order_of: dict[int, list[bytes]] = {}
    for peer in (victim, b):
        dups = rng.sample(packets, k=len(packets) // 2)
        order = packets + dups
        order_of[id(peer)] = order
        shuffled = list(order)
        rng.shuffle(shuffled)
        peer.receive(shuffled)
    assert victim.fingerprint() == b.fingerprint()
    for peer in (victim, b):  # no silent loss: every entry was integrated or counted as refused
        tel = peer.world.telemetry.counters
        integrated = sum(1 for e in peer.log.ordered() if e.author == mallory.author and e.seq > 2)
        refused = tel.get("invalid_command_drops", 0) + tel.get("unknown_command_drops", 0)
        assert integrated + peer.log.pending + refused == len(specs)
        dups = order_of[id(peer)][len(packets) :]
        replayed = sum(len(decode_batch(decode_packet(p).batches[0]).entries) for p in dups)
        # exact copies are network duplicates, not replay attacks
        assert tel.get("duplicates_dropped", 0) == replayed
        assert tel.get("replay_rejections", 0) == 0


def test_one_entry_stamped_near_the_clock_limit_cannot_silence_the_session() -> None:
    """A viewer signs an entry with a clock just under 2^53. Peers used to observe it whole:
    every later command, the admin's revoke included, failed with a clock out of range. Now an
    entry moves a peer's clock at most MAX_CLOCK_STEP (2^24): work goes on, the admin revokes it."""
    r = roster(4, {2: Role.VIEWER, 3: Role.ADMIN})
    a, mallory, admin = make_peer(0, r), make_peer(2, r), make_peer(3, r)
    nid = a.editor.create_entity({"px": 1.0})
    exchange(a, mallory, admin)
    mallory.log.clock.observe(MAX_CLOCK - 3)
    hostile = mallory.editor.select(nid)
    assert hostile.clock == MAX_CLOCK - 2
    packets = mallory.flush()
    for peer in (a, admin):
        peer.receive(packets)
        assert peer.log.clock.value < MAX_CLOCK // 2
    for i in range(3):
        a.editor.set_transform(nid, px=float(i))
    admin.log.revoke(mallory.log.author)
    exchange(a, admin)
    assert a.editor.transform(nid)["px"] == 2.0
    # the revoke orders before the hostile entry: every peer denies it alike
    for peer in (a, admin):
        assert peer.log.role_of(mallory.log.author, hostile.key) is None
    assert a.fingerprint() == admin.fingerprint()


def test_refused_entries_cost_no_payload_memory_and_still_tell_copies_from_replays() -> None:
    """A member's entries of a command type nobody registered are refused, but were kept whole
    (to tell a later duplicate from a replay): 200 of them with 60 kB payloads held 12 MB for
    good. Only a digest is kept now, and the two counters still say the right thing."""
    import tracemalloc

    r = roster(2)
    victim, mallory = make_peer(0, r), signer(1)

    def junk(seq: int, fill: int) -> Entry:
        return Entry(1, mallory.author, seq, "junk.kind", Scope(5, 5), bytes([fill]) * 60_000)

    packets = [
        _signed_packet(mallory, [junk(10 * k + i + 1, i) for i in range(10)]) for k in range(20)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for p in packets:
            victim.log.receive(p)
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    tel = victim.world.telemetry.counters
    assert tel["unknown_command_drops"] == 200
    assert retained < 3_000_000, retained  # the payloads alone are 12 MB
    victim.log.receive(packets[0])  # the network duplicated it: harmless
    assert tel["duplicates_dropped"] == 10 and tel.get("replay_rejections", 0) == 0
    # same id, other content: the refused version never counted, so this one is judged anew
    # (see test_commandlog_equivocation), and refused again
    victim.log.receive(_signed_packet(mallory, [junk(1, 99)]))
    assert tel["unknown_command_drops"] == 201 and tel.get("replay_rejections", 0) == 0


def test_a_batch_holding_one_sequence_number_twice_cannot_split_peers() -> None:
    """A member signs one batch with two different entries under the same (author, seq). A peer
    holding their base integrated the first; a peer that got the batch before the base released
    both from the pending buffer in the other order and kept the second: two worlds for good.
    Such a batch is malformed now, refused alike by every peer."""
    r = roster(3)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 1.0})
    create = a.flush()
    b.receive(create)
    late = make_peer(1, r, with_signer=False)
    mallory = signer(2)
    template = a.editor.set_transform(nid, px=5.0)
    a.log.flush()
    first = Entry(50, mallory.author, 1, template.kind, template.scope, template.payload,
                  template.base)
    second = dataclasses.replace(first, payload=template.payload[:-4] + b"\x00\x00\x20\x41")
    packet = _forged_order_packet(mallory, [first, second])
    b.receive([packet])
    late.receive([packet, *create])
    for peer in (b, late):
        assert counters(peer)["malformed_packets"] == 1
        assert not any(e.author == mallory.author for e in peer.log.ordered())
    assert b.editor.digest() == late.editor.digest()
    with pytest.raises(DecodeError, match="does not follow"):
        decode_batch(decode_packet(_forged_order_packet(mallory, [second, first])).batches[0])
    with pytest.raises(CommandPayloadError):  # our own encoder never makes one
        encode_batch_body(mallory.author, (first, second))


def _forged_order_packet(s: Signer, entries: list[Entry]) -> bytes:
    """A signed batch as the encoder would write it, minus its seq-order check."""
    head = struct.pack("<2sBBQH", b"TB", 1, 0, s.author, len(entries))
    body = head + b"".join(struct.pack("<I", len(e.encode())) + e.encode() for e in entries)
    return encode_batches_packet([body + s.sign(body)])


def test_one_member_filling_the_pending_buffer_cannot_make_others_lose_entries() -> None:
    """A member sends entries based on entries that never come until the pending buffer is
    full. An honest entry that arrived before its base was then dropped, marked seen, so no
    resend or sync could bring it back: that peer lost it for good. The member holding the
    most waiting entries now gives one up instead."""
    from theta_ecs.commandlog import GuardConfig

    guards = GuardConfig(rate=1e9, burst=1e9, local_rate=1e9, local_burst=1e9, max_pending=20)
    r = roster(3)
    a, victim = make_peer(0, r), make_peer(1, r, guards=guards)
    nid = a.editor.create_entity({"px": 1.0})
    create = a.flush()
    a.editor.set_transform(nid, px=7.0)
    honest = a.flush()
    mallory = signer(2)
    template = a.log.ordered()[-1]
    junk = [
        dataclasses.replace(template, clock=60 + i, author=mallory.author, seq=i + 1,
                            base=EntryId(mallory.author, 1000 + i))
        for i in range(25)
    ]
    victim.receive([_signed_packet(mallory, junk)])
    assert victim.log.pending == 20
    victim.receive(honest)  # before the entity it edits: waits
    victim.receive(create)
    assert victim.editor.transform(nid)["px"] == 7.0
    tel = counters(victim)
    assert tel["pending_overflow_drops"] == 6  # five of mallory's that did not fit, then one
    assert victim.log.pending == 19


def test_a_checkpoint_does_not_carry_a_clock_stamped_near_the_limit() -> None:
    """The same entry, covered by an admin's checkpoint, made the checkpoint's clock just under
    2^53, and a checkpoint's clock is observed whole: every peer applying it was exhausted
    again. A checkpoint leaves such an entry in its tail now."""
    r = roster(4, {2: Role.VIEWER, 3: Role.ADMIN})
    a, mallory, admin = make_peer(0, r), make_peer(2, r), make_peer(3, r)
    nid = a.editor.create_entity({"px": 1.0})
    exchange(a, mallory, admin)
    mallory.log.clock.observe(MAX_CLOCK - 3)
    mallory.editor.select(nid)
    packets = mallory.flush()
    for peer in (a, admin):
        peer.receive(packets)
    a.receive(admin.log.checkpoint())
    for peer in (a, admin):
        assert peer.log.clock.value < MAX_CLOCK // 2
    for i in range(3):
        a.editor.set_transform(nid, px=float(i))
    exchange(a, admin)
    assert admin.editor.transform(nid)["px"] == 2.0
    assert a.fingerprint() == admin.fingerprint()
