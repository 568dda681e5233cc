"""The mesh library: built-in cube, sphere and plane, and meshes loaded from files by trimesh.

A mesh is indexed triangles with per-vertex normals, in model space. Handles are small integers
(the :data:`~theta_xr.components.MeshHandle` column holds them); the first three are built in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import MeshError

CUBE, SPHERE, PLANE = 0, 1, 2


@dataclass(frozen=True)
class Mesh:
    name: str
    vertices: npt.NDArray[np.float32]  # (n, 3)
    normals: npt.NDArray[np.float32]  # (n, 3)
    indices: npt.NDArray[np.uint32]  # (m, 3) triangles
    flat: bool = False  # shade with face normals (from derivatives), ignoring ``normals``

    def __post_init__(self) -> None:
        v, n, i = self.vertices, self.normals, self.indices
        if v.ndim != 2 or v.shape[1] != 3 or not len(v):
            raise MeshError(f"mesh {self.name!r}: vertices must be (n, 3), got {v.shape}")
        if n.shape != v.shape:
            raise MeshError(f"mesh {self.name!r}: normals {n.shape} differ from vertices")
        if i.ndim != 2 or i.shape[1] != 3 or not len(i):
            raise MeshError(f"mesh {self.name!r}: indices must be (m, 3), got {i.shape}")
        if int(i.max()) >= len(v):
            raise MeshError(f"mesh {self.name!r}: index {int(i.max())} past {len(v)} vertices")
        if not np.isfinite(v).all():
            raise MeshError(f"mesh {self.name!r}: non-finite vertices")

    @property
    def half_extents(self) -> npt.NDArray[np.float32]:
        """Half size of the model-space box around the origin that holds every vertex."""
        return np.abs(self.vertices).max(axis=0)

    @property
    def radius(self) -> float:
        """Radius of the sphere about the origin that holds every vertex (for culling)."""
        return float(np.linalg.norm(self.vertices, axis=1).max())


def cube() -> Mesh:
    """A unit cube (side 1) centred on the origin: 8 shared corners, shaded flat (the renderer
    takes face normals from screen-space derivatives, so a cube costs 8 vertices, not 24)."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)],
                       np.float32)
    # corner index = 4 * (x > 0) + 2 * (y > 0) + (z > 0); each face as a CCW quad from outside
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    idx = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    normals = corners / np.linalg.norm(corners, axis=1, keepdims=True)
    return Mesh("cube", corners, normals.astype(np.float32), np.array(idx, np.uint32), flat=True)


def sphere(rings: int = 12, segments: int = 24) -> Mesh:
    """A UV sphere of diameter 1."""
    theta = np.linspace(0.0, math.pi, rings + 1)
    phi = np.linspace(0.0, 2.0 * math.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    n = np.stack([np.sin(t) * np.cos(p), np.cos(t), -np.sin(t) * np.sin(p)], axis=-1).reshape(-1, 3)
    row = segments + 1
    r, s = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a = (r * row + s).ravel()
    b, c, d = a + row, a + 1, a + row + 1
    idx = np.concatenate([np.stack([a, b, c], 1), np.stack([c, b, d], 1)])
    return Mesh("sphere", (0.5 * n).astype(np.float32), n.astype(np.float32),
                idx.astype(np.uint32))


def plane() -> Mesh:
    """A 1x1 square in the xz plane facing +y."""
    v = np.array([[-0.5, 0, -0.5], [-0.5, 0, 0.5], [0.5, 0, 0.5], [0.5, 0, -0.5]], np.float32)
    n = np.tile(np.array([[0.0, 1.0, 0.0]], np.float32), (4, 1))
    return Mesh("plane", v, n, np.array([[0, 1, 2], [0, 2, 3]], np.uint32))


def load(path: str | Path, name: str | None = None) -> Mesh:
    """A mesh from any file trimesh reads (OBJ, STL, PLY, glTF...); scenes are flattened."""
    import trimesh  # only here: loading files is the one use

    try:
        tm: Any = trimesh.load(str(path), force="mesh")
    except Exception as exc:  # trimesh raises many kinds on bad files
        raise MeshError(f"{path}: cannot load mesh ({type(exc).__name__}: {exc})") from exc
    if not len(getattr(tm, "faces", ())):
        raise MeshError(f"{path}: no triangles")
    return Mesh(
        name or Path(path).stem,
        np.asarray(tm.vertices, np.float32),
        np.asarray(tm.vertex_normals, np.float32),
        np.asarray(tm.faces, np.uint32),
    )


class MeshLibrary:
    """Meshes by handle: the built-ins first (cube 0, sphere 1, plane 2), then added ones."""

    def __init__(self) -> None:
        self.meshes: list[Mesh] = [cube(), sphere(), plane()]
        self.version = 0  # bumped on every add, so renderers know to upload

    def add(self, mesh: Mesh) -> int:
        if len(self.meshes) >= 0xFFFF:
            raise MeshError("mesh library is full (65535 handles)")
        self.meshes.append(mesh)
        self.version += 1
        return len(self.meshes) - 1

    def get(self, handle: int) -> Mesh:
        if not 0 <= handle < len(self.meshes):
            raise MeshError(f"no mesh with handle {handle} (library holds {len(self.meshes)})")
        return self.meshes[handle]

    def handle(self, name: str) -> int:
        for i, m in enumerate(self.meshes):
            if m.name == name:
                return i
        raise MeshError(f"no mesh named {name!r}")

    def __len__(self) -> int:
        return len(self.meshes)

    @property
    def max_radius(self) -> float:
        return max(m.radius for m in self.meshes)

    @property
    def half_extents(self) -> npt.NDArray[np.float32]:
        """Per handle (n, 3): each mesh's model-space half extents (for picking boxes)."""
        return np.stack([m.half_extents for m in self.meshes])
