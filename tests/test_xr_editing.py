"""VR editing end to end: the simulated hand points, pulls the trigger, drags; the edit travels
as signed editor commands to another peer, and undo puts it back."""

from __future__ import annotations

import numpy as np
import pytest

from theta_ecs.commandlog import Selection, ToolState, Transform, presence_id
from theta_ecs.commandlog.editor import SELECT, SET_TOOL, SET_TRANSFORM
from theta_ecs.interfaces import Pose
from theta_ecs.stdcomponents import Position
from theta_xr.binding import STANDARD
from theta_xr.editing import TOOL_POINT, HandEditor
from theta_xr.math3d import quat_look_at
from theta_xr.meshes import MeshLibrary
from theta_xr.picking import Ray, pick, ray_boxes
from theta_xr.simulated import SimulatedInputProvider

from .test_commandlog_support import Peer, exchange, make_peer, roster

HEAD = [0.0, 1.7, 0.0, 0.0, 0.0, 0.0, 1.0]


def scripted_drag(target: tuple[float, float, float], dx: float) -> SimulatedInputProvider:
    """The right hand aims at ``target``, pulls the trigger at 0.2 s, moves ``dx`` along x
    between 0.4 s and 0.8 s, lets go at 1.0 s."""
    start = (0.25, 1.2, -0.4)
    aim = quat_look_at(tuple(t - s for t, s in zip(target, start)))
    end = (start[0] + dx, start[1], start[2])
    doc = {"keys": [{"t": 0.0, "head": HEAD, "right": [*start, *aim]},
                    {"t": 0.4, "head": HEAD, "right": [*start, *aim]},
                    {"t": 0.8, "head": HEAD, "right": [*end, *aim]}],
           "buttons": [{"button": "right/trigger", "start": 0.2, "end": 1.0}]}
    return SimulatedInputProvider(motion="recorded", path=doc)


def play(peer: Peer, tool: HandEditor, hmd: SimulatedInputProvider, seconds: float = 1.2,
         hz: float = 30.0) -> list[str]:
    kinds = []
    for i in range(int(seconds * hz) + 1):
        kinds += [e.kind for e in tool.update(hmd.poll(i / hz))]
        peer.editor.apply_changes()  # project locally; packets wait for the next exchange
    return kinds


def test_grab_and_move_replicates_and_undoes() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    near = a.editor.create_entity({"px": 0.0, "py": 1.2, "pz": -2.0, "sx": 0.4, "sy": 0.4,
                                   "sz": 0.4})
    far = a.editor.create_entity({"px": 0.0, "py": 1.2, "pz": -5.0})  # behind it on the ray
    exchange(a, b)
    tool = HandEditor(a.editor)
    kinds = play(a, tool, scripted_drag((0.0, 1.2, -2.0), 0.5))
    assert kinds == [SELECT, SET_TOOL, SET_TRANSFORM, SET_TOOL]  # one transform per grab
    exchange(a, b)
    for peer in (a, b):
        t = peer.world.get(peer.editor.local_entity(near), Transform)
        assert float(t["px"]) == pytest.approx(0.5, abs=1e-5)
        assert (float(t["py"]), float(t["pz"])) == pytest.approx((1.2, -2.0), abs=1e-5)
        assert float(t["sx"]) == pytest.approx(0.4)  # scale kept
        sel = peer.world.get(peer.editor.local_entity(near), Selection)
        assert int(sel["author"]) == a.log.author
        tool_state = peer.world.get(peer.editor.local_entity(presence_id(a.log.author)),
                                    ToolState)
        assert int(tool_state["tool"]) == TOOL_POINT
        assert not peer.world.has(peer.editor.local_entity(far), Selection)
    # b holds a's commands themselves (signed batches, verified on receipt by the log)
    theirs = [e.kind for e in b.log.ordered() if e.author == a.log.author]
    assert theirs[-4:] == [SELECT, SET_TOOL, SET_TRANSFORM, SET_TOOL]
    assert a.editor.undo()  # the drag is one undo step
    exchange(a, b)
    t = b.world.get(b.editor.local_entity(near), Transform)
    assert float(t["px"]) == pytest.approx(0.0, abs=1e-6)
    assert a.fingerprint() == b.fingerprint()


