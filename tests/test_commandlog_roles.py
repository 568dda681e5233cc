"""Role changes travel in the log: admin-signed grants and revokes take effect at their place in
the total order, identically on every peer, whatever order the entries arrive in."""

from __future__ import annotations

import random

import pytest

from theta_ecs.commandlog import (
    ConflictPolicy,
    PermissionDeniedError,
    Permissions,
    Role,
    Strategy,
    Transform,
)
from theta_ecs.commandlog.editor import SET_TRANSFORM
from theta_ecs.commandlog.roles import GRANT, ROLES_SCOPE, grant_payload

from .test_commandlog_support import Peer, counters, exchange, make_peer, roster, signer


def _deliver_all(peer: Peer, packets: list[bytes], seed: int) -> None:
    order = list(packets) + packets[: len(packets) // 2]  # some twice
    random.Random(seed).shuffle(order)
    for p in order:
        peer.log.receive(p)
    peer.editor.apply_changes()


def test_a_revoke_refuses_later_commands_on_every_peer_in_any_order() -> None:
    r = roster(3, {0: Role.ADMIN})
    admin, bob = make_peer(0, r), make_peer(1, r)
    nid = admin.editor.create_entity({"px": 1.0})
    start = admin.flush()
    bob.receive(start)
    revoke = admin.log.revoke(bob.log.author)  # clock 2
    before = bob.editor.set_transform(nid, px=2.0)  # clock 2: concurrent with the revoke
    after = bob.editor.set_transform(nid, px=3.0)  # clock 3: after the revoke in every order
    packets = start + admin.flush() + bob.flush()
    assert after.key > revoke.key
    peers = [make_peer(2, r, with_signer=False) for _ in range(4)] + [admin, bob]
    for i, peer in enumerate(peers):
        _deliver_all(peer, packets, seed=i)
    digests = {p.editor.digest() for p in peers}
    assert len(digests) == 1
    for peer in peers:
        res = peer.log.resolution((nid, Transform.id))
        # set aside (not held) on every peer: its author had no role there
        assert after not in res.accepted and after.id not in peer.log
        assert (before in res.accepted) == (before.key < revoke.key)
        assert peer.log.role_of(bob.log.author) is None
        assert peer.log.role_of(bob.log.author, at=before.key) is (
            Role.EDITOR if before.key < revoke.key else None
        )
        assert counters(peer)["revoked_drops"] >= 1
    expected_px = 2.0 if before.key < revoke.key else 1.0
    assert peers[0].editor.transform(nid)["px"] == expected_px
    with pytest.raises(PermissionDeniedError, match="no role"):
        bob.editor.set_transform(nid, px=4.0)  # bob now knows: refused locally too


def test_a_grant_takes_effect_from_its_position_even_when_it_arrives_last() -> None:
    r = roster(3, {0: Role.ADMIN, 1: Role.VIEWER})
    admin, viewer = make_peer(0, r), make_peer(1, r)
    viewer.log.permissions = Permissions({SET_TRANSFORM: Role.VIEWER})  # a tampered own table
    nid = admin.editor.create_entity({"px": 1.0})
    start = admin.flush()
    viewer.receive(start)
    early = viewer.editor.set_transform(nid, px=5.0)  # clock 2, before any grant
    early_packets = viewer.flush()
    admin.receive(early_packets)
    grant = admin.log.grant(signer(1).public_key, Role.EDITOR)  # clock 3
    grant_packets = admin.flush()
    viewer.receive(grant_packets)
    late = viewer.editor.set_transform(nid, px=7.0)  # clock 4: after the grant
    late_packets = viewer.flush()
    observer = make_peer(2, r, with_signer=False)
    observer.receive(start + early_packets + late_packets)  # the grant has not arrived yet
    res = observer.log.resolution((nid, Transform.id))
    assert early in res.denied and late in res.denied
    assert observer.editor.transform(nid)["px"] == 1.0
    observer.receive(grant_packets)  # now the later command counts, the earlier one still not
    res = observer.log.resolution((nid, Transform.id))
    assert late in res.accepted and early in res.denied
    assert observer.editor.transform(nid)["px"] == 7.0
    assert observer.world.get(observer.editor.local_entity(nid), Transform)["px"] == 7.0
    admin.receive(late_packets)
    assert admin.editor.digest() == observer.editor.digest()
    assert observer.log.role_of(viewer.log.author, at=early.key) is Role.VIEWER
    assert observer.log.role_of(viewer.log.author, at=late.key) is Role.EDITOR
    assert grant.key < late.key


def test_only_admins_change_roles() -> None:
    r = roster(3, {0: Role.ADMIN})
    admin, rogue = make_peer(0, r), make_peer(1, r)
    with pytest.raises(PermissionDeniedError, match="needs role admin"):
        rogue.log.grant(signer(2).public_key, Role.ADMIN)
    rogue.log.permissions = Permissions({GRANT: Role.EDITOR})  # bypass its own check
    rogue.log.append(GRANT, ROLES_SCOPE, grant_payload(signer(1).public_key, Role.ADMIN))
    admin.receive(rogue.flush())
    assert admin.log.role_of(rogue.log.author) is Role.EDITOR
    assert counters(admin)["permission_rejections"] == 1
    (denied,) = admin.log.resolution(ROLES_SCOPE.group).denied
    assert denied.author == rogue.log.author


def test_a_grant_admits_a_newcomer_whose_entries_wait_for_it() -> None:
    r = roster(2, {0: Role.ADMIN})
    admin, observer = make_peer(0, r), make_peer(1, r, with_signer=False)
    newcomer = make_peer(5, r, joining=True)  # its key is in no roster
    with pytest.raises(PermissionDeniedError):
        newcomer.editor.create_entity()
    admin.log.grant(signer(5).public_key, Role.EDITOR)
    grant_packets = admin.flush()
    newcomer.receive(grant_packets)
    nid = newcomer.editor.create_entity({"py": 2.0})
    entity_packets = newcomer.flush()
    observer.receive(entity_packets)  # before the grant: unknown author, not marked seen
    assert counters(observer)["unknown_author_drops"] == 2 and len(observer.log) == 0
    observer.receive(grant_packets + entity_packets)
    assert observer.editor.transform(nid)["py"] == 2.0
    admin.receive(entity_packets)
    assert admin.editor.digest() == observer.editor.digest() == newcomer.editor.digest()


def test_the_roster_stays_live_for_members_the_log_never_changed() -> None:
    """A server admits clients into its roster after its log exists; their roles count at once,
    and a member the log's grants and revokes never touched follows the roster."""
    r = roster(2, {0: Role.ADMIN})
    server = make_peer(0, r)
    late = make_peer(4, roster(5))  # its own log knows itself; the server's roster not yet
    nid = late.editor.create_entity({"px": 4.0})
    packets = late.flush()
    server.receive(packets)
    assert counters(server)["unknown_author_drops"] == 2
    r.add(signer(4).public_key, Role.EDITOR)  # admitted after the server's log was made
    server.receive(packets)
    assert server.editor.transform(nid)["px"] == 4.0
    r.add(signer(4).public_key, Role.VIEWER)  # demoted through the roster
    assert server.log.role_of(signer(4).author) is Role.VIEWER
    server.log.grant(signer(4).public_key, Role.ADMIN)  # from here on the log decides
    r.add(signer(4).public_key, Role.VIEWER)
    assert server.log.role_of(signer(4).author) is Role.ADMIN


def test_concurrent_role_changes_are_never_reported_rejected_under_a_reject_policy() -> None:
    """With reject as the session's default strategy, the roles scope folded under it too: of two
    admins' concurrent grants the later was reported rejected to its author (and counted), yet
    the role timeline applied it on every peer. Role changes fold last-writer-wins now."""
    policy = ConflictPolicy(default=Strategy.REJECT)
    r = roster(4, {2: Role.ADMIN, 3: Role.ADMIN})
    x, y = make_peer(2, r, policy=policy), make_peer(3, r, policy=policy)
    exchange(x, y)
    x.log.grant(signer(0).public_key, Role.ADMIN)
    y.log.grant(signer(1).public_key, Role.VIEWER)
    x_out, y_out = x.log.flush(), y.log.flush()
    for p in y_out:
        x.log.receive(p)
    for p in x_out:
        y.log.receive(p)
    for peer in (x, y):
        assert peer.log.drain_changes().rejections == []
        assert peer.log.resolution(ROLES_SCOPE.group).rejected == []
        assert peer.log.role_of(signer(1).author) is Role.VIEWER
        assert peer.log.role_of(signer(0).author) is Role.ADMIN
        assert counters(peer).get("command_rejections", 0) == 0
