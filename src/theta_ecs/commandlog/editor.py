"""Built-in editor commands, their deterministic fold, and its projection into a World.

The world is a projection of the log: for every (entity, component) scope the fold of its
accepted entries gives one value, and :meth:`Editor.apply_changes` writes the values of the
scopes that changed into the World. Entities are named by net id (:data:`NetId`), never by
local entity id.

Undo/redo covers one's own structural and geometric commands (create, delete, set transform,
mesh edits) by issuing new commands (the inverse, or the original again); selection and tool
state are presence, not history, and are not undone.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..component import Component
from ..errors import StaleEntityError
from ..world import World
from .checkpoint import keep_last
from .components import (
    COMPONENTS,
    IDENTITY_TRANSFORM,
    TRANSFORM_FIELDS,
    MeshRef,
    NetId,
    Selection,
    ToolState,
    Transform,
)
from .conflicts import Resolution, Strategy
from .entry import Entry, EntryId, Scope
from .errors import CommandLogError, CommandPayloadError
from .log import Changes, CommandLog, CommandType
from .roles import Role

EXISTENCE = 0  # the scope component id of an entity's existence

CREATE = "theta.editor.create_entity"
DELETE = "theta.editor.delete_entity"
SET_TRANSFORM = "theta.editor.set_transform"
SELECT = "theta.editor.select"
SET_TOOL = "theta.editor.set_tool"
MESH_ADD_VERTEX = "theta.editor.mesh_add_vertex"
MESH_ADD_FACE = "theta.editor.mesh_add_face"
MESH_SET_ELEMENT = "theta.editor.mesh_set_element"

FLAG_MESH = 1
FLAG_RESTORE = 2  # re-create a deleted entity (undo of delete): allowed in any namespace

_CREATE = struct.Struct("<B")
_TRANSFORM = struct.Struct("<H10f")
_SELECT = struct.Struct("<BB")
_TOOL = struct.Struct("<If3f")
_VERTEX = struct.Struct("<3f")
_FACE = struct.Struct("<6Q")
_ELEMENT = struct.Struct("<BBQQ")
_FULL_MASK = (1 << len(TRANSFORM_FIELDS)) - 1


def net_namespace(author: int) -> int:
    return author & 0xFFFFFFFF


def make_net_id(author: int, counter: int) -> int:
    return (net_namespace(author) << 32) | counter


def presence_id(author: int) -> int:
    """The net id of an author's presence entity (where its tool state lives)."""
    return make_net_id(author, 0)


# --- validation: pure functions of the entry, run alike by every peer ----------------------
def _need(cond: bool, what: str) -> None:
    if not cond:
        raise CommandPayloadError(what)


def _unpack(fmt: struct.Struct, entry: Entry) -> tuple[object, ...]:
    _need(len(entry.payload) == fmt.size, f"{entry.kind}: payload must be {fmt.size} bytes")
    return fmt.unpack(entry.payload)


def _finite(values: tuple[object, ...]) -> bool:
    return all(math.isfinite(v) for v in values if isinstance(v, float))


def _check_create(e: Entry) -> None:
    _need(e.scope.component == EXISTENCE and not e.scope.field, "create: scope is the existence")
    (flags,) = _unpack(_CREATE, e)
    assert isinstance(flags, int)
    _need(flags & ~(FLAG_MESH | FLAG_RESTORE) == 0, "create: unknown flags")
    _need(e.scope.entity & 0xFFFFFFFF != 0, "create: counter 0 is the presence entity")
    if not flags & FLAG_RESTORE:
        _need(e.scope.entity >> 32 == net_namespace(e.author), "create: outside own namespace")


def _check_delete(e: Entry) -> None:
    _need(e.scope.component == EXISTENCE and not e.scope.field, "delete: scope is the existence")
    _need(not e.payload, "delete: no payload")
    _need(e.scope.entity & 0xFFFFFFFF != 0, "delete: the presence entity cannot be deleted")