def test_streaming_drag_is_seen_live_by_the_other_peer() -> None:
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 0.0, "py": 1.2, "pz": -2.0})
    exchange(a, b)
    tool = HandEditor(a.editor, stream_hz=10.0)
    hmd = scripted_drag((0.0, 1.2, -2.0), 0.5)
    seen = []
    for i in range(37):
        tool.update(hmd.poll(i / 30))
        if i == 6:
            assert tool.grabbing == nid
        exchange(a, b)
        seen.append(float(b.world.get(b.editor.local_entity(nid), Transform)["px"]))
    assert 3 <= len(set(seen)) <= 8  # intermediate positions arrived, at about 10 Hz
    assert seen[-1] == pytest.approx(0.5, abs=1e-5)
    assert np.all(np.diff(seen) >= -1e-6)


def test_pointing_at_nothing_selects_nothing() -> None:
    r = roster(1)
    a = make_peer(0, r)
    a.editor.create_entity({"px": 3.0, "py": 1.2, "pz": -2.0})
    a.flush()
    tool = HandEditor(a.editor)
    kinds = play(a, tool, scripted_drag((0.0, 1.2, -2.0), 0.5))
    assert kinds == [] and tool.selected is None and tool.hover is None


def test_ray_box_slab_test() -> None:
    lo = np.array([[-1, -1, -5], [-1, -1, 2], [5, 5, 5], [-1, -1, -1]], np.float64)
    hi = lo + 2
    d = ray_boxes((0.0, 0.0, 0.0), (0.0, 0.0, -1.0), lo, hi)
    assert d.tolist() == [3.0, np.inf, np.inf, 0.0]  # ahead, behind, off the ray, inside
    # a ray along an axis, grazing a face: counts as a hit, no NaN
    d = ray_boxes((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), lo[:1], hi[:1])
    assert d.tolist() == [3.0]


def test_pick_uses_rotated_scaled_boxes_over_the_columns() -> None:
    from theta_ecs import World
    from theta_ecs.stdcomponents import Rotation, Scale

    world = World()
    ents = world.spawn_batch({Position: np.array([[0.8, 0, -3], [0, 0, -6]], np.float32)})
    ray = Ray.from_pose(Pose((0.0, 0.0, 0.0)))
    hit = pick(world, ray, (STANDARD,), MeshLibrary())
    assert hit is not None and hit.entity == int(ents[1]) and hit.distance == pytest.approx(5.5)
    world.insert(int(ents[0]), Scale, (2.0, 1.0, 1.0))  # now it spans x -0.2 .. 1.8
    hit = pick(world, ray, (STANDARD,), MeshLibrary())
    assert hit is not None and hit.entity == int(ents[0]) and hit.distance == pytest.approx(2.5)
    quarter = (0.0, np.sin(np.pi / 4), 0.0, np.cos(np.pi / 4))  # 90 degrees about y
    world.insert(int(ents[0]), Rotation, quarter)  # long along z now: x 0.3 .. 1.3, a miss
    hit = pick(world, ray, (STANDARD,), MeshLibrary())
    assert hit is not None and hit.entity == int(ents[1])
    assert pick(world, ray, (STANDARD,), MeshLibrary(), max_distance=5.0) is None


def test_a_drag_ends_when_another_peer_deletes_the_grabbed_entity() -> None:
    """Before, the tool went on issuing set_transform at its stream rate (each signed,
    replicated and an undo step) for an entity no longer alive, until the trigger let go."""
    r = roster(2)
    a, b = make_peer(0, r), make_peer(1, r)
    nid = a.editor.create_entity({"px": 0.0, "py": 1.2, "pz": -2.0, "sx": 0.4, "sy": 0.4,
                                  "sz": 0.4})
    exchange(a, b)
    tool = HandEditor(a.editor, stream_hz=10.0)
    hmd = scripted_drag((0.0, 1.2, -2.0), 0.5)
    after: list[str] = []
    for i in range(37):
        if i == 15:
            assert tool.grabbing == nid
            b.editor.delete_entity(nid)
            exchange(a, b)
        kinds = [e.kind for e in tool.update(hmd.poll(i / 30))]
        a.editor.apply_changes()
        exchange(a, b)
        if i >= 15:
            after += kinds
    assert after == [SET_TOOL]  # the grab ended at once, as a release does
    assert tool.grabbing is None and tool.selected is None
    assert not a.editor.alive(nid) and a.fingerprint() == b.fingerprint()
