"""Guards, signatures and permissions: each refusal is a counted drop, never applied."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.backends.loopback import LinkModel, LoopbackLink
from theta_ecs.commandlog import (
    CommandPayloadError,
    GuardConfig,
    PermissionDeniedError,
    RateLimitedError,
    Role,
    Roster,
    Scope,
    Selection,
    Signer,
    Transform,
    UnknownAuthorError,
)
from theta_ecs.commandlog.editor import SET_TRANSFORM
from theta_ecs.commandlog.entry import (
    Entry,
    decode_batch,
    decode_packet,
    encode_batch_body,
    encode_batches_packet,
)
from theta_ecs.commandlog.guards import SequenceWindow, SeqVerdict, TokenBucket
from theta_ecs.commandlog.log import CommandType
from theta_ecs.commandlog.roles import Permissions

from .test_commandlog_support import FakeClock, Peer, make_peer, roster, signer


def counters(peer: object) -> dict[str, int]:
    return peer.world.telemetry.counters  # type: ignore[attr-defined, no-any-return]


def test_sequence_window_exact_and_bounded() -> None:
    w = SequenceWindow(span=10)
    for s in (1, 2, 4):
        assert w.check(s) is SeqVerdict.NEW
        w.mark(s)
    assert w.floor == 2
    assert w.check(2) is SeqVerdict.REPLAY and w.check(4) is SeqVerdict.REPLAY
    assert w.check(3) is SeqVerdict.NEW
    w.mark(3)
    assert w.floor == 4 and w.highest == 4
    assert w.check(15) is SeqVerdict.TOO_FAR and w.check(14) is SeqVerdict.NEW


def test_token_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(rate=10.0, burst=2.0, now=0.0)
    assert b.take(0.0) and b.take(0.0) and not b.take(0.0)
    assert not b.take(0.05)  # half a token
    assert b.take(0.1)
    assert b.take(100.0) and b.take(100.0) and not b.take(100.0)  # capped at burst


def test_duplicated_packets_are_dropped_and_counted_as_duplicates() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 1.0})
    packets = a.flush()
    b.receive(packets)
    before = b.fingerprint()
    b.receive(packets)
    b.receive(packets)
    assert counters(b)["duplicates_dropped"] == 2 * 2  # two entries, duplicated twice
    assert "replay_rejections" not in counters(b)  # a duplicating link is no attack
    assert b.fingerprint() == before
    assert b.editor.transform(nid)["px"] == 1.0


def test_rate_limit_drops_excess_and_sync_recovers_it() -> None:
    r = roster(2)
    clock = FakeClock()
    a = make_peer(0, r)
    b = make_peer(1, r, now=clock, guards=GuardConfig(rate=5.0, burst=5.0))
    nid = a.editor.create_entity()
    for i in range(9):
        a.editor.set_transform(nid, px=float(i))
    b.receive(a.flush())
    assert counters(b)["rate_limit_drops"] == 5  # 10 entries, 5 tokens
    assert len(b.log) == 5
    clock.t += 1.0  # the bucket refills; the dropped entries were not marked seen
    for reply in a.log.receive(b.log.sync_request()):
        b.receive([reply])
    assert len(b.log) == 10
    assert b.fingerprint() == (a.editor.digest(), [e.encode() for e in a.log.ordered()])


def test_local_flood_raises_typed_error() -> None:
    clock = FakeClock()
    a = make_peer(0, roster(1), now=clock, guards=GuardConfig(local_rate=2.0, local_burst=3.0))
    nid = a.editor.create_entity()
    a.editor.set_transform(nid, px=1.0)
    a.editor.set_transform(nid, px=2.0)
    with pytest.raises(RateLimitedError):
        a.editor.set_transform(nid, px=3.0)
    assert counters(a)["rate_limit_drops"] == 1
    clock.t += 0.5
    a.editor.set_transform(nid, px=3.0)  # one token back


def test_payload_guard_local_and_remote() -> None:
    r = roster(2)
    big = CommandType("test.blob", Role.EDITOR, lambda e: None)
    a = make_peer(0, r, guards=GuardConfig(max_payload=64 * 1024 * 2))
    b = make_peer(1, r)  # default guard: 64 KiB
    for p in (a, b):
        p.log.register(big)
    a.log.append("test.blob", Scope(1, 1), b"x" * 100_000)
    b.receive(a.flush())
    assert counters(b)["payload_guard_drops"] == 1
    assert len(b.log) == 0
    with pytest.raises(CommandPayloadError):
        b.log.append("test.blob", Scope(1, 1), b"x" * (64 * 1024 + 1))
    assert counters(b)["payload_guard_drops"] == 2
    tiny = make_peer(1, r, guards=GuardConfig(max_packet=100))
    tiny.log.register(big)
    a.log.append("test.blob", Scope(1, 1), b"y" * 200)
    tiny.receive(a.flush())
    assert counters(tiny)["payload_guard_drops"] == 1 and len(tiny.log) == 0


def test_tampered_entry_is_rejected() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity()
    a.editor.set_transform(nid, px=1.0)
    (packet,) = a.flush()
    raw = decode_packet(packet).batches[0]
    # change the last float of the transform payload (inside the signed bytes)
    tampered = bytearray(raw)
    tampered[-64 - 1] ^= 0x40
    b.receive([encode_batches_packet([bytes(tampered)])])
    assert counters(b)["signature_rejections"] == 2
    assert "commands_verified" not in counters(b)  # a failed check verified nothing
    assert len(b.log) == 0 and b.editor.entity(nid) is None
    b.receive([packet])  # the genuine one still goes in
    assert b.editor.transform(nid)["px"] == 1.0


def test_forged_author_and_garbage() -> None:
    r = roster(2)
    outsider = make_peer(2, roster(3))  # knows itself, but is not in r
    b = make_peer(1, r)
    outsider.editor.create_entity()
    b.receive(outsider.flush())
    assert counters(b)["permission_rejections"] == 1 and len(b.log) == 0
    b.receive([b"\x00garbage", b"TP\x01\x01\xff\xff"])
    assert counters(b)["malformed_packets"] == 2


def test_viewer_cannot_edit() -> None:
    r = roster(2, {1: Role.VIEWER})
    a = make_peer(0, r)
    viewer = make_peer(1, r)
    nid = a.editor.create_entity()
    viewer.receive(a.flush())
    with pytest.raises(PermissionDeniedError):
        viewer.editor.set_transform(nid, px=3.0)
    viewer.editor.select(nid)  # viewers may select
    a.receive(viewer.flush())
    sel = a.world.get(a.editor.local_entity(nid), Selection)
    assert int(sel["author"]) == viewer.log.author


def test_remote_entry_beyond_role_is_rejected_and_counted() -> None:
    """A viewer whose own permission table is tampered with still cannot edit others' worlds."""
    r = roster(2, {1: Role.VIEWER})
    a = make_peer(0, r)
    rogue = make_peer(1, r)
    rogue.log.permissions = Permissions({SET_TRANSFORM: Role.VIEWER})
    nid = a.editor.create_entity({"px": 1.0})
    rogue.receive(a.flush())
    rogue.editor.set_transform(nid, px=99.0)
    rogue.editor.set_transform(nid, py=99.0)
    a.receive(rogue.flush())
    assert counters(a)["permission_rejections"] == 2
    assert a.editor.transform(nid)["px"] == 1.0
    assert a.world.get(a.editor.local_entity(nid), Transform)["px"] == 1.0