def _check_transform(e: Entry) -> None:
    _need(e.scope.component == Transform.id, "set_transform: scope is Transform")
    values = _unpack(_TRANSFORM, e)
    mask = values[0]
    assert isinstance(mask, int)
    _need(0 < mask <= _FULL_MASK, "set_transform: empty or unknown field mask")
    _need(_finite(values[1:]), "set_transform: non-finite value")
    if e.scope.field:
        _need(e.scope.field in TRANSFORM_FIELDS, "set_transform: unknown scope field")
        _need(mask == 1 << TRANSFORM_FIELDS.index(e.scope.field), "set_transform: field != mask")


def _check_select(e: Entry) -> None:
    _need(e.scope.component == Selection.id and not e.scope.field, "select: scope is Selection")
    selected, _ = _unpack(_SELECT, e)
    _need(selected in (0, 1), "select: selected is 0 or 1")


def _check_tool(e: Entry) -> None:
    _need(e.scope.component == ToolState.id, "set_tool: scope is ToolState")
    _need(e.scope.entity == presence_id(e.author), "set_tool: only on one's own presence")
    _need(_finite(_unpack(_TOOL, e)), "set_tool: non-finite value")


def _check_mesh_scope(e: Entry) -> None:
    _need(e.scope.component == MeshRef.id and not e.scope.field, "mesh: scope is MeshRef")


def _check_vertex(e: Entry) -> None:
    _check_mesh_scope(e)
    _need(_finite(_unpack(_VERTEX, e)), "mesh_add_vertex: non-finite position")


def _check_face(e: Entry) -> None:
    _check_mesh_scope(e)
    ids = _unpack(_FACE, e)
    _need(all(ids), "mesh_add_face: vertex ids are non-zero")
    verts = {(ids[0], ids[1]), (ids[2], ids[3]), (ids[4], ids[5])}
    _need(len(verts) == 3, "mesh_add_face: three distinct vertices")


def _check_element(e: Entry) -> None:
    _check_mesh_scope(e)
    op, what, author, seq = _unpack(_ELEMENT, e)
    _need(op in (0, 1) and what in (0, 1), "mesh_set_element: op and element are 0 or 1")
    _need(bool(author) and bool(seq), "mesh_set_element: element id is non-zero")


# --- what a checkpoint keeps: exactly what the folds below read ----------------------------
def _retain_transform(entries: list[Entry]) -> list[Entry]:
    """The newest entries until every field has its latest writer (merge reads per field)."""
    kept: list[Entry] = []
    missing = _FULL_MASK
    for e in reversed(entries):
        mask = _TRANSFORM.unpack_from(e.payload)[0]
        if mask & missing:
            kept.append(e)
            missing &= ~mask
        if not missing:
            break
    return kept[::-1]


def _retain_element(entries: list[Entry]) -> list[Entry]:
    """The newest removal/restore of each mesh element."""
    last: dict[bytes, Entry] = {}
    for e in entries:
        last[e.payload[2:]] = e
    return sorted(last.values(), key=lambda e: e.key)


COMMAND_TYPES: tuple[CommandType, ...] = (
    CommandType(CREATE, Role.EDITOR, _check_create, keep_last),
    CommandType(DELETE, Role.EDITOR, _check_delete, keep_last),
    CommandType(SET_TRANSFORM, Role.EDITOR, _check_transform, _retain_transform),
    CommandType(SELECT, Role.VIEWER, _check_select, keep_last),
    CommandType(SET_TOOL, Role.VIEWER, _check_tool, keep_last),
    CommandType(MESH_ADD_VERTEX, Role.EDITOR, _check_vertex),
    CommandType(MESH_ADD_FACE, Role.EDITOR, _check_face),
    CommandType(MESH_SET_ELEMENT, Role.EDITOR, _check_element, _retain_element),
)


def register_commands(log: CommandLog) -> None:
    for ctype in COMMAND_TYPES:
        log.register(ctype)


# --- the fold ------------------------------------------------------------------------------
def _accepted(res: Resolution, *kinds: str) -> list[Entry]:
    """Accepted entries of the editor's own kinds (other command types may share a scope)."""
    return [e for e in res.accepted if e.kind in kinds]


