"""From ECS columns to instance streams: what changed since the last frame, one batch per archetype.

:class:`InstanceSet` follows every archetype that a binding's position column matches. Each
frame, :meth:`InstanceSet.sync` compares the archetype's change ticks (and its entity column, since
a despawn moves the last row into the hole) with what it last handed out, and yields, per
archetype and stream, one contiguous span of rows to upload: views of the columns, no per-entity
Python and no copies beyond what a GPU upload needs. Streams a binding has no column for are filled
with its defaults when the archetype's buffers are (re)allocated.

Frustum culling is vectorized over the columns (:meth:`InstanceSet.cull`): one matrix product of
the bounding spheres' centres with every eye's planes; the result is a per-instance visibility byte
the vertex shader reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from theta_ecs.archetype import Archetype
from theta_ecs.world import World

from .binding import Binding
from .math3d import spheres_visible
from .meshes import MeshLibrary

#: Streams of a slot, with their width in bytes per instance.
STREAM_BYTES = {"transform": 40, "pos": 12, "rot": 16, "scale": 12, "color": 4, "mesh": 2,
                "visible": 1}

Array = npt.NDArray[np.generic]


#: Changed rows further apart than this are sent as separate writes; nearer ones are merged
#: (re-sending a few thousand unchanged rows costs less than another buffer call).
SPLIT_GAP = 4096
MAX_SPANS = 32


def spans(rows: npt.NDArray[np.intp]) -> list[tuple[int, int]]:
    """Sorted changed ``rows`` as half-open spans to upload: split where rows are more than
    :data:`SPLIT_GAP` apart, at most :data:`MAX_SPANS` (else one span over all)."""
    if not len(rows):
        return []
    cuts = np.flatnonzero(np.diff(rows) > SPLIT_GAP)
    if len(cuts) >= MAX_SPANS:
        return [(int(rows[0]), int(rows[-1]) + 1)]
    starts = np.concatenate(([0], cuts + 1))
    ends = np.concatenate((cuts, [len(rows) - 1]))
    return [(int(rows[a]), int(rows[b]) + 1) for a, b in zip(starts, ends)]


@dataclass
class Write:
    """Rows ``first`` .. ``first + len(data)`` of one stream."""

    stream: str
    first: int
    data: Array


@dataclass
class Slot:
    """One archetype seen through one binding: the GPU mirror's book-keeping."""

    key: tuple[int, int]
    arch: Archetype
    binding: Binding
    capacity: int = 0  # rows allocated on the GPU
    count: int = 0  # rows in use
    entities: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    meshes: tuple[int, ...] = ()  # mesh handles present
    radius: npt.NDArray[np.float32] | None = None  # bounding radius per row (culling)
    mirrored: bool = False  # some row's scale has a negative determinant (winding turned)
    visible: npt.NDArray[np.uint8] | None = None
    visible_count: int = 0
    unknown_mesh: int = 0  # rows whose mesh handle is not in the library (not drawn)
    gpu: object = None  # the renderer's buffers and vertex arrays

    def streams(self) -> tuple[str, ...]:
        if self.binding.packed:
            return ("transform", "color", "mesh", "visible")
        return ("pos", "rot", "scale", "color", "mesh", "visible")


@dataclass
class Update:
    slot: Slot
    realloc: bool
    writes: list[Write]