def test_invalid_payload_from_remote_is_dropped() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity()
    b.receive(a.flush())
    # bypass the local check by registering a permissive validator on the sender only
    a.log.register(CommandType(SET_TRANSFORM, Role.EDITOR, lambda e: None))
    nan = b"\xff\x03" + b"\x00\x00\xc0\x7f" * 10  # mask all, NaN values
    a.log.append(SET_TRANSFORM, Scope(nid, Transform.id), nan)
    b.receive(a.flush())
    assert counters(b)["invalid_command_drops"] == 1
    assert b.editor.transform(nid)["px"] == 0.0


def test_admin_only_command_type() -> None:
    r = roster(2, {0: Role.ADMIN})
    admin, editor = make_peer(0, r), make_peer(1, r)
    lock = CommandType("test.lock_scene", Role.ADMIN, lambda e: None)
    for p in (admin, editor):
        p.log.register(lock)
    with pytest.raises(PermissionDeniedError, match="needs role admin"):
        editor.log.append("test.lock_scene", Scope(1, 1), b"")
    admin.log.append("test.lock_scene", Scope(1, 1), b"")
    admin.editor.create_entity()  # admins may do what editors may
    editor.receive(admin.flush())
    assert len(editor.log) == 2
    rogue = make_peer(1, r)  # an editor whose own table lets it issue the admin command
    rogue.log.permissions = Permissions({"test.lock_scene": Role.EDITOR})
    rogue.log.register(CommandType("test.lock_scene", Role.EDITOR, lambda e: None))
    forbidden = rogue.log.append("test.lock_scene", Scope(1, 1), b"")
    admin.receive(rogue.flush())
    assert counters(admin)["permission_rejections"] == 1
    res = admin.log.resolution((1, 1))
    assert res.denied == [forbidden] and forbidden not in res.accepted


