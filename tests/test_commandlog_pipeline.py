"""The per-frame pipeline inside World.step: outbox, budgeted inbox, telemetry."""

from __future__ import annotations

from theta_ecs import World
from theta_ecs.commandlog import CommandLog, CommandPipeline, Transform

from .test_commandlog_support import GENEROUS, roster, signer


def pipeline(i: int, n: int = 2, budget: float = 0.004) -> CommandPipeline:
    world = World()
    log = CommandLog(roster(n), signer(i), guards=GENEROUS, telemetry=world.telemetry)
    return CommandPipeline(world, log, inbox_budget_s=budget)


def test_commands_issued_in_a_frame_reach_the_other_world_next_frame() -> None:
    a, b = pipeline(0), pipeline(1)
    nid = a.editor.create_entity({"px": 2.0})
    a.editor.set_transform(nid, py=3.0)
    assert a.editor.entity(nid) is None  # applied at the stage boundary
    a.world.step()
    assert a.world.get(a.editor.local_entity(nid), Transform)["py"] == 3.0
    packets = a.outgoing()
    assert len(packets) == 1  # the frame's commands went out as one signed batch
    assert a.outgoing() == []
    for p in packets:
        b.deliver(p)
    assert b.inbox_depth == 1
    b.world.step()
    ent = b.editor.entity(nid)
    assert ent is not None and b.world.get(ent, Transform)["px"] == 2.0
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
    packets = a.outgoing()
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


def test_sync_packets_are_answered_through_the_outbox() -> None:
    a, b = pipeline(0), pipeline(1)
    nid = a.editor.create_entity()
    a.world.step()
    a.outgoing()  # lost in transit
    a.deliver(b.log.sync_request())
    a.world.step()
    for p in a.outgoing():
        b.deliver(p)
    b.world.step()
    assert b.editor.entity(nid) is not None
