"""An author signing two versions of one (author, seq) in different batches (an equivocation):
every peer that learns both withdraws the version it held, and the proof travels with flushes
and sync answers, so peers converge whatever order the versions arrived in."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.commandlog import EntryId, Role
from theta_ecs.commandlog.entry import encode_batch_body, encode_batches_packet

from .test_commandlog_support import Peer, counters, exchange, make_peer, roster, signer

EQUIVOCATOR = 3
ROSTER = roster(5, {4: Role.ADMIN})


def _scenario() -> tuple[list[Peer], list[list[bytes]], EntryId]:
    """Three honest peers and the equivocator's packets: two versions of its first entry (one
    with a follow-up based on it) and an honest edit made before either arrived."""
    a, b, c = (make_peer(i, ROSTER) for i in range(3))
    ev1, ev2 = make_peer(EQUIVOCATOR, ROSTER), make_peer(EQUIVOCATOR, ROSTER)
    nid = a.editor.create_entity({"px": 0.0})
    other = a.editor.create_entity({"px": 0.0})
    exchange(a, b, c, ev1, ev2)
    ev1.editor.set_transform(nid, px=1.0)
    first = ev1.flush()
    ev2.editor.set_transform(other, px=2.0)  # same (author, seq), other scope and content
    second = ev2.flush()
    ev1.editor.set_transform(nid, px=3.0)  # based on the first version
    follow = ev1.flush()
    b.editor.set_transform(nid, px=5.0)
    honest = b.flush()
    held = ev1.log.ordered()[-2].id
    assert held == ev2.log.ordered()[-1].id
    return [a, b, c], [first, second, follow, honest], held


def _converged(peers: list[Peer], eid: EntryId) -> None:
    prints = [p.fingerprint() for p in peers]
    assert all(f == prints[0] for f in prints[1:])
    assert all(eid not in p.log for p in peers)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_peers_converge_whatever_order_the_versions_arrive_in(data: st.DataObject) -> None:
    peers, packets, eid = _scenario()
    for peer in peers:
        order = data.draw(st.permutations(range(len(packets))))
        for i in order:
            peer.receive(packets[i])
    for peer in peers:
        assert counters(peer).get("equivocations") == 1
        assert counters(peer).get("replay_rejections", 0) == 0
    _converged(peers, eid)
    # a resend of either version changes nothing and counts as a duplicate
    before = peers[0].fingerprint()
    peers[0].receive(packets[0] + packets[1])
    assert peers[0].fingerprint() == before


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_the_proof_reaches_peers_that_saw_one_version(data: st.DataObject) -> None:
    peers, packets, eid = _scenario()
    a, b, c = peers
    first, second, follow, honest = packets
    knows_first = data.draw(st.booleans())
    # a sees both versions; b and c see one each (in any order with the rest)
    for peer, mine in ((a, [first, second]), (b, [first if knows_first else second]),
                       (c, [second if knows_first else first])):
        rest = [*mine, follow, honest]
        for i in data.draw(st.permutations(range(len(rest)))):
            peer.receive(rest[i])
    assert counters(a).get("equivocations") == 1
    assert counters(b).get("equivocations", 0) == 0
    # b hears the proof through a's next flush, c through a sync answer
    b.receive(a.flush())
    c.receive(a.log.receive(c.log.sync_request()))
    assert counters(b).get("equivocations") == 1 and counters(c).get("equivocations") == 1
    _converged(peers, eid)


def test_a_refused_version_never_counted() -> None:
    """A version the deterministic checks refuse is no equivocation: the valid one stands on
    every peer, whichever came first."""
    peers, packets, eid = _scenario()
    a, b, _ = peers
    first = packets[0]
    b.receive(first)
    held = b.log.get(eid)
    assert held is not None
    junk = dataclasses.replace(held, kind="no.such.command")
    body = encode_batch_body(held.author, (junk,))
    forged = encode_batches_packet([body + signer(EQUIVOCATOR).sign(body)])
    b.receive([forged])
    a.receive([forged, *first])
    for peer in (a, b):
        assert counters(peer).get("equivocations", 0) == 0
        assert peer.log.get(eid) == held
    assert counters(a).get("unknown_command_drops") == 1
