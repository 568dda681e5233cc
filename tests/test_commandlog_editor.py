"""Editor commands mutate the world on every peer; undo/redo of one's own commands."""

from __future__ import annotations

import numpy as np
import pytest

from theta_ecs.commandlog import (
    CommandPayloadError,
    MeshRef,
    NetId,
    Selection,
    ToolState,
    Transform,
    presence_id,
)

from .test_commandlog_support import Peer, exchange, make_peer, roster


def pair() -> tuple[Peer, Peer]:
    r = roster(2)
    return make_peer(0, r), make_peer(1, r)


def test_create_set_delete_reach_the_other_world() -> None:
    a, b = pair()
    nid = a.editor.create_entity({"px": 1.0, "rw": 1.0, "sy": 2.0})
    exchange(a, b)
    ent = b.editor.entity(nid)
    assert ent is not None and b.world.get(ent, NetId) == nid
    t = b.world.get(ent, Transform)
    assert (float(t["px"]), float(t["sy"]), float(t["sx"])) == (1.0, 2.0, 1.0)
    b.editor.set_transform(nid, pz=-3.5)
    exchange(a, b)
    assert a.world.get(a.editor.local_entity(nid), Transform)["pz"] == -3.5
    b.editor.delete_entity(nid)
    exchange(a, b)
    assert a.editor.entity(nid) is None and a.world.entity_count == 0
    assert a.fingerprint() == b.fingerprint()


def test_local_entity_ids_differ_but_worlds_match() -> None:
    a, b = pair()
    b.world.spawn({})  # shifts b's local ids
    nid = a.editor.create_entity()
    exchange(a, b)
    assert a.editor.entity(nid) != b.editor.entity(nid)
    assert a.editor.digest() == b.editor.digest()


def test_select_and_tool_state() -> None:
    a, b = pair()
    nid = a.editor.create_entity()
    exchange(a, b)
    b.editor.select(nid, highlight=3)
    b.editor.set_tool(7, 0.25, (1.0, 2.0, 3.0))
    exchange(a, b)
    sel = a.world.get(a.editor.local_entity(nid), Selection)
    assert (int(sel["author"]), int(sel["highlight"])) == (b.log.author, 3)
    presence = a.editor.entity(presence_id(b.log.author))
    assert presence is not None
    tool = a.world.get(presence, ToolState)
    assert (int(tool["tool"]), float(tool["param"]), float(tool["cz"])) == (7, 0.25, 3.0)
    b.editor.select(nid, selected=False)
    exchange(a, b)
    assert not a.world.has(a.editor.local_entity(nid), Selection)


def test_mesh_vertices_and_faces_from_two_authors() -> None:
    a, b = pair()
    nid = a.editor.create_entity(mesh=True)
    exchange(a, b)
    v1 = a.editor.mesh_add_vertex(nid, (0.0, 0.0, 0.0))
    v2 = b.editor.mesh_add_vertex(nid, (1.0, 0.0, 0.0))  # concurrent: merged, not lost
    exchange(a, b)
    v3 = b.editor.mesh_add_vertex(nid, (0.0, 1.0, 0.0))
    b.editor.mesh_add_face(nid, v1, v2, v3)
    exchange(a, b)
    for p in (a, b):
        mesh = p.editor.meshes.get(nid)
        assert mesh is not None and mesh.vertices.shape == (3, 3) and mesh.faces.shape == (1, 3)
        assert sorted(map(tuple, mesh.vertices.tolist())) == [(0, 0, 0), (0, 1, 0), (1, 0, 0)]
        ref = p.world.get(p.editor.local_entity(nid), MeshRef)
        assert (int(ref["vertices"]), int(ref["faces"])) == (3, 1)
    assert a.fingerprint() == b.fingerprint()
    a_mesh = a.editor.meshes.get(nid)
    assert a_mesh is not None
    # face indices point at the right positions
    pos = a_mesh.vertices[a_mesh.faces[0]]
    assert np.array_equal(pos, np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32))


