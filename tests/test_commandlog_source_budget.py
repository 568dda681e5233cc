"""Signature work is charged before it is done: batches of an author over its rate, and batches
from a source (peer) that keeps wasting checks, are dropped ahead of the Ed25519 check."""

from __future__ import annotations

from theta_ecs.commandlog import GuardConfig

from .test_commandlog_support import FakeClock, counters, exchange, make_peer, roster

TIGHT = GuardConfig(rate=10.0, burst=10.0, source_waste_rate=1.0, source_waste_burst=5.0)


def _batches(n: int) -> list[bytes]:
    r = roster(2)
    sender, other = make_peer(1, r), make_peer(0, r)
    nid = sender.editor.create_entity({"px": 0.0})
    exchange(sender, other)
    packets = []
    for i in range(n):
        sender.editor.set_transform(nid, px=float(i))
        packets.extend(sender.flush())
    return [*sender.sent[:1], *packets]


def test_over_rate_batches_cost_no_signature_check() -> None:
    packets = _batches(50)
    victim = make_peer(0, roster(2), guards=TIGHT, now=FakeClock())
    for p in packets:
        victim.log.receive(p, source="mallory")
    c = counters(victim)
    assert c["commands_verified"] == 10  # the burst; the rest never reached the check
    assert c["commands_verified"] + c["rate_limit_drops"] == 52  # the create holds two
    # left unseen: once the rate allows, a resend lands
    victim.log._now.t += 10.0  # type: ignore[attr-defined]
    for p in packets:
        victim.log.receive(p, source="mallory")
    assert counters(victim)["commands_received"] == 20


def test_a_source_wasting_signature_checks_is_cut_off_alone() -> None:
    packets = _batches(3)
    forged = [p[:-64] + bytes(64) for p in packets]  # signatures zeroed
    victim = make_peer(0, roster(2), guards=TIGHT, now=FakeClock())
    for _ in range(4):
        for p in forged:
            victim.log.receive(p, source="mallory")
    c = counters(victim)
    # the waste budget's burst: five batches (the create's holds two entries) were checked
    assert c["signature_rejections"] == 2 + 1 + 1 + 1 + 2
    assert c["signature_rejections"] + c["source_rate_drops"] == 4 * (2 + 3)
    for p in packets:  # the genuine batches through another peer are unaffected
        victim.log.receive(p, source="honest")
    assert counters(victim)["commands_received"] == 2 + 3