def test_signer_identity_survives_a_restart() -> None:
    s = signer(5)
    again = Signer.from_seed(s.secret_seed())
    assert again.author == s.author and again.public_key == s.public_key


def test_roster_refuses_unknown_authors_and_namespace_clashes() -> None:
    r = roster(1)
    with pytest.raises(UnknownAuthorError):
        r.role_of(12345)
    assert len(r) == 1 and signer(0).author in r


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), min_size=1, max_size=6),
    st.one_of(st.just(0), st.integers(1, 4000)),  # mostly intact length: reach the signature
    st.one_of(st.just(b""), st.binary(max_size=16)),
)
def test_fuzzed_packets_through_the_whole_receive_path(
    flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    a, r = _FUZZ_SENDER
    b = make_peer(1, r)  # fresh each time: an earlier example must not mask this one
    data = bytearray(_FUZZ_PACKET)
    for pos, value in flips:
        data[pos % len(data)] = value
    packet = bytes(data[: len(data) - cut % len(data)]) + tail
    b.log.receive(packet)  # must not raise
    b.editor.apply_changes()
    genuine = {e.encode() for e in a.log.ordered()}
    assert {e.encode() for e in b.log.ordered()} <= genuine  # nothing forged ever gets in
    if packet == _FUZZ_PACKET:
        assert len(b.log) == 3


def _fuzz_setup() -> tuple[tuple[Peer, Roster], bytes]:
    r = roster(2)
    a = make_peer(0, r)
    nid = a.editor.create_entity({"px": 1.0}, mesh=True)
    a.editor.mesh_add_vertex(nid, (1.0, 2.0, 3.0))
    (packet,) = a.log.flush()
    return (a, r), packet


_FUZZ_SENDER, _FUZZ_PACKET = _fuzz_setup()


def test_replays_cost_no_signature_check() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    a.editor.create_entity()
    packets = a.flush()
    b.receive(packets)
    verified = counters(b)["commands_verified"]
    for _ in range(50):
        b.receive(packets)
    assert counters(b)["commands_verified"] == verified
    assert counters(b)["duplicates_dropped"] == 50


def test_duplicates_in_a_requested_sync_answer_are_not_counted_as_replays() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    flushes = []
    for _ in range(3):
        a.editor.create_entity()
        flushes.append(a.flush())
    b.receive(flushes[0] + flushes[2])  # the middle one is lost: b holds 1 and 3
    answer = a.log.receive(b.log.sync_request())  # resends 2 and 3 (b's floor is 1)
    b.receive(answer)
    assert len(b.log) == 3 and b.fingerprint() == a.fingerprint()
    assert counters(b)["sync_duplicates"] == 1
    assert "replay_rejections" not in counters(b)
    c = make_peer(1, r)
    c.receive(flushes[2])
    c.receive(answer)  # c never asked: an ordinary duplicate, still no attack
    assert counters(c)["duplicates_dropped"] == 1 and "sync_duplicates" not in counters(c)
    assert "replay_rejections" not in counters(c)


def test_a_duplicating_link_counts_duplicates_not_replays() -> None:
    """Issue 7, defect 3: three peers over links that duplicate, reorder and delay packets."""
    r = roster(3)
    peers = [make_peer(i, r) for i in range(3)]
    model = LinkModel(latency_s=0.02, jitter_s=0.01, duplicate=0.3, reorder=0.2, seed=7)
    links = {
        (i, j): LoopbackLink(dataclasses.replace(model, seed=7 + 3 * i + j))
        for i in range(3)
        for j in range(3)
        if i != j
    }
    nids = [p.editor.create_entity({"px": float(i)}) for i, p in enumerate(peers)]
    now = 0.0
    for frame in range(60):
        now += 1 / 60
        for i, p in enumerate(peers):
            if frame < 40:
                p.editor.set_transform(nids[(i + frame) % 3], py=float(frame))
            for packet in p.flush():
                for j in range(3):
                    if j != i:
                        links[(i, j)].send(packet, now)
        for (_, j), link in links.items():
            peers[j].receive(link.receive(now))
    for (_, j), link in links.items():
        peers[j].receive(link.receive(now + 10.0))
    assert sum(link.stats.duplicated for link in links.values()) > 0
    assert peers[0].fingerprint() == peers[1].fingerprint() == peers[2].fingerprint()
    for p in peers:
        assert counters(p)["duplicates_dropped"] > 0
        assert "replay_rejections" not in counters(p)


def test_reusing_a_sequence_number_with_other_content_is_never_a_duplicate() -> None:
    """Other content under a held (author, seq): a forgery is refused by its signature and the
    held entry stands; a validly signed second version is an equivocation (the held one is
    withdrawn, see test_commandlog_equivocation). Neither counts as a duplicate."""
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 1.0})
    (packet,) = a.flush()
    b.receive([packet])
    original = decode_batch(decode_packet(packet).batches[0]).entries[0]  # the create
    rewritten = Entry(
        original.clock, original.author, original.seq, original.kind, original.scope,
        b"\x01", original.base,
    )
    s = signer(0)
    body = encode_batch_body(s.author, (rewritten,))
    b.receive([encode_batches_packet([body + bytes(64)])])  # a forgery reusing the seq
    assert counters(b)["signature_rejections"] == 1
    assert b.log.get(original.id) == original and b.editor.alive(nid)
    b.receive([encode_batches_packet([body + s.sign(body)])])  # validly signed: equivocation
    assert counters(b)["equivocations"] == 1 and original.id not in b.log
    assert "duplicates_dropped" not in counters(b) and not b.editor.alive(nid)