def _newest(res: Resolution, *kinds: str) -> Iterator[Entry]:
    """Accepted entries of ``kinds``, newest first (folds that need the latest stop early, so a
    long history does not make every frame slower)."""
    return (e for e in reversed(res.accepted) if e.kind in kinds)


def fold_existence(res: Resolution) -> tuple[bool, int]:
    """(alive, flags): the last accepted create or delete wins."""
    last = next(_newest(res, CREATE, DELETE), None)
    if last is None or last.kind != CREATE:
        return False, 0
    return True, last.payload[0] & FLAG_MESH


def fold_transform(res: Resolution, strategy: Strategy) -> tuple[float, ...] | None:
    """Last-writer-wins and reject: the winner's full value. Merge: each field from the last
    accepted entry that set it (fields nobody set keep the identity)."""
    newest = _newest(res, SET_TRANSFORM)
    last = next(newest, None)
    if last is None:
        return None
    mask, *fields = _TRANSFORM.unpack(last.payload)
    if strategy is not Strategy.MERGE:
        return tuple(float(v) for v in fields)
    values: list[float | None] = [None] * len(TRANSFORM_FIELDS)
    missing = _FULL_MASK
    entry: Entry | None = last
    while entry is not None and missing:
        mask, *fields = _TRANSFORM.unpack(entry.payload)
        for i in range(len(fields)):
            if missing >> i & 1 and mask >> i & 1:
                values[i] = float(fields[i])
                missing &= ~(1 << i)
        entry = next(newest, None)
    return tuple(IDENTITY_TRANSFORM[i] if v is None else v for i, v in enumerate(values))


def fold_selection(res: Resolution) -> tuple[int, int] | None:
    last = next(_newest(res, SELECT), None)
    if last is None:
        return None
    selected, highlight = _SELECT.unpack(last.payload)
    return (last.author, highlight) if selected else None


def fold_tool(res: Resolution) -> tuple[int, float, float, float, float] | None:
    last = next(_newest(res, SET_TOOL), None)
    if last is None:
        return None
    tool, param, cx, cy, cz = _TOOL.unpack(last.payload)
    return (tool, param, cx, cy, cz)


@dataclass
class Mesh:
    """Geometry of one mesh: vertices in total order of their adding, faces as index triples."""

    vertices: npt.NDArray[np.float32]
    faces: npt.NDArray[np.uint32]
    vertex_ids: list[EntryId] = field(default_factory=list)
    face_ids: list[EntryId] = field(default_factory=list)


def fold_mesh(res: Resolution) -> Mesh:
    """Vertices and faces are elements named by the entry that added them; removal and restore
    are last-writer-wins per element; a face whose vertex is gone is not drawn."""
    verts: dict[EntryId, tuple[float, float, float]] = {}
    faces: dict[EntryId, tuple[EntryId, EntryId, EntryId]] = {}
    live: dict[EntryId, bool] = {}
    for e in _accepted(res, MESH_ADD_VERTEX, MESH_ADD_FACE, MESH_SET_ELEMENT):
        if e.kind == MESH_ADD_VERTEX:
            x, y, z = _VERTEX.unpack(e.payload)
            verts[e.id] = (x, y, z)
            live.setdefault(e.id, True)
        elif e.kind == MESH_ADD_FACE:
            a1, s1, a2, s2, a3, s3 = _FACE.unpack(e.payload)
            faces[e.id] = (EntryId(a1, s1), EntryId(a2, s2), EntryId(a3, s3))
            live.setdefault(e.id, True)
        elif e.kind == MESH_SET_ELEMENT:
            op, _, author, seq = _ELEMENT.unpack(e.payload)
            live[EntryId(author, seq)] = bool(op)
    vids = [v for v in verts if live[v]]
    index = {v: i for i, v in enumerate(vids)}
    fids = [f for f, vs in faces.items() if live[f] and all(v in index for v in vs)]
    return Mesh(
        np.array([verts[v] for v in vids], dtype=np.float32).reshape(-1, 3),
        np.array([[index[v] for v in faces[f]] for f in fids], dtype=np.uint32).reshape(-1, 3),
        vids,
        fids,
    )


