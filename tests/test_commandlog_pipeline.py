"""The per-frame pipeline inside World.step: outbox, budgeted inbox, sync, telemetry."""

from __future__ import annotations

from theta_ecs import World
from theta_ecs.commandlog import CommandLog, CommandPipeline, GuardConfig, Transform
from theta_ecs.commandlog.entry import PacketType, decode_packet

from .test_commandlog_support import GENEROUS, FakeClock, roster, signer


def pipeline(
    i: int, budget: float = 0.004, guards: GuardConfig = GENEROUS, clock: FakeClock | None = None
) -> CommandPipeline:
    world = World()
    clock = clock or FakeClock()
    log = CommandLog(roster(2), signer(i), guards=guards, telemetry=world.telemetry, now=clock)
    return CommandPipeline(world, log, inbox_budget_s=budget, now=clock)


def batches_only(packets: list[bytes]) -> list[bytes]:
    return [p for p in packets if decode_packet(p).type is PacketType.BATCHES]


def test_commands_issued_in_a_frame_reach_the_other_world_next_frame() -> None:
    a, b = pipeline(0), pipeline(1)
    nid = a.editor.create_entity({"px": 2.0})
    a.editor.set_transform(nid, py=3.0)
    assert a.editor.entity(nid) is None  # applied at the stage boundary
    a.world.step()
    assert a.world.get(a.editor.local_entity(nid), Transform)["py"] == 3.0
    out = a.outgoing()
    packets = batches_only(out)
    assert len(packets) == 1  # the frame's commands went out as one signed batch
    assert len(out) == 2  # plus the first frame's sync request
    assert a.outgoing() == []
    for p in packets:
        b.deliver(p)
    assert b.inbox_depth == 1
    b.world.step()
    assert b.world.get(b.editor.local_entity(nid), Transform)["px"] == 2.0
    tel = a.world.telemetry
    assert tel.counters["commands_appended"] == 3 and tel.counters["commands_sent"] == 3
    assert "command_frame_ms" in tel.gauges and "command_sign_ms" in tel.gauges
    assert b.world.telemetry.gauges["command_verify_us_per_entry"] > 0
    assert b.world.telemetry.gauges["command_inbox_depth"] == 0


def test_inbox_budget_spreads_a_flood_over_frames() -> None:
    a, b = pipeline(0), pipeline(1, budget=0.0)  # one packet per frame
    nid = a.editor.create_entity()
    a.world.step()
    for i in range(5):
        a.editor.set_transform(nid, px=float(i))
        a.world.step()
    packets = batches_only(a.outgoing())
    assert len(packets) == 6
    for p in packets:
        b.deliver(p)
    b.world.step()
    assert b.world.telemetry.gauges["command_inbox_depth"] == 5
    for _ in range(5):
        b.world.step()
    assert b.world.telemetry.gauges["command_inbox_depth"] == 0
    assert b.world.get(b.editor.local_entity(nid), Transform)["px"] == 4.0
    assert b.editor.digest() == a.editor.digest()


def test_a_late_joiner_syncs_on_its_first_frame_and_answers_go_to_the_asker() -> None:
    a = pipeline(0)
    nid = a.editor.create_entity()
    a.world.step()
    a.outgoing()  # nobody was listening
    b = pipeline(1)
    b.world.step()
    (request,) = b.outgoing()
    assert decode_packet(request).type is PacketType.SYNC
    a.deliver(request, source="peer-b")
    a.world.step()
    assert batches_only(a.outgoing()) == []  # the answer is not broadcast ...
    replies = a.replies()
    assert [src for src, _ in replies] == ["peer-b"]  # ... but addressed to the asker
    for _, p in replies:
        b.deliver(p, source="peer-a")
    b.world.step()
    assert b.editor.entity(nid) is not None


def test_rate_limited_entries_come_back_through_an_automatic_sync() -> None:
    clock = FakeClock()
    a = pipeline(0)
    b = pipeline(1, guards=GuardConfig(rate=2.0, burst=3.0), clock=clock)
    b.world.step()
    b.outgoing()  # first-frame sync, nothing to learn yet
    nid = a.editor.create_entity()
    for i in range(4):
        a.editor.set_transform(nid, px=float(i))
    a.world.step()
    for p in batches_only(a.outgoing()):
        b.deliver(p)
    b.world.step()
    assert b.world.telemetry.counters["rate_limit_drops"] == 2
    clock.t += 5.0  # tokens refill and the sync interval passes
    b.world.step()
    (request,) = b.outgoing()  # the drop triggered a sync request
    a.deliver(request, source="b")
    a.world.step()
    for _, p in a.replies():
        b.deliver(p)
    b.world.step()
    assert b.world.get(b.editor.local_entity(nid), Transform)["px"] == 3.0
    assert b.editor.digest() == a.editor.digest()


def test_sync_answers_are_throttled() -> None:
    a = pipeline(0)
    a.editor.create_entity()
    a.world.step()
    request = pipeline(1).log.sync_request()
    assert a.log.receive(request)
    assert a.log.receive(request) == []
    assert a.world.telemetry.counters["sync_rate_drops"] == 1


def test_a_peer_asking_for_syncs_in_a_loop_cannot_starve_another() -> None:
    """Sync answers were throttled for the whole log: a peer re-sending sync requests faster
    than the interval took every answer, and a restarted honest peer never caught up. The
    throttle is per source now (the pipeline passes the source its transport named)."""
    a = pipeline(0)
    a.editor.create_entity()
    a.world.step()
    request = pipeline(1).log.sync_request()
    for _ in range(3):
        a.deliver(request, source="greedy")
    a.deliver(request, source="honest")
    a.world.step()
    answered = [source for source, _ in a.replies()]
    assert answered == ["greedy", "honest"]
    assert a.world.telemetry.counters["sync_rate_drops"] == 2


def test_a_source_flooding_the_inbox_is_capped_and_the_others_still_get_through() -> None:
    a, b = pipeline(0), pipeline(1, budget=0.0)  # b integrates one packet per frame
    b.max_inbox_bytes_per_source = 4096
    nid = a.editor.create_entity()
    a.world.step()
    honest = batches_only(a.outgoing())
    junk = b"\x00" * 1500
    accepted = [b.deliver(junk, source="flooder") for _ in range(10)]
    assert accepted == [True, True, False, False, False, False, False, False, False, False]
    assert b.world.telemetry.counters["inbox_overflow_drops"] == 8
    assert all(b.deliver(p, source="honest") for p in honest)  # other sources are unaffected
    assert b.inbox_depth == 2 + len(honest)
    for _ in range(2 + len(honest)):
        b.world.step()
    assert b.inbox_depth == 0
    assert b.editor.local_entity(nid) is not None
    # once integrated, the flooder's bytes no longer count against it
    assert b.deliver(junk, source="flooder")