def test_signatures_interoperate_between_pynacl_and_cryptography() -> None:
    """Verification runs on libsodium (PyNaCl), signing on cryptography: raw 32-byte keys and
    signatures made by either library verify in the other, and in the log."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from nacl.exceptions import BadSignatureError
    from nacl.signing import SigningKey, VerifyKey

    from theta_ecs.commandlog.signing import verify_signature

    seed = bytes(range(32))
    ours = Signer.from_seed(seed)
    theirs = SigningKey(seed)
    assert bytes(theirs.verify_key) == ours.public_key  # one key, two libraries
    message = b"theta interop"
    by_crypto = ours.sign(message)
    by_nacl = theirs.sign(b"theta.commandlog.batch.v1\x00" + message).signature
    assert by_crypto == by_nacl  # Ed25519 is deterministic: the very same signature
    VerifyKey(ours.public_key).verify(b"theta.commandlog.batch.v1\x00" + message, by_crypto)
    Ed25519PublicKey.from_public_bytes(bytes(theirs.verify_key)).verify(
        by_nacl, b"theta.commandlog.batch.v1\x00" + message
    )
    other = SigningKey(bytes(32)).sign(message).signature
    assert verify_signature(bytes(SigningKey(bytes(32)).verify_key), other, message)
    assert not verify_signature(ours.public_key, other, message)
    assert not verify_signature(ours.public_key, b"\x00" * 64, message)
    with pytest.raises(BadSignatureError):
        VerifyKey(ours.public_key).verify(message, other)
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(ours.public_key).verify(other, message)
    # a batch signed with PyNaCl alone is accepted by a log
    r = Roster()
    r.add(bytes(theirs.verify_key), Role.EDITOR)
    r.add(signer(1).public_key, Role.EDITOR)
    b = make_peer(1, r)
    entry = Entry(1, ours.author, 1, "theta.editor.create_entity",
                  Scope((ours.author & 0xFFFFFFFF) << 32 | 1, 0), b"\x00")
    body = encode_batch_body(ours.author, (entry,))
    signed = theirs.sign(b"theta.commandlog.batch.v1\x00" + body).signature
    b.receive([encode_batches_packet([body + signed])])
    assert b.log.get(entry.id) == entry and "signature_rejections" not in counters(b)
