"""Components the editor commands write. The command log replicates them (not snapshots)."""

from __future__ import annotations

import numpy as np

from ..component import Component

NetId = Component(
    "theta.editor.NetId",
    np.uint64,
    replicated=False,
    doc="Session-wide entity id: author namespace (high 32 bits) | counter. Local ids differ "
    "per peer; commands name entities by this.",
)

TRANSFORM_FIELDS = ("px", "py", "pz", "rx", "ry", "rz", "rw", "sx", "sy", "sz")
Transform = Component(
    "theta.editor.Transform",
    np.dtype([(f, "<f4") for f in TRANSFORM_FIELDS]),
    replicated=False,
    doc="Position, rotation quaternion (x, y, z, w) and scale set by editor commands.",
)
IDENTITY_TRANSFORM = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)

Selection = Component(
    "theta.editor.Selection",
    np.dtype([("author", "<u8"), ("highlight", "u1")]),
    replicated=False,
    doc="Who selected the entity last (author id) and its highlight style (0: none).",
)

ToolState = Component(
    "theta.editor.ToolState",
    np.dtype([("tool", "<u4"), ("param", "<f4"), ("cx", "<f4"), ("cy", "<f4"), ("cz", "<f4")]),
    replicated=False,
    doc="An author's current tool, its parameter and 3D cursor, on the author's presence entity.",
)

MeshRef = Component(
    "theta.editor.MeshRef",
    np.dtype([("vertices", "<u4"), ("faces", "<u4")]),
    replicated=False,
    doc="Marks an entity with editable mesh geometry; the geometry lives in the MeshStore "
    "resource under the entity's net id (components are fixed-size).",
)

COMPONENTS: tuple[Component, ...] = (NetId, Transform, Selection, ToolState, MeshRef)
