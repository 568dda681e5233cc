"""Eyes: a view and a projection per eye, from a head pose (simulated HMD) or from OpenXR views.

The simulated HMD matches Monado's: 640x720 per eye, 85 degree horizontal field of view, 0.065 m
between the eyes, eyes parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theta_ecs.interfaces import Pose

from .math3d import (
    F64,
    frustum_planes,
    pose_matrix,
    projection_from_fov,
    symmetric_fov,
    view_matrix,
)

EYE_SIZE = (640, 720)
FOV_DEG = 85.0
IPD = 0.065
NEAR = 0.05
FAR = 500.0


@dataclass(frozen=True)
class Eye:
    """One eye: world→eye ``view``, eye→clip ``projection`` (row-major, column vectors) and the
    pixel size of its image."""

    view: F64
    projection: F64
    size: tuple[int, int]
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    view_projection: F64 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "view_projection", self.projection @ self.view)

    def planes(self) -> F64:
        return frustum_planes(self.view_projection)


def eye_from_fov(
    pose: Pose, fov: tuple[float, float, float, float], size: tuple[int, int],
    near: float = NEAR, far: float = FAR,
) -> Eye:
    """An eye as OpenXR reports one: its pose and its (left, right, up, down) angles."""
    return Eye(
        view_matrix(pose.position, pose.orientation),
        projection_from_fov(*fov, near, far),
        size,
        tuple(float(v) for v in pose.position),  # type: ignore[arg-type]
    )


def stereo_eyes(
    head: Pose,
    *,
    size: tuple[int, int] = EYE_SIZE,
    fov_deg: float = FOV_DEG,
    ipd: float = IPD,
    near: float = NEAR,
    far: float = FAR,
) -> tuple[Eye, Eye]:
    """Left and right eyes of a simulated HMD at ``head``: parallel, ``ipd`` apart."""
    head_m = pose_matrix(head.position, head.orientation)
    fov = symmetric_fov(fov_deg, size[0] / size[1])
    eyes = []
    for side in (-0.5, 0.5):
        centre = head_m @ np.array([side * ipd, 0.0, 0.0, 1.0])
        pose = Pose(tuple(float(v) for v in centre[:3]), head.orientation)  # type: ignore[arg-type]
        eyes.append(eye_from_fov(pose, fov, size, near, far))
    return eyes[0], eyes[1]


def mono_eye(
    head: Pose, *, size: tuple[int, int] = EYE_SIZE, fov_deg: float = FOV_DEG,
    near: float = NEAR, far: float = FAR,
) -> Eye:
    """One centred eye, for a desktop window."""
    return eye_from_fov(head, symmetric_fov(fov_deg, size[0] / size[1]), size, near, far)