class MeshStore:
    """Resource: mesh geometry by net id (variable-size, so not a component column)."""

    def __init__(self) -> None:
        self.meshes: dict[int, Mesh] = {}

    def get(self, net_id: int) -> Mesh | None:
        return self.meshes.get(net_id)


class NetIndex:
    """Resource: net id → local entity id, for this World only."""

    def __init__(self) -> None:
        self.local: dict[int, int] = {}

    def entity(self, net_id: int) -> int | None:
        return self.local.get(net_id)


# --- the editor ----------------------------------------------------------------------------
_Cmd = tuple[str, Scope, bytes]
#: A command built when it is issued, so undo and redo start from the state of that moment.
_Make = Callable[[], _Cmd]


def _const(cmd: _Cmd) -> _Make:
    return lambda: cmd


@dataclass
class _Action:
    forward: list[_Make]
    inverse: list[_Make]
    entries: list[EntryId] = field(default_factory=list)


class Editor:
    """Issues editor commands into a log and projects the log's outcome into a World."""

    def __init__(self, world: World, log: CommandLog, *, history: int = 256) -> None:
        self.world = world
        self.log = log
        register_commands(log)
        world.register(*COMPONENTS)
        self.meshes = MeshStore()
        self.index = NetIndex()
        world.insert_resource(self.meshes)
        world.insert_resource(self.index)
        self._counter = 0
        self._undo: list[_Action] = []
        self._redo: list[_Action] = []
        self._history = history
        self.rejections: list[Entry] = []  # own commands refused by a conflict

    # -- reading the folded state -----------------------------------------------------------
    def entity(self, net_id: int) -> int | None:
        """The local entity of ``net_id`` (after :meth:`apply_changes`)."""
        return self.index.local.get(net_id)

    def local_entity(self, net_id: int) -> int:
        """Like :meth:`entity`, but raises StaleEntityError when the net id has no entity here."""
        local = self.index.local.get(net_id)
        if local is None:
            raise StaleEntityError(f"net id {net_id:#x} has no entity in this world")
        return local

    def alive(self, net_id: int) -> bool:
        return fold_existence(self.log.resolution((net_id, EXISTENCE)))[0]

    def transform(self, net_id: int) -> dict[str, float]:
        scope = Scope(net_id, Transform.id)
        value = fold_transform(self.log.resolution(scope.group), self.log.strategy(scope))
        return dict(zip(TRANSFORM_FIELDS, value or IDENTITY_TRANSFORM))

    # -- commands ---------------------------------------------------------------------------
    def _issue(self, cmds: list[_Cmd]) -> list[Entry]:
        return [self.log.append(kind, scope, payload) for kind, scope, payload in cmds]

    def _issue_made(self, makes: list[_Make]) -> list[Entry]:
        return self._issue([make() for make in makes])

    def _record(self, action: _Action, entries: list[Entry]) -> None:
        action.entries = [e.id for e in entries]
        self._undo.append(action)
        del self._undo[: -self._history]
        self._redo.clear()

    def create_entity(
        self, transform: Mapping[str, float] | None = None, *, mesh: bool = False
    ) -> int:
        """A new entity in this author's namespace; returns its net id."""
        author = self.log.author
        self._counter += 1
        while self.log.resolution((make_net_id(author, self._counter), EXISTENCE)).accepted:
            self._counter += 1  # after a restart: skip ids already used
        if self._counter > 0xFFFFFFFF:
            raise CommandLogError("this author's net-id namespace is exhausted")
        net_id = make_net_id(author, self._counter)
        flags = FLAG_MESH if mesh else 0
        first: list[_Cmd] = [(CREATE, Scope(net_id, EXISTENCE), _CREATE.pack(flags))]
        if transform:
            first.append(self._transform_cmd(net_id, transform))
        entries = self._issue(first)
        # redo re-creates the same net id (its transform registers were never lost)
        redo = (CREATE, Scope(net_id, EXISTENCE), _CREATE.pack(flags | FLAG_RESTORE))
        undo = (DELETE, Scope(net_id, EXISTENCE), b"")
        self._record(_Action([_const(redo)], [_const(undo)]), entries)
        return net_id

    def delete_entity(self, net_id: int) -> None:
        alive, flags = fold_existence(self.log.resolution((net_id, EXISTENCE)))
        if not alive:
            raise CommandPayloadError(f"entity {net_id:#x} is not alive")
        delete = (DELETE, Scope(net_id, EXISTENCE), b"")
        restore = (CREATE, Scope(net_id, EXISTENCE), _CREATE.pack(flags | FLAG_RESTORE))
        self._record(_Action([_const(delete)], [_const(restore)]), self._issue([delete]))

    def _transform_cmd(self, net_id: int, values: Mapping[str, float]) -> _Cmd:
        unknown = set(values) - set(TRANSFORM_FIELDS)
        if unknown:
            raise CommandPayloadError(f"unknown transform fields {sorted(unknown)}")
        current = self.transform(net_id)
        mask = 0
        for i, name in enumerate(TRANSFORM_FIELDS):
            if name in values:
                mask |= 1 << i
                current[name] = float(values[name])
        if not all(math.isfinite(v) for v in current.values()):
            raise CommandPayloadError("transform values must be finite")
        only = [n for n in TRANSFORM_FIELDS if n in values]
        scope = Scope(net_id, Transform.id, only[0] if len(only) == 1 else "")
        payload = _TRANSFORM.pack(mask, *(current[n] for n in TRANSFORM_FIELDS))
        return (SET_TRANSFORM, scope, payload)

    def set_transform(self, net_id: int, **values: float) -> Entry:
        """Set some transform fields: ``editor.set_transform(nid, px=1.0, py=2.0)``."""
        if not values:
            raise CommandPayloadError("set_transform needs at least one field")
        after = dict(values)
        cmd = self._transform_cmd(net_id, after)  # checks names and values
        current = self.transform(net_id)
        before = {k: current[k] for k in values}
        (entry,) = self._issue([cmd])
        # undo and redo touch only the fields this command set, on top of the state they meet
        self._record(
            _Action(
                [lambda: self._transform_cmd(net_id, after)],
                [lambda: self._transform_cmd(net_id, before)],
            ),
            [entry],
        )
        return entry

    def select(self, net_id: int, selected: bool = True, highlight: int = 1) -> Entry:
        if not 0 <= highlight <= 255:
            raise CommandPayloadError("highlight is 0..255")
        payload = _SELECT.pack(int(selected), highlight)
        return self.log.append(SELECT, Scope(net_id, Selection.id), payload)

    def set_tool(
        self, tool: int, param: float = 0.0, cursor: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ) -> Entry:
        if not 0 <= tool <= 0xFFFFFFFF:
            raise CommandPayloadError("tool is a 32-bit unsigned id")
        if not all(math.isfinite(v) for v in (param, *cursor)):
            raise CommandPayloadError("tool parameter and cursor must be finite")
        payload = _TOOL.pack(tool, param, *cursor)
        return self.log.append(SET_TOOL, Scope(presence_id(self.log.author), ToolState.id), payload)

    def mesh_add_vertex(self, net_id: int, position: tuple[float, float, float]) -> EntryId:
        """Add a vertex; returns its id (the id of the entry that added it)."""
        if not all(math.isfinite(v) for v in position):
            raise CommandPayloadError("vertex position must be finite")
        scope = Scope(net_id, MeshRef.id)
        (entry,) = self._issue([(MESH_ADD_VERTEX, scope, _VERTEX.pack(*position))])
        self._record(self._element_action(scope, 0, entry.id), [entry])
        return entry.id

    def mesh_add_face(self, net_id: int, a: EntryId, b: EntryId, c: EntryId) -> EntryId:
        """Add a triangle over three vertex ids; returns the face's id."""
        scope = Scope(net_id, MeshRef.id)
        (entry,) = self._issue([(MESH_ADD_FACE, scope, _FACE.pack(*a, *b, *c))])
        self._record(self._element_action(scope, 1, entry.id), [entry])
        return entry.id

    @staticmethod
    def _element_action(scope: Scope, what: int, eid: EntryId) -> _Action:
        return _Action(
            [_const((MESH_SET_ELEMENT, scope, _ELEMENT.pack(1, what, *eid)))],
            [_const((MESH_SET_ELEMENT, scope, _ELEMENT.pack(0, what, *eid)))],
        )

    # -- undo / redo ------------------------------------------------------------------------
    def _refused(self, action: _Action) -> bool:
        """Whether every entry of the action was refused by a conflict (nothing to undo)."""
        for eid in action.entries:
            entry = self.log.get(eid)
            if entry is None:
                return False
            res = self.log.resolution(entry.scope.group)
            if entry not in res.rejected and entry not in res.denied:
                return False
        return bool(action.entries)

    def undo(self) -> bool:
        """Undo this author's latest action (by issuing its inverse); False if none is left."""
        while self._undo:
            action = self._undo.pop()
            if self._refused(action):
                continue
            action.entries = [e.id for e in self._issue_made(action.inverse)]
            self._redo.append(action)
            return True
        return False

    def redo(self) -> bool:
        if not self._redo:
            return False
        action = self._redo.pop()
        action.entries = [e.id for e in self._issue_made(action.forward)]
        self._undo.append(action)
        return True

    # -- projection into the World --------------------------------------------------------
    def apply_changes(self) -> Changes:
        """Write every changed scope's folded value into the World; call at a stage boundary."""
        changes = self.log.drain_changes()
        for net_id in sorted({g[0] for g in changes.groups}):
            self._project(net_id)
        for rej in changes.rejections:
            self.world.events.send(rej)
            if rej.entry.author == changes.own_author:
                self.rejections.append(rej.entry)
        return changes

    def _project(self, net_id: int) -> None:
        log = self.log
        presence = net_id & 0xFFFFFFFF == 0
        want: dict[Component, object] = {}
        tool = fold_tool(log.resolution((net_id, ToolState.id))) if presence else None
        if presence:
            alive, flags = tool is not None, 0
        else:
            alive, flags = fold_existence(log.resolution((net_id, EXISTENCE)))
        local = self.index.local.get(net_id)
        if local is not None and not self.world.is_alive(local):
            # someone despawned it behind the log's back: the log's state wins, re-create it
            del self.index.local[net_id]
            local = None
            self.world.telemetry.count("editor_respawns")
        if not alive:
            if local is not None:
                self.world.despawn(local)
                del self.index.local[net_id]
            self.meshes.meshes.pop(net_id, None)
            return
        if presence:
            want[ToolState] = tool
        else:
            scope = Scope(net_id, Transform.id)
            value = fold_transform(log.resolution(scope.group), log.strategy(scope))
            want[Transform] = value or IDENTITY_TRANSFORM
        sel = fold_selection(log.resolution((net_id, Selection.id)))
        if sel is not None:
            want[Selection] = sel
        if flags & FLAG_MESH:
            mesh = fold_mesh(log.resolution((net_id, MeshRef.id)))
            self.meshes.meshes[net_id] = mesh
            want[MeshRef] = (len(mesh.vertices), len(mesh.faces))
        else:
            self.meshes.meshes.pop(net_id, None)
        world = self.world
        if local is None:
            local = world.spawn({NetId: net_id})
            self.index.local[net_id] = local
        for comp in world.components_of(local):
            if comp in COMPONENTS and comp is not NetId and comp not in want:
                world.remove(local, comp)
        for comp, wanted in want.items():
            world.insert(local, comp, wanted)

    def digest(self) -> str:
        """SHA-256 of the projected editor state (net ids, component values, meshes): equal on
        every peer that integrated the same entries, whatever their local entity ids."""
        h = hashlib.sha256()
        for net_id in sorted(self.index.local):
            local = self.index.local[net_id]
            h.update(struct.pack("<Q", net_id))
            for comp in sorted(self.world.components_of(local), key=lambda c: c.id):
                if comp in COMPONENTS:
                    h.update(struct.pack("<Q", comp.id))
                    h.update(np.asarray(self.world.get(local, comp)).tobytes())
            mesh = self.meshes.get(net_id)
            if mesh is not None:
                h.update(mesh.vertices.tobytes())
                h.update(mesh.faces.tobytes())
        return h.hexdigest()
