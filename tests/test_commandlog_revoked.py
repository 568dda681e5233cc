"""A revoked member cannot make peers store what it sends after its revoke (a bounded quarantine
holds it); peers that learn of the revoke in any order hold the same entries, and a re-grant
before its entries brings them back."""

from __future__ import annotations

import dataclasses

from theta_ecs.commandlog import MemoryCommandStore, Role

from .test_commandlog_support import GENEROUS, counters, exchange, make_peer, roster, signer

R = roster(3, {2: Role.ADMIN})


def _setup() -> tuple:  # type: ignore[type-arg]
    admin, honest, rogue = make_peer(2, R), make_peer(0, R), make_peer(1, R)
    late = make_peer(0, R)  # hears of the revoke only after the rogue's entries
    nid = admin.editor.create_entity({"px": 0.0})
    exchange(admin, honest, rogue, late)
    admin.log.revoke(rogue.log.author)
    revoke = admin.flush()
    # the rogue never hears of it and keeps editing, stamped after the revoke
    rogue.log.clock.observe(admin.log.clock.value + 1000)
    flood = []
    for i in range(40):
        rogue.editor.set_transform(nid, px=float(i + 1))
        flood.extend(rogue.flush())
    return admin, honest, rogue, late, nid, revoke, flood


def test_a_revoked_member_cannot_make_peers_store_its_entries() -> None:
    admin, honest, _, late, nid, revoke, flood = _setup()
    store = MemoryCommandStore()
    honest = make_peer(0, R, store=store)
    honest.receive(admin.sent)  # the create and the revoke
    assert admin.sent[-1:] == revoke and honest.editor.alive(nid)
    held, stored = len(honest.log), len(store.load())
    verified = counters(honest).get("commands_verified", 0)
    for _ in range(3):  # and the resends
        honest.receive(flood)
    assert len(honest.log) == held and len(store.load()) == stored
    assert counters(honest)["revoked_drops"] == 3 * 40
    assert counters(honest)["commands_verified"] == verified + 40  # resends cost no check
    assert honest.editor.transform(nid)["px"] == 0.0
    # a peer that got the flood before the revoke sets it aside then: the same entries
    late.receive(flood)
    late.receive(revoke)
    assert late.fingerprint() == honest.fingerprint()


def test_a_grant_before_the_entries_brings_them_back() -> None:
    admin, honest, _, late, nid, revoke, flood = _setup()
    honest.receive(revoke)
    honest.receive(flood)
    assert counters(honest)["revoked_drops"] == 40
    admin.log.grant(signer(1).public_key, Role.EDITOR)  # ordered before the rogue's entries
    grant = admin.flush()
    late.receive(flood + revoke + grant)
    honest.receive(grant)  # the quarantined entries join
    assert honest.editor.transform(nid)["px"] == 40.0
    assert honest.fingerprint() == late.fingerprint()


def test_the_quarantine_is_bounded_and_evicted_entries_come_back_by_resend() -> None:
    admin, _, _, late, nid, revoke, flood = _setup()
    small = make_peer(0, R, guards=dataclasses.replace(GENEROUS, max_quarantine_bytes=4000))
    small.receive(admin.sent)
    small.receive(flood)
    evicted = counters(small)["quarantine_evictions"]
    assert 0 < evicted < 40
    assert sum(len(raw) for _, raw in small.log._quarantine.values()) <= 4000
    admin.log.grant(signer(1).public_key, Role.EDITOR)
    grant = admin.flush()
    small.receive(grant)
    assert small.editor.transform(nid)["px"] != 40.0  # the newest were evicted
    small.receive(flood)  # a resend (or a sync) brings them
    late.receive(flood + revoke + grant)
    assert small.editor.transform(nid)["px"] == 40.0
    assert small.fingerprint() == late.fingerprint()
