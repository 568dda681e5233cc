"""Ray picking over the ECS columns: a hand's ray against every entity's bounding box at once.

Boxes are world-axis boxes around each entity's mesh box turned by its rotation and scaled
(``|R| (h * s)``); the slab test runs over whole archetype columns in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from theta_ecs.interfaces import Pose
from theta_ecs.world import World

from .binding import Binding
from .math3d import quat_to_matrices, rotated_half_extents
from .meshes import MeshLibrary

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Ray:
    origin: tuple[float, float, float]
    direction: tuple[float, float, float]  # unit length

    @classmethod
    def from_pose(cls, pose: Pose) -> Ray:
        """The ray a tracked hand points along: its -z axis (OpenXR's aim pose convention)."""
        d = quat_to_matrices(pose.orientation)[0] @ np.array([0.0, 0.0, -1.0])
        return cls(tuple(float(v) for v in pose.position),  # type: ignore[arg-type]
                   tuple(float(v) for v in d / np.linalg.norm(d)))  # type: ignore[arg-type]

    def at(self, distance: float) -> tuple[float, float, float]:
        o, d = self.origin, self.direction
        return (o[0] + d[0] * distance, o[1] + d[1] * distance, o[2] + d[2] * distance)


@dataclass(frozen=True)
class Hit:
    entity: int
    distance: float
    point: tuple[float, float, float]


def ray_boxes(origin: npt.ArrayLike, direction: npt.ArrayLike, lo: F64, hi: F64) -> F64:
    """Per box (n, 3 corners ``lo``, ``hi``): distance along the ray to where it enters the box
    (0 when it starts inside), or +inf where it misses. The slab method, vectorized."""
    o = np.asarray(origin, np.float64)
    d = np.asarray(direction, np.float64)
    parallel = d == 0.0
    safe = np.where(parallel, 1.0, d)
    t1 = (lo - o) / safe
    t2 = (hi - o) / safe
    near = np.minimum(t1, t2)
    far = np.maximum(t1, t2)
    if parallel.any():  # an axis the ray runs along: inside that slab everywhere, or nowhere
        inside = (o >= lo) & (o <= hi)
        near = np.where(parallel, np.where(inside, -np.inf, np.inf), near)
        far = np.where(parallel, np.where(inside, np.inf, -np.inf), far)
    t_near = near.max(axis=1)
    t_far = far.min(axis=1)
    hit = t_far >= np.maximum(t_near, 0.0)
    return np.where(hit, np.maximum(t_near, 0.0), np.inf)


def pick(
    world: World,
    ray: Ray,
    bindings: Sequence[Binding],
    meshes: MeshLibrary,
    *,
    max_distance: float = np.inf,
) -> Hit | None:
    """The nearest entity whose box ``ray`` enters within ``max_distance``, if any."""
    best: Hit | None = None
    extents = meshes.half_extents.astype(np.float64)
    for binding in bindings:
        for arch in world.query(*binding.required).archetypes():
            n = arch.count
            if not n:
                continue
            pos = binding.positions(arch).astype(np.float64)
            handles = binding.mesh_handles(arch)
            unknown: npt.NDArray[np.bool_] | None = None  # handles the renderer cannot draw
            if handles is None:
                if binding.default_mesh >= len(extents):
                    continue
                h = np.broadcast_to(extents[binding.default_mesh], (n, 3))
            else:
                unknown = handles >= len(extents)
                h = extents[np.minimum(handles, len(extents) - 1)]
            scales = binding.scales(arch)
            if scales is not None:
                h = h * np.abs(scales)
            rots = binding.rotations(arch)
            if rots is not None:
                h = rotated_half_extents(rots, h)
            dist = ray_boxes(ray.origin, ray.direction, pos - h, pos + h)
            if unknown is not None:  # not drawn, so not pickable: a box of another mesh's size
                dist[unknown] = np.inf
            i = int(np.argmin(dist))
            d = float(dist[i])
            if d <= max_distance and (best is None or d < best.distance):
                best = Hit(int(arch.entities[i]), d, ray.at(d))
    return best
