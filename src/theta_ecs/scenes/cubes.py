"""The cubes scene: Glenn Fiedler's "Snapshot Compression" benchmark, simulated in numpy.

Cube 0 is the moving body, a heavy ball of radius ``MOVER_RADIUS`` that rolls along a Lissajous
path over the field (setting off after ``MOVER_DELAY``). The others are unit cubes dropped in a
grid: they fall, bounce, tumble and settle on a face, then sleep (their state stops changing, bit
for bit) until something wakes them.

The dynamics are a small sequential-impulse rigid-body solver, vectorized over cubes:

* ground contact on each of a cube's eight corners (normal impulses with restitution and a
  Baumgarte push-out, Coulomb friction whose torque is what makes cubes tumble and settle flat),
  solved Jacobi-style over a cube's corners for a few iterations;
* cube-cube and ball-cube contacts between sphere proxies (radius ``CONTACT_RADIUS``), found
  through a uniform grid (sort by cell, ``searchsorted`` per neighbouring cell), with friction;
* sleeping: a cube slower than the thresholds for ``SLEEP_TIME`` sleeps; a sleeping cube acts as
  immovable for gentle contacts and wakes when hit harder or when the ball touches it.

The scene's state lives in float64 arrays; each frame only the rows of cubes that moved are written
to the World (with ``insert_batch``, so per-row change ticks are exact), clamped into the ranges
its components are quantized over.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..quaternion import rotation_matrices
from ..schedule import Stage
from ..world import World
from .base import SteppedScene, checked_dt
from .components import (
    CUBE_COMPONENTS,
    CUBES_HEIGHT,
    CUBES_MAX_SPEED,
    CubeInteracting,
    CubeLinearVelocity,
    CubeOrientation,
    CubePosition,
)

F64 = npt.NDArray[np.float64]

GRAVITY = -9.81
HALF = 0.5  # cube half-extent: unit cubes
MASS = 1.0
INERTIA = MASS * (2.0 * HALF) ** 2 / 6.0  # a solid cube's inertia is the same about every axis
CONTACT_RADIUS = 0.55  # sphere proxy for cube-cube contacts
MOVER_RADIUS = 2.0
SPACING = 1.5  # grid spacing of the cubes at the start
WALL = 60.0  # centres stay within +-WALL (inside the +-64 m quantization range)
CEILING = CUBES_HEIGHT - 1.0
MAX_SPEED = CUBES_MAX_SPEED - 0.5
MAX_SPIN = 40.0  # rad/s
FRICTION = 0.6
RESTITUTION = 0.3
BOUNCE_THRESHOLD = 1.0  # m/s: slower impacts do not bounce (resting contact stays resting)
BAUMGARTE = 0.2
SLOP = 0.005  # m of penetration tolerated before pushing out
ITERATIONS = 4
MAX_SUBSTEP = 1.0 / 120.0
SLEEP_SPEED = 0.08  # m/s
SLEEP_SPIN = 0.15  # rad/s
SLEEP_TIME = 0.5  # s
WAKE_SPEED = 0.5  # m/s: a contact approaching faster than this wakes a sleeping cube
MOVER_DELAY = 2.5  # s: the dropped cubes land before the ball sets off
LINEAR_DAMPING = 0.05  # per second (air)
ANGULAR_DAMPING = 0.3

_CORNERS = HALF * np.array(
    [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64
)


def integrate_orientation(q: F64, omega: F64, h: float) -> F64:
    """``q`` advanced by angular velocity ``omega`` (world frame) over ``h``, renormalised."""
    ox, oy, oz = omega[:, 0], omega[:, 1], omega[:, 2]
    x, y, z, w = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    dq = np.empty_like(q)  # (omega, 0) * q
    dq[:, 0] = ox * w + oy * z - oz * y
    dq[:, 1] = -ox * z + oy * w + oz * x
    dq[:, 2] = ox * y - oy * x + oz * w
    dq[:, 3] = -ox * x - oy * y - oz * z
    out = q + 0.5 * h * dq
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _clamp_norm(v: F64, limit: float) -> None:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    np.multiply(v, np.minimum(1.0, limit / np.maximum(norm, 1e-12)), out=v)


class CubesScene(SteppedScene):
    """``n`` bodies (the ball and ``n - 1`` cubes) in a World, stepped at ``rate_hz`` by default.

    ``step(dt)`` advances the physics and the World's tick (the physics runs as a system in the
    World's simulation stage, so ``scene.world.step(dt)`` does the same). Deterministic: the same
    ``n``, ``seed`` and sequence of ``dt`` give bit-identical states.
    """

    rate_hz = 60.0
    components = CUBE_COMPONENTS

    def __init__(self, n: int = 901, seed: int = 0, world: World | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        side = math.ceil(math.sqrt(max(n - 1, 1)))
        grid_half = (side - 1) * SPACING / 2.0
        if grid_half + MOVER_RADIUS + 4.0 > WALL:
            raise ValueError(f"n={n} cubes do not fit in the {2 * WALL:.0f} m field")
        self.n = int(n)
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)

        self.pos = np.zeros((n, 3))
        self.vel = np.zeros((n, 3))
        self.quat = np.zeros((n, 4))
        self.quat[:, 3] = 1.0
        self.spin = np.zeros((n, 3))
        self.awake = np.ones(n, np.bool_)
        self.awake[0] = False  # the ball is kinematic: never part of the solver's awake set
        self.rest_time = np.zeros(n)
        self.interacting = np.zeros(n, np.uint8)
        self.interacting[0] = 1

        k = n - 1
        if k:
            gx, gz = np.divmod(np.arange(k), side)
            self.pos[1:, 0] = gx * SPACING - grid_half
            self.pos[1:, 2] = gz * SPACING - grid_half
            self.pos[1:, 1] = HALF + 0.9 + rng.uniform(0.0, 2.0, k)  # dropped from up to 3 m
            q = rng.normal(size=(k, 4))
            self.quat[1:] = q / np.linalg.norm(q, axis=1, keepdims=True)
            self.spin[1:] = rng.normal(0.0, 1.0, (k, 3))

        # The ball's path: a Lissajous figure starting outside the field's corner.
        self._amplitude = grid_half + MOVER_RADIUS + 3.0
        self._freq = np.array([0.23, 0.31]) * (1.0 + 0.1 * rng.uniform(-1, 1, 2))
        self.time = 0.0
        self.frame = 0
        self.pos[0], self.vel[0] = self._mover_path(0.0)

        self.world = world if world is not None else World()
        self.world.register(*CUBE_COMPONENTS)
        self.entities = self.world.spawn_batch(
            {
                CubePosition: self._clamped_pos().astype(np.float32),
                CubeLinearVelocity: self._clamped_vel().astype(np.float32),
                CubeOrientation: self.quat.astype(np.float32),
                CubeInteracting: self.interacting.copy(),
            }
        )
        self.mover = int(self.entities[0])
        self.system_name = self.world.add_system(
            self._system,
            stage=Stage.SIMULATION,
            writes=CUBE_COMPONENTS,
            name=f"theta.scenes.cubes.physics#{id(self):x}",
        )
        self.last_changed = np.arange(n)  # rows written by the latest frame

    # -- driving ------------------------------------------------------------------------------
    def simulate(self, dt: float) -> None:
        """Advance the physics state by ``dt`` without touching the World."""
        dt = checked_dt(dt)
        substeps = max(1, math.ceil(dt / MAX_SUBSTEP - 1e-9))
        h = dt / substeps
        moved = self.awake.copy()
        touched = np.zeros(self.n, np.bool_)
        for _ in range(substeps):
            t = self.time + h
            self.pos[0], self.vel[0] = self._mover_path(t)
            self.spin[0] = np.cross([0.0, 1.0, 0.0], self.vel[0]) / MOVER_RADIUS
            self.quat[0:1] = integrate_orientation(self.quat[0:1], self.spin[0:1], h)
            touched |= self._touch_mover()
            moved |= self.awake
            self._substep(h)
            self.time = t
        self.frame += 1
        self._sleep(dt)
        # Touched cubes are awake, and only cubes awake this frame can have fallen asleep, so
        # ``moved`` covers every row whose value or flag changed.
        self.interacting[touched] = 1
        self.interacting[1:][~self.awake[1:]] = 0
        moved[0] = True
        self.last_changed = np.flatnonzero(moved)

    # -- the ball -----------------------------------------------------------------------------
    def _mover_path(self, t: float) -> tuple[F64, F64]:
        """The ball waits ``MOVER_DELAY`` off the field's corner, then sets off smoothly."""
        a, (fx, fz) = self._amplitude, self._freq
        t = max(0.0, t - MOVER_DELAY)
        pos = np.array([-a * math.cos(fx * t), MOVER_RADIUS, -a * math.cos(fz * t)])
        vel = np.array([a * fx * math.sin(fx * t), 0.0, a * fz * math.sin(fz * t)])
        return pos, vel

    def _touch_mover(self) -> npt.NDArray[np.bool_]:
        """Wake the cubes the ball is touching; returns which."""
        d = self.pos - self.pos[0]
        reach = MOVER_RADIUS + CONTACT_RADIUS + 0.05
        touched = np.einsum("ij,ij->i", d, d) < reach * reach
        touched[0] = False
        self.awake |= touched
        self.rest_time[touched] = 0.0
        return touched

    # -- one substep of the solver ------------------------------------------------------------
    def _substep(self, h: float) -> None:
        idx = np.flatnonzero(self.awake)
        if not len(idx):
            return
        p, v, w, q = self.pos[idx], self.vel[idx], self.spin[idx], self.quat[idx]
        v[:, 1] += GRAVITY * h
        self._pairs(idx, p, v, w, h)
        self._ball(p, v, w, h)
        self._ground(p, v, w, q, h)
        v *= 1.0 - LINEAR_DAMPING * h
        w *= 1.0 - ANGULAR_DAMPING * h
        np.clip(v, -MAX_SPEED, MAX_SPEED, out=v)
        _clamp_norm(w, MAX_SPIN)
        p += v * h
        q = integrate_orientation(q, w, h)
        # The field's walls and ceiling: inelastic, so values stay inside their quantized range.
        for axis, lo, hi in ((0, -WALL, WALL), (1, HALF * 0.5, CEILING), (2, -WALL, WALL)):
            out = (p[:, axis] < lo) | (p[:, axis] > hi)
            if out.any():
                np.clip(p[:, axis], lo, hi, out=p[:, axis])
                v[out, axis] = 0.0
        self.pos[idx], self.vel[idx], self.spin[idx], self.quat[idx] = p, v, w, q

    def _ground(self, p: F64, v: F64, w: F64, q: F64, h: float) -> None:
        r = np.einsum("mij,kj->mki", rotation_matrices(q), _CORNERS)  # corner offsets (m, 8, 3)
        depth = -(p[:, None, 1] + r[:, :, 1])
        touching = depth > 0.0
        rows = np.flatnonzero(touching.any(axis=1))
        if not len(rows):
            return
        r, depth, on = r[rows], depth[rows], touching[rows]
        pv, pw = v[rows], w[rows]
        count = on.sum(axis=1, keepdims=True).astype(np.float64)
        share = on / count  # Jacobi: each touching corner takes its share of the correction
        # Effective masses along the normal (y) and, conservatively, any tangent.
        m_n = 1.0 / (1.0 / MASS + (r[:, :, 0] ** 2 + r[:, :, 2] ** 2) / INERTIA)
        m_t = 1.0 / (1.0 / MASS + np.einsum("mkj,mkj->mk", r, r) / INERTIA)
        vn0 = pv[:, None, 1] + (pw[:, None, 2] * r[:, :, 0] - pw[:, None, 0] * r[:, :, 2])
        bounce = np.where(vn0 < -BOUNCE_THRESHOLD, -RESTITUTION * vn0, 0.0)
        push = BAUMGARTE / h * np.maximum(depth - SLOP, 0.0)
        target = np.maximum(bounce, push)
        acc_n = np.zeros(on.shape)
        acc_t = np.zeros((*on.shape, 3))
        for _ in range(ITERATIONS):
            vc = pv[:, None, :] + np.cross(pw[:, None, :], r)
            lam = (target - vc[:, :, 1]) * m_n * share
            new = np.maximum(acc_n + lam, 0.0) * on
            lam = new - acc_n
            acc_n = new
            impulse = np.zeros((*on.shape, 3))
            impulse[:, :, 1] = lam
            # Friction against the velocity after the normal impulse, bounded by mu * normal.
            vc = vc + impulse / MASS + np.cross(
                (np.cross(r, impulse).sum(axis=1) / INERTIA)[:, None, :], r
            )
            vt = vc.copy()
            vt[:, :, 1] = 0.0
            want = acc_t - vt * (m_t * share)[:, :, None]
            limit = FRICTION * acc_n
            norm = np.linalg.norm(want, axis=2)
            scale = np.where(norm > limit, limit / np.maximum(norm, 1e-12), 1.0)
            want *= scale[:, :, None]
            impulse[:, :, 0] = want[:, :, 0] - acc_t[:, :, 0]
            impulse[:, :, 2] = want[:, :, 2] - acc_t[:, :, 2]
            acc_t = want
            pv += impulse.sum(axis=1) / MASS
            pw += np.cross(r, impulse).sum(axis=1) / INERTIA
        v[rows], w[rows] = pv, pw

    def _pairs(self, idx: npt.NDArray[np.intp], p: F64, v: F64, w: F64, h: float) -> None:
        """Contacts of awake cubes with any other cube, through a uniform grid on x/z."""
        cell = 2.0 * CONTACT_RADIUS
        cells = np.floor(self.pos[:, [0, 2]] / cell).astype(np.int64) + 1024
        keys = cells[:, 0] * 4096 + cells[:, 1]
        keys[0] = -1  # the ball is handled on its own
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        local = np.arange(len(idx))
        qi: list[npt.NDArray[np.intp]] = []
        qj: list[npt.NDArray[np.intp]] = []
        for dx in (-1, 0, 1):
            for dz in (-1, 0, 1):
                nk = (cells[idx, 0] + dx) * 4096 + cells[idx, 1] + dz
                lo = np.searchsorted(sorted_keys, nk, "left")
                cnt = np.searchsorted(sorted_keys, nk, "right") - lo
                for t in range(int(cnt.max(initial=0))):
                    sel = cnt > t
                    qi.append(local[sel])
                    qj.append(order[lo[sel] + t])
        if not qi:
            return
        i = np.concatenate(qi)
        j = np.concatenate(qj)
        keep = idx[i] != j
        i, j = i[keep], j[keep]
        d = p[i] - self.pos[j]
        dist2 = np.einsum("ij,ij->i", d, d)
        hit = dist2 < (2.0 * CONTACT_RADIUS) ** 2
        i, j, d, dist2 = i[hit], j[hit], d[hit], dist2[hit]
        if not len(i):
            return
        dist = np.sqrt(dist2)
        normal = np.where(dist[:, None] > 1e-9, d / np.maximum(dist, 1e-9)[:, None], [0, 1, 0])
        pen = 2.0 * CONTACT_RADIUS - dist
        rel = v[i] - self.vel[j]
        approach = -np.einsum("ij,ij->i", rel, normal)
        # A sleeping partner stays put for gentle contacts (it is part of the ground), and wakes
        # for harder ones; it takes its half from the next substep on.
        partner_awake = self.awake[j]
        wake = ~partner_awake & (approach > WAKE_SPEED)
        if wake.any():
            self.awake[j[wake]] = True
            self.rest_time[j[wake]] = 0.0
        inv_partner = np.where(partner_awake, 1.0 / MASS, 0.0)
        self._contact(i, normal, pen, rel, approach, inv_partner, v, w, h, len(p))

    def _ball(self, p: F64, v: F64, w: F64, h: float) -> None:
        d = p - self.pos[0]
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
        hit = np.flatnonzero(dist < MOVER_RADIUS + CONTACT_RADIUS)
        if not len(hit):
            return
        normal = d[hit] / np.maximum(dist[hit], 1e-9)[:, None]
        pen = MOVER_RADIUS + CONTACT_RADIUS - dist[hit]
        surface = self.vel[0] + np.cross(self.spin[0], -MOVER_RADIUS * normal)
        rel = v[hit] - surface
        approach = -np.einsum("ij,ij->i", rel, normal)
        self._contact(hit, normal, pen, rel, approach, np.zeros(len(hit)), v, w, h, len(p))

    @staticmethod
    def _contact(
        i: npt.NDArray[np.intp],
        normal: F64,
        pen: F64,
        rel: F64,
        approach: F64,
        inv_partner: F64,
        v: F64,
        w: F64,
        h: float,
        m: int,
    ) -> None:
        """Normal and friction impulses on the rows ``i`` of ``v``/``w`` (the partner's half, if
        it moves, is applied by the partner's own entry)."""
        inv = 1.0 / MASS + inv_partner
        bounce = np.where(approach > BOUNCE_THRESHOLD, 1.0 + RESTITUTION, 1.0)
        push = BAUMGARTE / h * np.maximum(pen - SLOP, 0.0)
        jn = np.maximum(bounce * approach + push, 0.0) / inv
        share = 1.0 / np.maximum(np.bincount(i, minlength=m)[i], 1)
        jn *= share
        arm = -CONTACT_RADIUS * normal
        vc = rel + np.cross(w[i], arm)
        vt = vc - np.einsum("ij,ij->i", vc, normal)[:, None] * normal
        vt_norm = np.linalg.norm(vt, axis=1)
        m_t = 1.0 / (inv + CONTACT_RADIUS**2 / INERTIA)
        jt = np.minimum(FRICTION * jn, vt_norm * m_t * share)
        tangent = vt / np.maximum(vt_norm, 1e-12)[:, None]
        impulse = jn[:, None] * normal - jt[:, None] * tangent
        np.add.at(v, i, impulse / MASS)
        np.add.at(w, i, np.cross(arm, impulse) / INERTIA)

    # -- sleeping -----------------------------------------------------------------------------
    def _sleep(self, dt: float) -> None:
        cubes = self.awake.copy()
        cubes[0] = False
        speed2 = np.einsum("ij,ij->i", self.vel, self.vel)
        spin2 = np.einsum("ij,ij->i", self.spin, self.spin)
        still = cubes & (speed2 < SLEEP_SPEED**2) & (spin2 < SLEEP_SPIN**2)
        self.rest_time[still] += dt
        self.rest_time[cubes & ~still] = 0.0
        asleep = still & (self.rest_time >= SLEEP_TIME)
        if asleep.any():
            self.awake[asleep] = False
            self.vel[asleep] = 0.0
            self.spin[asleep] = 0.0

    # -- the World ----------------------------------------------------------------------------
    def _clamped_pos(self) -> F64:
        out = self.pos.copy()
        for axis, lo, hi in ((0, -WALL, WALL), (1, 0.0, CUBES_HEIGHT), (2, -WALL, WALL)):
            np.clip(out[:, axis], lo, hi, out=out[:, axis])
        return out

    def _clamped_vel(self) -> F64:
        return np.clip(self.vel, -MAX_SPEED, MAX_SPEED)

    def _write(self, rows: npt.NDArray[np.intp]) -> None:
        if not len(rows):
            return
        world = self.world
        alive = world.alive_mask(self.entities[rows])
        rows = rows[alive]
        if not len(rows):
            return
        ents = self.entities[rows]
        world.insert_batch(ents, CubePosition, self._clamped_pos()[rows].astype(np.float32))
        world.insert_batch(ents, CubeLinearVelocity, self._clamped_vel()[rows].astype(np.float32))
        world.insert_batch(ents, CubeOrientation, self.quat[rows].astype(np.float32))
        world.insert_batch(ents, CubeInteracting, self.interacting[rows])

    # -- observation --------------------------------------------------------------------------
    @property
    def awake_count(self) -> int:
        """Cubes the solver is moving (the ball excluded)."""
        return int(self.awake[1:].sum())

    @property
    def interacting_count(self) -> int:
        return int(self.interacting[1:].sum())