def test_undo_redo_of_own_commands() -> None:
    a, b = pair()
    nid = a.editor.create_entity({"px": 1.0})
    a.editor.set_transform(nid, px=5.0)
    exchange(a, b)
    assert a.editor.undo()  # the set
    exchange(a, b)
    assert b.editor.transform(nid)["px"] == 1.0
    assert a.editor.redo()
    exchange(a, b)
    assert b.editor.transform(nid)["px"] == 5.0
    assert a.editor.undo() and a.editor.undo()  # the set, then the create
    exchange(a, b)
    assert b.editor.entity(nid) is None
    assert a.editor.redo()  # the entity comes back with its last transform registers
    exchange(a, b)
    ent = b.editor.entity(nid)
    assert ent is not None and b.world.get(ent, Transform)["px"] == 1.0
    assert not b.editor.undo()  # b has done nothing of its own
    assert a.fingerprint() == b.fingerprint()


def test_undo_delete_and_mesh_edits() -> None:
    a, b = pair()
    nid = a.editor.create_entity(mesh=True)
    exchange(a, b)
    b.editor.delete_entity(nid)  # deleting someone else's entity ...
    exchange(a, b)
    assert a.editor.entity(nid) is None
    b.editor.undo()  # ... and undoing it restores it, mesh flag included
    exchange(a, b)
    assert a.world.has(a.editor.local_entity(nid), MeshRef)
    v = [a.editor.mesh_add_vertex(nid, (float(i), 0.0, 0.0)) for i in range(3)]
    a.editor.mesh_add_face(nid, *v)
    exchange(a, b)
    a.editor.undo()  # the face
    a.editor.undo()  # the third vertex
    exchange(a, b)
    mesh = b.editor.meshes.get(nid)
    assert mesh is not None and len(mesh.vertices) == 2 and len(mesh.faces) == 0
    a.editor.redo()
    a.editor.redo()
    exchange(a, b)
    mesh = b.editor.meshes.get(nid)
    assert mesh is not None and len(mesh.vertices) == 3 and len(mesh.faces) == 1


def test_new_action_clears_redo() -> None:
    a, _ = pair()
    nid = a.editor.create_entity()
    a.editor.set_transform(nid, px=1.0)
    a.editor.undo()
    a.editor.set_transform(nid, py=1.0)
    assert not a.editor.redo()


def test_bad_local_commands_raise_typed_errors() -> None:
    a, _ = pair()
    nid = a.editor.create_entity()
    with pytest.raises(CommandPayloadError):
        a.editor.set_transform(nid, bogus=1.0)
    with pytest.raises(CommandPayloadError):
        a.editor.set_transform(nid, px=float("nan"))
    with pytest.raises(CommandPayloadError):
        a.editor.set_transform(nid)
    with pytest.raises(CommandPayloadError):
        a.editor.delete_entity(nid + 1)  # never created
    with pytest.raises(CommandPayloadError):
        a.editor.mesh_add_vertex(nid, (float("inf"), 0.0, 0.0))


def test_an_entity_despawned_behind_the_logs_back_is_restored_on_projection() -> None:
    a, b = pair()
    nid = a.editor.create_entity({"px": 4.0})
    exchange(a, b)
    b.world.despawn(b.editor.local_entity(nid))
    a.editor.set_transform(nid, py=1.0)
    exchange(a, b)
    assert b.world.get(b.editor.local_entity(nid), Transform)["px"] == 4.0
    assert b.world.telemetry.counters["editor_respawns"] == 1
    assert a.fingerprint() == b.fingerprint()


def test_undo_restores_only_the_fields_it_set() -> None:
    a, b = pair()
    nid = a.editor.create_entity({"px": 1.0, "py": 1.0})
    exchange(a, b)
    a.editor.set_transform(nid, px=5.0)
    exchange(a, b)
    b.editor.set_transform(nid, py=7.0)  # someone else edits another field meanwhile
    exchange(a, b)
    a.editor.undo()
    exchange(a, b)
    t = b.editor.transform(nid)
    assert (t["px"], t["py"]) == (1.0, 7.0)  # a's undo did not roll back b's edit
