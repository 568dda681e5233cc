"""Conflict strategies: last-writer-wins, field-wise merge, reject (with the author told)."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.commandlog import ConflictPolicy, Rejection, Resolution, Strategy, Transform
from theta_ecs.commandlog.components import IDENTITY_TRANSFORM
from theta_ecs.commandlog.conflicts import ScopeLog
from theta_ecs.commandlog.editor import SET_TRANSFORM, fold_transform
from theta_ecs.commandlog.entry import NO_BASE, Entry, EntryId, Scope

from .test_commandlog_support import Peer, exchange, make_peer, roster


def two_peers(strategy: Strategy) -> tuple[Peer, Peer, int]:
    r = roster(2)
    policy = ConflictPolicy(components={Transform.id: strategy})
    a, b = make_peer(0, r, policy=policy), make_peer(1, r, policy=policy)
    nid = a.editor.create_entity({"px": 1.0, "py": 1.0})
    exchange(a, b)
    return a, b, nid


def concurrent_edits(a: Peer, b: Peer, nid: int) -> None:
    """Both edit the same transform without seeing each other's edit, then exchange."""
    a.editor.set_transform(nid, px=10.0)
    b.editor.set_transform(nid, py=20.0)
    exchange(a, b)
    assert a.fingerprint() == b.fingerprint()


def later_author(a: Peer, b: Peer) -> Peer:
    """With equal clocks the total order falls back to the author id."""
    return a if a.log.author > b.log.author else b


def test_last_writer_wins_takes_the_later_value_whole() -> None:
    a, b, nid = two_peers(Strategy.LWW)
    concurrent_edits(a, b, nid)
    t = a.editor.transform(nid)
    if later_author(a, b) is a:
        assert (t["px"], t["py"]) == (10.0, 1.0)
    else:
        assert (t["px"], t["py"]) == (1.0, 20.0)
    assert a.world.telemetry.counters["command_conflicts"] == 1
    assert b.world.telemetry.counters["command_conflicts"] == 1
    assert not a.editor.rejections and not b.editor.rejections


def test_merge_keeps_both_fields() -> None:
    a, b, nid = two_peers(Strategy.MERGE)
    concurrent_edits(a, b, nid)
    for p in (a, b):
        t = p.editor.transform(nid)
        assert (t["px"], t["py"]) == (10.0, 20.0)
        assert p.world.get(p.editor.local_entity(nid), Transform)["py"] == 20.0
        assert p.world.telemetry.counters["command_conflicts"] == 1


def test_reject_refuses_the_later_command_and_tells_its_author() -> None:
    a, b, nid = two_peers(Strategy.REJECT)
    concurrent_edits(a, b, nid)
    loser, winner = (a, b) if later_author(a, b) is a else (b, a)
    t = winner.editor.transform(nid)
    assert (t["px"], t["py"]) == ((1.0, 20.0) if winner is b else (10.0, 1.0))
    assert len(loser.editor.rejections) == 1 and not winner.editor.rejections
    assert loser.editor.rejections[0].author == loser.log.author
    told = loser.world.events.channel(Rejection).read(0)[0]
    assert told[0].entry.author == loser.log.author
    for p in (a, b):
        assert p.world.telemetry.counters["command_rejections"] == 1
    # a command based on what the loser now sees is accepted
    loser.editor.set_transform(nid, pz=5.0)
    exchange(a, b)
    assert a.editor.transform(nid)["pz"] == 5.0 and a.fingerprint() == b.fingerprint()


def test_reject_cascades_to_commands_based_on_a_rejected_one() -> None:
    a, b, nid = two_peers(Strategy.REJECT)
    loser, winner = (a, b) if later_author(a, b) is a else (b, a)
    winner.editor.set_transform(nid, px=7.0)
    loser.editor.set_transform(nid, px=8.0)
    loser.editor.set_transform(nid, px=9.0)  # based on the loser's own 8.0
    exchange(a, b)
    assert len(loser.editor.rejections) == 2
    assert a.editor.transform(nid)["px"] == 7.0 == b.editor.transform(nid)["px"]


def test_sequential_edits_do_not_conflict() -> None:
    a, b, nid = two_peers(Strategy.REJECT)
    a.editor.set_transform(nid, px=2.0)
    exchange(a, b)
    b.editor.set_transform(nid, px=3.0)
    exchange(a, b)
    assert a.editor.transform(nid)["px"] == 3.0
    assert "command_conflicts" not in a.world.telemetry.counters


def _e(clock: int, author: int, seq: int, base: EntryId = NO_BASE) -> Entry:
    return Entry(clock, author, seq, "k", Scope(1, 2), b"", base)


def test_scope_log_refolds_when_an_earlier_entry_arrives_late() -> None:
    w1 = _e(5, 1, 1)
    w2 = _e(6, 1, 2, w1.id)
    w0 = _e(4, 2, 1)  # concurrent with w1, earlier in the order
    in_order, late = ScopeLog(Strategy.REJECT), ScopeLog(Strategy.REJECT)
    for e in (w0, w1, w2):
        in_order.add(e)
    for e in (w1, w2, w0, w0):
        late.add(e)
    assert late.resolution == in_order.resolution
    assert late.resolution.accepted == [w0] and late.resolution.rejected == [w1, w2]
    lww = ScopeLog(Strategy.LWW)
    for e in (w2, w1, w0):
        lww.add(e)
    assert lww.resolution.accepted == [w0, w1, w2] and lww.resolution.conflicted == [w1]


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.integers(1, (1 << 10) - 1), st.lists(st.integers(-5, 5), min_size=10,
                                                           max_size=10)),
        min_size=1,
        max_size=12,
    )
)
def test_merge_fold_matches_a_forward_field_wise_fold(writes: list[tuple[int, list[int]]]) -> None:
    res = Resolution()
    expected = list(IDENTITY_TRANSFORM)
    for seq, (mask, values) in enumerate(writes, start=1):
        payload = struct.pack("<H10f", mask, *map(float, values))
        res.accepted.append(Entry(seq, 1, seq, SET_TRANSFORM, Scope(1, Transform.id), payload))
        for i, v in enumerate(values):
            if mask >> i & 1:
                expected[i] = float(v)
    assert fold_transform(res, Strategy.MERGE) == tuple(expected)
    assert fold_transform(res, Strategy.LWW) == tuple(map(float, writes[-1][1]))


def test_conflicts_are_counted_once_across_refolds() -> None:
    a, b, nid = two_peers(Strategy.LWW)
    c = make_peer(2, roster(3), policy=ConflictPolicy(components={Transform.id: Strategy.LWW}))
    packets = a.sent + b.sent
    for _ in range(3):  # each round: two concurrent writes
        a.editor.set_transform(nid, px=1.0)
        b.editor.set_transform(nid, px=2.0)
        packets += a.flush() + b.flush()
    shuffled = packets[2:] + packets[:2]  # the scene arrives last: everything waits, then folds
    rng = random.Random(7)
    for p in rng.sample(shuffled, len(shuffled)) + shuffled[:3]:
        c.log.receive(p)
        c.editor.apply_changes()
    a.receive(packets)
    b.receive(packets)
    final = c.log.resolution((nid, Transform.id))
    assert len(final.conflicted) == 5  # after the first, each write follows a concurrent one
    for peer in (a, b, c):
        assert peer.world.telemetry.counters["command_conflicts"] == 5
        assert peer.fingerprint() == c.fingerprint()
