"""Vectorized 3D maths on numpy arrays: poses, views, projections and frustum tests.

Conventions follow OpenXR and OpenGL: right-handed, y up, the viewer looks down -z; matrices act
on column vectors (``m @ v``) and are stored row-major (upload the transpose to GL); quaternions
are (x, y, z, w). Clip space is OpenGL's (z in -1..1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from theta_ecs.quaternion import rotation_matrices

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Vec3 = Sequence[float]
Quat = Sequence[float]


def quat_to_matrices(q: npt.ArrayLike) -> F64:
    """Rotation matrices (n, 3, 3) of quaternions (n, 4), normalised first."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = q / np.where(norm > 0.0, norm, 1.0)
    return rotation_matrices(q)


def quat_from_axis_angle(axis: Vec3, angle: float) -> tuple[float, float, float, float]:
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    s = math.sin(angle / 2.0)
    return (float(a[0] * s), float(a[1] * s), float(a[2] * s), math.cos(angle / 2.0))


def quat_multiply(a: Quat, b: Quat) -> tuple[float, float, float, float]:
    """The rotation ``b`` followed by ``a``."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def quat_look_at(forward: Vec3, up: Vec3 = (0.0, 1.0, 0.0)) -> tuple[float, float, float, float]:
    """The orientation whose -z axis points along ``forward``."""
    f = np.asarray(forward, dtype=np.float64)
    f = f / np.linalg.norm(f)
    z = -f
    x = np.cross(np.asarray(up, dtype=np.float64), z)
    if np.linalg.norm(x) < 1e-9:  # looking straight up or down: any perpendicular will do
        x = np.cross((1.0, 0.0, 0.0), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.stack([x, y, z], axis=1)
    return matrix_to_quat(m)


def matrix_to_quat(m: npt.ArrayLike) -> tuple[float, float, float, float]:
    r = np.asarray(m, dtype=np.float64)
    t = r[0, 0] + r[1, 1] + r[2, 2]
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4)
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = (s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s)
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = ((r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s)
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = ((r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4, (r[1, 0] - r[0, 1]) / s)
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


def pose_matrix(position: Vec3, orientation: Quat) -> F64:
    """The 4x4 transform that places a pose in the world."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrices(orientation)[0]
    m[:3, 3] = position
    return m


def view_matrix(position: Vec3, orientation: Quat) -> F64:
    """World → eye: the inverse of the eye's pose (a rigid transform, so R^T and -R^T t)."""
    r = quat_to_matrices(orientation)[0]
    m = np.eye(4)
    m[:3, :3] = r.T
    m[:3, 3] = -r.T @ np.asarray(position, dtype=np.float64)
    return m


def projection_from_fov(
    angle_left: float, angle_right: float, angle_up: float, angle_down: float,
    near: float, far: float,
) -> F64:
    """An OpenGL projection from OpenXR-style field-of-view angles (radians; left and down
    negative), possibly asymmetric as headsets report them."""
    left, right = math.tan(angle_left) * near, math.tan(angle_right) * near
    down, up = math.tan(angle_down) * near, math.tan(angle_up) * near
    m = np.zeros((4, 4))
    m[0, 0] = 2 * near / (right - left)
    m[0, 2] = (right + left) / (right - left)
    m[1, 1] = 2 * near / (up - down)
    m[1, 2] = (up + down) / (up - down)
    m[2, 2] = -(far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = -1.0
    return m


def symmetric_fov(horizontal_deg: float, aspect: float) -> tuple[float, float, float, float]:
    """(left, right, up, down) angles for a symmetric horizontal field of view and w/h aspect."""
    half_h = math.radians(horizontal_deg) / 2.0
    half_v = math.atan(math.tan(half_h) / aspect)
    return (-half_h, half_h, half_v, -half_v)


def frustum_planes(view_projection: npt.ArrayLike) -> F64:
    """The six planes (a, b, c, d), inward normals of unit length, of a view-projection matrix
    (Gribb and Hartmann): a point p is inside when a·p + d >= 0 for every plane."""
    m = np.asarray(view_projection, dtype=np.float64)
    rows = [m[3] + m[0], m[3] - m[0], m[3] + m[1], m[3] - m[1], m[3] + m[2], m[3] - m[2]]
    planes = np.stack(rows)
    planes /= np.linalg.norm(planes[:, :3], axis=1, keepdims=True)
    return planes


def spheres_visible(planes: npt.ArrayLike, centers: npt.ArrayLike, radii: npt.ArrayLike) -> (
    npt.NDArray[np.bool_]
):
    """Per sphere: does it touch the frustum of any of the plane sets? ``planes`` is (6, 4) or
    (k, 6, 4) for k frusta (two eyes). A few in-place float32 passes over the columns per plane
    (a BLAS product of such a skinny matrix is ten times slower)."""
    p = np.asarray(planes, dtype=np.float32).reshape(-1, 6, 4)
    c = np.asarray(centers, dtype=np.float32).reshape(-1, 3)
    n = len(c)
    r = np.broadcast_to(np.asarray(radii, dtype=np.float32), (n,))
    x, y, z = np.ascontiguousarray(c.T)
    visible = np.zeros(n, np.bool_)
    inside = np.empty(n, np.bool_)
    dist = np.empty(n, np.float32)
    term = np.empty(n, np.float32)
    for frustum in p:
        inside.fill(True)
        for a, b, cz, d in frustum:
            np.multiply(x, a, out=dist)
            dist += np.multiply(y, b, out=term)
            dist += np.multiply(z, cz, out=term)
            dist += r
            dist += d
            inside &= dist >= 0.0
        visible |= inside
    return visible


def rotated_half_extents(rotations: npt.ArrayLike, half_extents: npt.ArrayLike) -> F64:
    """Half extents (n, 3) of the world-axis boxes that hold boxes of ``half_extents`` (n, 3)
    turned by ``rotations`` (n, 4): |R| h, one batched product."""
    r = np.abs(quat_to_matrices(rotations))
    h = np.asarray(half_extents, dtype=np.float64).reshape(-1, 3)
    return np.asarray(np.einsum("nij,nj->ni", r, h))
