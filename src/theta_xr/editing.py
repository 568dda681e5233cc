"""VR editing: a hand's ray selects, its grip drags, and every edit is an editor command.

The tool never writes the World itself: selection, tool state and transforms go through the
command log's :class:`~theta_ecs.commandlog.Editor`, so they are signed, replicated, ordered
and undoable like any other command, and the World is the log's projection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from theta_ecs.commandlog import Editor, Entry, NetId
from theta_ecs.interfaces import InputFrame, Pose

from .binding import Binding, scene_binding
from .math3d import matrix_to_quat, pose_matrix
from .meshes import MeshLibrary
from .picking import Hit, Ray, pick

TOOL_NONE, TOOL_POINT, TOOL_GRAB = 0, 1, 2


@dataclass
class _Grab:
    net_id: int
    offset: np.ndarray  # the entity's pose in the hand's frame, at the grab
    scale: tuple[float, float, float]
    last_sent: float
    last_pose: tuple[float, ...]
    moved: bool = False


class HandEditor:
    """Turns one hand's input into editor commands.

    Press ``button`` (default the hand's trigger) with the ray on an entity: it is selected and
    grabbed; while held it follows the hand rigidly; on release its final transform is set.
    ``stream_hz`` > 0 also sends intermediate transforms at that rate so other peers watch the
    drag live (each is its own undo step); 0 sends one transform per grab (one undo step).
    """

    def __init__(
        self,
        editor: Editor,
        *,
        hand: str = "right",
        button: str | None = None,
        bindings: Sequence[Binding] | None = None,
        meshes: MeshLibrary | None = None,
        max_distance: float = 50.0,
        stream_hz: float = 0.0,
        min_move: float = 1e-4,
    ) -> None:
        self.editor = editor
        self.hand = hand
        self.button = button or f"{hand}/trigger"
        self.bindings = tuple(bindings) if bindings is not None else (scene_binding("editor"),)
        self.meshes = meshes or MeshLibrary()
        self.max_distance = max_distance
        self.stream_hz = stream_hz
        self.min_move = min_move
        self.selected: int | None = None
        self.hover: Hit | None = None
        self._grab: _Grab | None = None
        self._was_down = False

    @property
    def grabbing(self) -> int | None:
        return self._grab.net_id if self._grab else None

    def _hand_pose(self, frame: InputFrame) -> Pose | None:
        return frame.hands.get(self.hand)

    def update(self, frame: InputFrame) -> list[Entry]:
        """Feed one input frame; returns the commands issued for it."""
        issued: list[Entry] = []
        pose = self._hand_pose(frame)
        down = bool(frame.buttons.get(self.button, False))
        pressed, released = down and not self._was_down, self._was_down and not down
        self._was_down = down
        if self._grab is not None and not self.editor.alive(self._grab.net_id):
            # deleted under the hand (by another peer, or undone): the drag ends, no more
            # transforms for an entity that is gone
            issued += self._release(frame.time)
            self.selected = None
        if pose is None:  # hand lost: a drag ends where it was
            if self._grab is not None:
                issued += self._release(frame.time)
            return issued
        ray = Ray.from_pose(pose)
        world = self.editor.world
        self.hover = pick(world, ray, self.bindings, self.meshes, max_distance=self.max_distance)
        if pressed and self.hover is not None and world.has(self.hover.entity, NetId):
            issued += self._start(self.hover, pose, frame.time)
        elif self._grab is not None and down:
            issued += self._drag(pose, frame.time)
        elif released and self._grab is not None:
            issued += self._drag(pose, frame.time, final=True)
            issued += self._release(frame.time)
        return issued

    def _start(self, hit: Hit, hand: Pose, now: float) -> list[Entry]:
        ed = self.editor
        net_id = int(ed.world.get(hit.entity, NetId))
        out: list[Entry] = []
        if self.selected is not None and self.selected != net_id and ed.alive(self.selected):
            out.append(ed.select(self.selected, selected=False))
        out.append(ed.select(net_id))
        self.selected = net_id
        out.append(ed.set_tool(TOOL_GRAB, 0.0, hit.point))
        t = ed.transform(net_id)
        entity_m = pose_matrix((t["px"], t["py"], t["pz"]), (t["rx"], t["ry"], t["rz"], t["rw"]))
        hand_m = pose_matrix(hand.position, hand.orientation)
        self._grab = _Grab(net_id, np.linalg.inv(hand_m) @ entity_m, (t["sx"], t["sy"], t["sz"]),
                           now, self._pose_of(entity_m))
        return out

    @staticmethod
    def _pose_of(m: np.ndarray) -> tuple[float, ...]:
        q = matrix_to_quat(m[:3, :3])
        return (float(m[0, 3]), float(m[1, 3]), float(m[2, 3]), *q)

    def _drag(self, hand: Pose, now: float, final: bool = False) -> list[Entry]:
        g = self._grab
        assert g is not None
        target = pose_matrix(hand.position, hand.orientation) @ g.offset
        pose = self._pose_of(target)
        moved = max(abs(a - b) for a, b in zip(pose, g.last_pose)) > self.min_move
        if moved:
            g.moved = True
        due = self.stream_hz > 0 and now - g.last_sent >= 1.0 / self.stream_hz
        if not (final and g.moved) and not (moved and due):
            return []
        # renormalise: matrix_to_quat of a rigid product is unit up to rounding
        q = np.array(pose[3:])
        q /= np.linalg.norm(q)
        px, py, pz = pose[:3]
        values = dict(px=px, py=py, pz=pz, rx=q[0], ry=q[1], rz=q[2], rw=q[3])
        if not all(math.isfinite(v) for v in values.values()):
            return []
        g.last_sent, g.last_pose, g.moved = now, pose, False
        return [self.editor.set_transform(g.net_id, **{k: float(v) for k, v in values.items()})]

    def _release(self, now: float) -> list[Entry]:
        self._grab = None
        return [self.editor.set_tool(TOOL_POINT)]