class InstanceSet:
    """Every archetype that ``bindings`` match in ``world``, kept in step by change ticks."""

    def __init__(self, world: World, bindings: Sequence[Binding], meshes: MeshLibrary,
                 *, cull: bool = True) -> None:
        self.world = world
        self.bindings = tuple(bindings)
        self.meshes = meshes
        self.cull_enabled = cull
        world.register(*(c for b in self.bindings for c in b.components()))
        self._queries = [world.query(*b.required) for b in self.bindings]
        self.slots: dict[tuple[int, int], Slot] = {}
        self._since = 0  # changes after this change tick are new to us
        self.rows_uploaded = 0  # telemetry: rows written by the latest sync
        self.bytes_uploaded = 0

    def __iter__(self) -> Iterator[Slot]:
        return iter(self.slots.values())

    @property
    def count(self) -> int:
        return sum(s.count for s in self.slots.values())

    def sync(self) -> list[Update]:
        """What to upload so the GPU mirror equals the columns now."""
        now = self.world.advance_change_tick()  # later writes get a newer tick than ``since``
        since = self._since
        updates: list[Update] = []
        rows = nbytes = 0
        for bi, (binding, query) in enumerate(zip(self.bindings, self._queries)):
            for arch in query.archetypes():
                key = (bi, arch.id)
                slot = self.slots.get(key)
                if slot is None:
                    slot = self.slots[key] = Slot(key, arch, binding)
                upd = self._sync_slot(slot, since)
                if upd is not None:
                    updates.append(upd)
                    for w in upd.writes:
                        rows += len(w.data)
                        nbytes += w.data.nbytes
        self._since = now - 1
        self.rows_uploaded, self.bytes_uploaded = rows, nbytes
        return updates

    def _sync_slot(self, slot: Slot, since: int) -> Update | None:
        arch, b = slot.arch, slot.binding
        n = arch.count
        ents = arch.entities[:n]
        realloc = n > slot.capacity
        if realloc:
            slot.capacity = -(-max(n, 2 * slot.capacity, 64) // 4) * 4  # whole 32-bit words
            slot.visible = None  # fresh buffers: the next cull writes every byte
        old = slot.entities
        m = min(n, len(old))
        moved = ents[:m] != old[:m]  # rows that now hold another entity
        if n == slot.count and not moved.any() and not realloc and not self._any_changed(
            slot, since
        ):
            return None
        fresh = np.zeros(n, np.bool_)
        fresh[m:] = True
        fresh[:m] = moved
        writes: list[Write] = []

        def span(stream: str, data: Array | None, cid: int | None, default: Array) -> None:
            if data is None:  # no column: defaults, written once per allocation
                if realloc or slot.count == 0:
                    writes.append(Write(stream, 0, np.ascontiguousarray(
                        np.broadcast_to(default, (slot.capacity, *default.shape)))))
                return
            if realloc or cid is None or arch.column_ticks[cid] > since:
                if n:  # the whole column (a system had it writable): no per-row scan
                    writes.append(Write(stream, 0, data[:n]))
                return
            hit = np.flatnonzero(fresh | (arch.row_ticks[cid][:n] > since))
            for lo, hi in spans(hit):
                writes.append(Write(stream, lo, data[lo:hi]))

        pos_id = b.position.id
        if b.packed:
            span("transform", arch.columns[pos_id][:n], pos_id, np.zeros(0, np.float32))
        else:
            span("pos", b.positions(arch), pos_id, np.zeros(3, np.float32))
            span("rot", b.rotations(arch), b.rotation.id if b.rotation else None,
                 np.array([0, 0, 0, 1], np.float32))
            span("scale", b.scales(arch), b.scale.id if b.scale else None,
                 np.ones(3, np.float32))
        span("color", b.colors(arch), b.color.id if b.color else None,
             np.array(b.default_color, np.uint8))
        handles = b.mesh_handles(arch)
        span("mesh", handles, b.mesh.id if b.mesh else None,
             np.array(b.default_mesh, np.uint16))
        touched = {w.stream for w in writes}
        known = len(self.meshes)
        if handles is None:
            drawable = b.default_mesh < known
            slot.meshes = (b.default_mesh,) if n and drawable else ()
            slot.unknown_mesh = 0 if drawable else n
        elif "mesh" in touched or n != slot.count:
            present = np.unique(handles)
            slot.meshes = tuple(int(h) for h in present if h < known)
            # not drawn and not pickable: counted, so a bad handle is seen, not just missing
            slot.unknown_mesh = int(np.count_nonzero(handles >= known))
        if touched & {"transform", "scale"} or slot.radius is None or n != slot.count or realloc:
            slot.radius = self._radii(slot)
            scales = b.scales(arch)
            slot.mirrored = scales is not None and bool(
                (np.signbit(scales).sum(axis=1) % 2 == 1).any())
        if not self.cull_enabled and (realloc or n != slot.count):
            slot.visible = np.ones(slot.capacity, np.uint8)
            writes.append(Write("visible", 0, slot.visible))
        slot.count = n
        slot.entities = ents.copy()
        return Update(slot, realloc, writes)

    def _any_changed(self, slot: Slot, since: int) -> bool:
        arch = slot.arch
        for comp in slot.binding.components():
            cid = comp.id
            if cid not in arch.columns:
                continue
            if arch.column_ticks[cid] > since:
                return True
            if arch.count and int(arch.row_ticks[cid][: arch.count].max()) > since:
                return True
        return False

    def _radii(self, slot: Slot) -> npt.NDArray[np.float32]:
        scales = slot.binding.scales(slot.arch)
        r = np.float32(self.meshes.max_radius)
        if scales is None:
            return np.full(slot.arch.count, r, np.float32)
        return np.asarray(np.abs(scales).max(axis=1) * r, np.float32)

    def cull(self, planes: npt.ArrayLike) -> list[tuple[Slot, Write]]:
        """Visibility bytes for every slot against the eyes' frusta (k, 6, 4): writes for the
        ``visible`` stream. With culling off, everything stays visible."""
        writes: list[tuple[Slot, Write]] = []
        for slot in self.slots.values():
            n = slot.count
            if not n:
                slot.visible_count = 0
                continue
            if not self.cull_enabled:
                slot.visible_count = n
                continue
            centers = slot.binding.positions(slot.arch)
            assert slot.radius is not None
            vis = spheres_visible(planes, centers, slot.radius).view(np.uint8)
            slot.visible_count = int(np.count_nonzero(vis))
            if slot.visible is not None and len(slot.visible) >= n and np.array_equal(
                slot.visible[:n], vis
            ):
                continue
            slot.visible = vis
            writes.append((slot, Write("visible", 0, vis)))
        return writes
