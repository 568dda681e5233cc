"""Checkpoints compact the log: signed by an admin, applied at any moment by any peer, stored in
place of the history they cover, and the start of a joining peer's sync."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from theta_ecs.commandlog import (
    CommandLogError,
    ConflictPolicy,
    DecodeError,
    MemoryCommandStore,
    PermissionDeniedError,
    Role,
    SqliteCommandStore,
    Strategy,
    Transform,
)
from theta_ecs.commandlog.checkpoint import decode_checkpoint, encode_checkpoint_body
from theta_ecs.commandlog.entry import (
    PacketType,
    decode_packet,
    encode_checkpoint_packet,
)
from theta_ecs.commandlog.errors import CheckpointError
from theta_ecs.commandlog.signing import CHECKPOINT_DOMAIN

from .test_commandlog_convergence import _act, ops
from .test_commandlog_support import Peer, counters, exchange, make_peer, roster, signer

ADMIN = 3


def _scene(store: MemoryCommandStore | None = None) -> tuple[list[Peer], int]:
    """An admin and two editors who edited one entity a hundred times, everyone in sync."""
    r = roster(4, {ADMIN: Role.ADMIN})
    admin = make_peer(ADMIN, r, store=store)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 0.0}, mesh=True)
    vs = [a.editor.mesh_add_vertex(nid, (1.0, 2.0, float(i))) for i in range(3)]
    exchange(admin, a, b)
    for i in range(50):
        a.editor.set_transform(nid, px=float(i))
        b.editor.set_transform(nid, py=float(i))
        exchange(admin, a, b)
    b.editor.select(nid)
    a.editor.set_tool(3, 0.5)
    b.editor.mesh_add_vertex(nid, (4.0, 5.0, 6.0))
    a.editor.mesh_add_face(nid, *vs)
    exchange(admin, a, b)
    b.editor.undo()  # removes the fourth vertex again
    exchange(admin, a, b)
    return [admin, a, b], nid


def _checkpoint_packet(packets: list[bytes]) -> bytes:
    (cp,) = [p for p in packets if decode_packet(p).type is PacketType.CHECKPOINT]
    return cp


def test_a_checkpoint_compacts_memory_and_store_and_keeps_the_world() -> None:
    store = MemoryCommandStore()
    (admin, a, b), nid = _scene(store)
    before = admin.editor.digest()
    transform = admin.editor.transform(nid)
    held = len(admin.log)
    stored = len(store)
    packets = admin.log.checkpoint()
    admin.editor.apply_changes()
    assert admin.editor.digest() == before
    # 100 transforms fold into the newest per field: create, 4 vertices, a face, a removal,
    # 2 transforms, a selection, a tool
    assert held == 110 and len(admin.log) == 11
    assert len(store) == 1 < stored  # the checkpoint alone: no entry after it yet
    for p in (a, b):
        p.receive(packets)
        assert p.editor.digest() == before and len(p.log) == len(admin.log)
        assert counters(p)["checkpoints_applied"] == 1
    assert a.editor.transform(nid) == admin.editor.transform(nid) == transform
    assert transform["py"] == 49.0
    mesh = a.editor.meshes.get(nid)
    assert mesh is not None and len(mesh.vertices) == 3 and len(mesh.faces) == 1
    # editing goes on from the compacted state: new entries are based on retained heads
    a.editor.set_transform(nid, px=100.0)
    exchange(admin, a, b)
    assert {p.editor.digest() for p in (admin, a, b)} == {admin.editor.digest()}
    assert b.editor.transform(nid)["px"] == 100.0
    assert len(store) == 2  # the checkpoint, then the new batch


def test_only_an_admin_signs_checkpoints_that_peers_accept() -> None:
    (admin, a, b), _ = _scene()
    with pytest.raises(PermissionDeniedError):
        a.log.checkpoint()
    with pytest.raises(CheckpointError):
        make_peer(0, roster(1), with_signer=False).log.checkpoint()
    # an editor signs a well-formed checkpoint by hand: every peer refuses it
    forger = signer(0)
    body = encode_checkpoint_body(forger.author, 5, {forger.author: 1}, {}, {})
    raw = body + forger.sign(body, CHECKPOINT_DOMAIN)
    held = len(b.log)
    b.log.receive(encode_checkpoint_packet(raw))
    assert counters(b)["checkpoint_permission_rejections"] == 1 and len(b.log) == held
    # the admin's own, tampered, fails its signature
    good = _checkpoint_packet(admin.log.checkpoint())
    bad = bytearray(good)
    bad[-70] ^= 1
    b.log.receive(bytes(bad))
    assert counters(b)["signature_rejections"] == 1 and b.log.latest_checkpoint is None
    b.log.receive(good)
    assert b.log.latest_checkpoint is not None
    b.editor.apply_changes()
    assert b.editor.digest() == admin.editor.digest()


def test_an_older_checkpoint_is_ignored_after_a_newer_one() -> None:
    (admin, a, b), nid = _scene()
    first = _checkpoint_packet(admin.log.checkpoint())
    with pytest.raises(CheckpointError, match="no entry"):
        admin.log.checkpoint()
    a.editor.set_transform(nid, pz=9.0)
    exchange(admin, a, b)
    second = _checkpoint_packet(admin.log.checkpoint())
    b.receive([second, first, second])
    assert counters(b)["stale_checkpoint_drops"] == 1
    assert counters(b)["duplicates_dropped"] >= 1
    assert b.log.latest_checkpoint is not None
    assert b.log.latest_checkpoint.raw == decode_packet(second).batches[0]
    assert b.editor.transform(nid)["pz"] == 9.0


def test_a_joining_peer_starts_from_the_checkpoint_plus_the_tail() -> None:
    (admin, a, b), nid = _scene()
    admin.log.config = dataclasses.replace(admin.log.config, sync_answer_interval_s=0.0)
    exchange(admin, a, b)
    a.receive(admin.log.checkpoint())
    for i in range(5):
        b.editor.set_transform(nid, pz=float(i))
    admin.receive(b.flush())  # a does not hear these
    r = roster(4, {ADMIN: Role.ADMIN})
    for reverse in (False, True):
        joiner = make_peer(2, r)
        answer = admin.log.receive(joiner.log.sync_request())
        assert decode_packet(answer[0]).type is PacketType.CHECKPOINT
        joiner.receive(answer[::-1] if reverse else answer)  # the tail may overtake it
        assert joiner.log.pending == 0
        assert joiner.fingerprint() == admin.fingerprint()
        assert joiner.editor.transform(nid)["pz"] == 4.0
    # a peer that holds the checkpoint gets only the batches it lacks
    assert a.log.latest_checkpoint is not None
    answer = admin.log.receive(a.log.sync_request())
    assert answer and all(decode_packet(p).type is PacketType.SYNC_ANSWER for p in answer)
    a.receive(answer)
    assert a.fingerprint() == admin.fingerprint()


def test_restart_from_sqlite_after_compaction(tmp_path: Path) -> None:
    r = roster(4, {ADMIN: Role.ADMIN})
    path = tmp_path / "admin.db"
    admin, a = make_peer(ADMIN, r, store=SqliteCommandStore(path)), make_peer(0, r)
    nid = a.editor.create_entity({"px": 1.0})
    for i in range(30):
        a.editor.set_transform(nid, py=float(i))
        exchange(admin, a)
    admin.log.checkpoint()
    a.editor.set_transform(nid, pz=3.0)
    exchange(admin, a)
    assert admin.log.store is not None
    rows = len(admin.log.store)  # type: ignore[arg-type]
    assert rows == 2  # the checkpoint and the one batch after it
    expected = admin.fingerprint()
    admin.log.store.close()
    again = make_peer(ADMIN, r, store=SqliteCommandStore(path))
    again.log.restore()
    again.editor.apply_changes()
    assert again.fingerprint() == expected
    assert again.log.latest_checkpoint is not None
    again.editor.set_transform(nid, px=2.0)  # its sequence numbers go on past the checkpoint
    a.receive(again.flush())
    assert a.editor.transform(nid)["px"] == 2.0


def test_roles_survive_compaction() -> None:
    r = roster(4, {ADMIN: Role.ADMIN})
    admin, a = make_peer(ADMIN, r), make_peer(0, r)
    newcomer = make_peer(6, r, joining=True)
    admin.log.grant(signer(6).public_key, Role.EDITOR)
    admin.log.revoke(a.log.author)
    exchange(admin, a)
    newcomer.receive(admin.sent)
    packets = admin.log.checkpoint()
    joiner = make_peer(1, r)
    joiner.receive(packets)
    assert joiner.log.role_of(a.log.author) is None
    assert joiner.log.role_of(signer(6).author) is Role.EDITOR
    nid = newcomer.editor.create_entity({"px": 6.0})
    joiner.receive(newcomer.flush())  # the checkpoint carried the newcomer's key
    assert joiner.editor.transform(nid)["px"] == 6.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    st.integers(0, 10_000),
    st.binary(max_size=8),
)
def test_fuzzed_checkpoints_decode_or_raise_decode_error(
    flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    data = bytearray(_FUZZ_CP)
    for pos, value in flips:
        data[pos % len(data)] = value
    blob = bytes(data[: len(data) - cut % len(data)]) + tail
    with contextlib.suppress(DecodeError):
        decode_checkpoint(blob)
    peer = make_peer(1, _FUZZ_ROSTER)
    peer.log.receive(encode_checkpoint_packet(blob))  # never raises
    if blob != _FUZZ_CP:
        assert peer.log.latest_checkpoint is None or peer.log.latest_checkpoint.raw == blob


def _fuzz_setup() -> tuple[bytes, object]:
    (admin, _, _), _ = _scene()
    cp = admin.log.checkpoint()
    return decode_packet(_checkpoint_packet(cp)).batches[0], admin.log.roster


_FUZZ_CP, _FUZZ_ROSTER = _fuzz_setup()


admin_ops = st.lists(
    st.tuples(
        st.integers(0, 40),  # after which step of the script
        st.sampled_from(["checkpoint", "revoke", "grant"]),
        st.integers(0, 2),  # whom
    ),
    min_size=2,
    max_size=8,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=ops, admin_script=admin_ops, seed=st.integers(0, 1 << 30))
def test_compaction_and_role_changes_converge_in_any_delivery_order(
    script: list[tuple[int, str, int]],
    admin_script: list[tuple[int, str, int]],
    seed: int,
) -> None:
    """Three editors and an admin who revokes, grants and checkpoints while they edit; peers
    get everything (checkpoints included) in their own order with duplicates, one restarts from
    SQLite midway, one joins at the end from a sync: all hold the same world and log."""
    rng = random.Random(seed)
    r = roster(4, {ADMIN: Role.ADMIN})
    authors = [make_peer(i, r) for i in range(3)]
    admin = make_peer(ADMIN, r)
    everyone = [*authors, admin]
    pool: list[bytes] = []
    for a in authors:
        a.editor.create_entity({"px": 1.0})
        pool.extend(a.flush())
    for p in everyone:
        p.receive(pool)
    todo = sorted(admin_script)
    for step, (who, op, arg) in enumerate([*script, *[(0, "flush", 0)] * 40]):
        with contextlib.suppress(CommandLogError):  # a revoked author's log refuses its commands
            _act(authors[who], op, arg, pool, rng)
        while todo and todo[0][0] <= step:
            _, aop, whom = todo.pop(0)
            admin.receive(rng.sample(pool, k=len(pool) // 2))
            target = authors[whom].log.author
            if aop == "revoke":
                admin.log.revoke(target)
            elif aop == "grant":
                admin.log.grant(signer(whom).public_key, Role.EDITOR)
            else:
                with contextlib.suppress(CheckpointError):
                    pool.extend(admin.log.checkpoint())
            pool.extend(admin.flush())
    for p in everyone:
        pool.extend(p.flush())

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peer.db"
        observers = [make_peer(1, r, with_signer=False) for _ in range(2)]
        stored = make_peer(2, r, with_signer=False, store=SqliteCommandStore(path))
        peers = [*observers, *everyone, stored]
        for peer in peers:
            deliveries = pool + rng.sample(pool, k=len(pool) // 3)
            rng.shuffle(deliveries)
            for i, packet in enumerate(deliveries):
                peer.log.receive(packet)
                if rng.random() < 0.3:
                    peer.editor.apply_changes()
                if peer is stored and i == len(deliveries) // 2:
                    assert stored.log.store is not None
                    stored.log.store.close()
                    stored = make_peer(2, r, with_signer=False, store=SqliteCommandStore(path))
                    stored.log.restore()
                    peer = stored
            peer.editor.apply_changes()
        peers[-1] = stored
        # entries set aside for a revoke ordered before them wait in a quarantine that is not
        # persisted: like anything else a restart loses, a sync brings them back
        stored.receive(admin.log.receive(stored.log.sync_request(), source="restarted"))
        expected = admin.fingerprint()
        for peer in peers:
            assert peer.log.pending == 0
            assert peer.fingerprint() == expected
        joiner = make_peer(1, r, with_signer=False)
        joiner.receive(admin.log.receive(joiner.log.sync_request()))
        assert joiner.fingerprint() == expected
        assert isinstance(stored.log.store, SqliteCommandStore)
        cp = admin.log.latest_checkpoint
        event(f"checkpoints: {counters(admin).get('checkpoints_made', 0)}")
        event(f"denied: {counters(admin).get('permission_rejections', 0) > 0}")
        event(f"covered drops: {sum(counters(p).get('covered_drops', 0) for p in peers) > 0}")
        if cp is not None:  # the store was compacted: the checkpoint comes first
            assert stored.log.store.load()[0] == cp.raw
        stored.log.store.close()


def test_a_peer_that_missed_the_checkpoint_gets_it_from_a_sync() -> None:
    (admin, a, b), nid = _scene()
    admin.log.checkpoint()  # never sent: a holds all the history, but not the checkpoint
    a.editor.set_transform(nid, px=-1.0)
    exchange(admin, a, b)
    answer = admin.log.receive(a.log.sync_request())
    assert decode_packet(answer[0]).type is PacketType.CHECKPOINT
    a.receive(answer)
    assert a.log.latest_checkpoint is not None and a.fingerprint() == admin.fingerprint()
    assert counters(a)["checkpoints_applied"] == 1


def test_a_checkpoint_by_an_admin_granted_in_the_log(tmp_path: Path) -> None:
    r = roster(4, {ADMIN: Role.ADMIN})
    admin, a = make_peer(ADMIN, r), make_peer(0, r, store=SqliteCommandStore(tmp_path / "a.db"))
    admin.log.grant(signer(0).public_key, Role.ADMIN)
    exchange(admin, a)
    a.editor.create_entity({"px": 5.0})
    packets = a.log.checkpoint()  # a is an admin by the grant, not by the roster
    admin.receive(packets)
    assert counters(admin)["checkpoints_applied"] == 1
    # a fresh peer knows only the roster: it cannot tell that a was made an admin, so it refuses
    fresh = make_peer(1, r)
    fresh.receive(packets)
    assert counters(fresh)["checkpoint_permission_rejections"] == 1
    # but a restarts from its own compacted store: the checkpoint's signed roles vouch for it
    a.editor.apply_changes()
    expected = a.fingerprint()
    assert a.log.store is not None
    a.log.store.close()
    again = make_peer(0, r, store=SqliteCommandStore(tmp_path / "a.db"))
    again.log.restore()
    again.editor.apply_changes()
    assert again.fingerprint() == expected and again.log.role_of(a.log.author) is Role.ADMIN


def test_a_checkpoint_never_covers_an_entry_without_its_base() -> None:
    """The admin lacks one of a's entries (a gap), but holds b's entry based on a later one of
    a's: the checkpoint leaves b's entry in the tail, so folding it on top of the checkpoint
    gives what the whole history gives (under reject, where bases decide)."""
    r = roster(4, {ADMIN: Role.ADMIN})
    policy = ConflictPolicy(components={Transform.id: Strategy.REJECT})
    admin = make_peer(ADMIN, r, policy=policy)
    a, b = make_peer(0, r, policy=policy), make_peer(1, r, policy=policy)
    reference = make_peer(2, r, policy=policy, with_signer=False)
    x = a.editor.create_entity()
    first = a.flush()
    a.editor.create_entity()
    gap = a.flush()
    a.editor.set_transform(x, px=1.0)
    third = a.flush()
    b.receive(first + gap + third)
    b.editor.set_transform(x, px=2.0)  # based on a's transform
    fourth = b.flush()
    admin.receive(first + third + fourth)  # not the gap: a's floor stays at 1
    cp = admin.log.checkpoint()
    latest = admin.log.latest_checkpoint
    assert latest is not None and latest.floor_map().get(b.log.author, 0) == 0
    for peer in (admin, reference):
        peer.receive(first + gap + third + fourth)
    assert reference.editor.transform(x)["px"] == 2.0
    assert admin.editor.digest() == reference.editor.digest()
    joiner = make_peer(2, r, policy=policy, with_signer=False)
    joiner.receive(cp + first + gap + third + fourth)
    assert joiner.fingerprint() == admin.fingerprint()


def test_a_rival_checkpoint_is_counted_apart_from_an_old_one() -> None:
    """Two admins checkpoint concurrently, each over an entry the other lacks: neither checkpoint
    covers the other. Each was counted as a stale one (a harmless resend); a rival means peers
    fold late entries apart until a checkpoint covering both, so it has its own counter, and
    only an authentic rival counts."""
    r = roster(4, {2: Role.ADMIN, 3: Role.ADMIN})
    x, y, a, b = make_peer(2, r), make_peer(3, r), make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 0.0})
    exchange(x, y, a, b)
    first = x.log.checkpoint()
    y.receive(first)
    a.editor.set_transform(nid, px=1.0)
    b.editor.set_transform(nid, px=2.0)
    from_a, from_b = a.flush(), b.flush()
    x.receive(from_a)
    y.receive(from_b)
    rival = _checkpoint_packet(x.log.checkpoint())
    y.log.checkpoint()
    forged = bytearray(rival)
    forged[-1] ^= 1  # the rival's signature broken
    y.receive([bytes(forged)])
    assert counters(y).get("rival_checkpoint_drops", 0) == 0
    y.receive([rival, _checkpoint_packet(first)])
    assert counters(y)["rival_checkpoint_drops"] == 1
    assert counters(y)["stale_checkpoint_drops"] == 1  # the first checkpoint, resent
    # a checkpoint covering both ends the split
    x.receive(from_b)
    x.editor.apply_changes()
    y.receive(x.log.checkpoint())
    assert counters(y)["checkpoints_applied"] == 2
    assert y.fingerprint() == x.fingerprint()


def test_a_checkpoint_after_a_late_entry_keeps_fold_order() -> None:
    """b's transform (clock 3) reaches the admin only after a checkpoint that holds a's later
    one (clock 8): it folds after it (the documented cut), so the scope's accepted entries are
    not in key order. The next checkpoint raised DecodeError on its own encoding ("entries must
    be in order") and the admin could never checkpoint again; it keeps fold order now, and the
    state before and after it is the same on every peer."""
    r = roster(4, {ADMIN: Role.ADMIN})
    admin, a, b = make_peer(ADMIN, r), make_peer(0, r), make_peer(1, r)
    observer = make_peer(2, r, with_signer=False)
    nid = a.editor.create_entity({"px": 0.0})
    exchange(admin, a, b, observer)
    b.editor.set_transform(nid, px=2.0)
    late = b.flush()
    for i in range(5):
        a.editor.set_transform(nid, py=float(i))
    a.editor.set_transform(nid, px=1.0)
    early = a.flush()
    admin.receive(early)
    first = admin.log.checkpoint()
    admin.receive(late)
    before = admin.editor.transform(nid)
    second = admin.log.checkpoint()  # raised DecodeError
    admin.editor.apply_changes()
    assert admin.editor.transform(nid) == before
    observer.receive(early + late + first + second)
    joiner = make_peer(2, r, with_signer=False)
    joiner.receive(admin.log.receive(joiner.log.sync_request()))
    for peer in (observer, joiner):
        assert peer.editor.transform(nid) == before
        assert peer.fingerprint() == admin.fingerprint()
