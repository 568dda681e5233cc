"""The benchmark scenes: real motion (falling, settling, pushing, wandering), reproducible."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from theta_ecs import Component, QuantizedFloat, SmallestThree, World
from theta_ecs.quaternion import rotation_matrices
from theta_ecs.scenes import COMPONENTS, CrowdScene, CubesScene
from theta_ecs.scenes import cubes as cubes_mod
from theta_ecs.scenes.components import (
    CrowdHeading,
    CrowdPosition,
    CrowdVelocity,
    CubeInteracting,
    CubeLinearVelocity,
    CubeOrientation,
    CubePosition,
)


def column(world: World, comp: Component, entities: npt.NDArray[np.uint64]) -> npt.NDArray:
    """The world's values of ``comp`` for ``entities``, in that order."""
    return np.stack([world.get(int(e), comp) for e in entities])


def world_columns(scene: CubesScene | CrowdScene) -> dict[str, npt.NDArray]:
    out = {}
    for comp in scene.components:
        ((ents, (col,)),) = list(scene.world.query(comp))
        order = np.argsort(ents)
        out[comp.name] = col[order].copy()
    return out


def assert_in_quantized_range(comp: Component, values: npt.NDArray) -> None:
    vals = values.reshape(len(values), -1)
    for k, name in enumerate(comp.fields):
        q = comp.quantization.get(name) or comp.quantization.get("*")
        if isinstance(q, QuantizedFloat):
            assert vals[:, k].min() >= q.minimum and vals[:, k].max() <= q.maximum, name


def test_components_are_namespaced_and_quantized() -> None:
    names = [c.name for c in COMPONENTS]
    assert all(n.startswith("theta.scenes.") for n in names)
    assert len(set(names)) == len(names) == 7
    assert CubeOrientation.quantization["*"] == SmallestThree(9)
    for axis in ("x", "y", "z"):
        q = CubePosition.quantization[axis]
        assert isinstance(q, QuantizedFloat) and q.step < 1 / 500  # about 1/512 m
    assert CubeInteracting.column_dtype == np.uint8
    # Fiedler's uncompressed cube: 10 floats and a flag bit.
    assert sum(c.dtype.itemsize for c in CubesScene.components[:3]) * 8 == 320


# -- cubes ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def settled() -> CubesScene:
    """The full 901-cube scene after 3.5 s: dropped cubes have landed and most sleep."""
    scene = CubesScene(seed=1)
    for _ in range(210):
        scene.step()
    return scene


def test_cubes_world_holds_the_scene(settled: CubesScene) -> None:
    scene = settled
    assert scene.world.entity_count == scene.n == 901 == len(scene.entities)
    assert scene.mover == int(scene.entities[0])
    some = scene.entities[::97]
    rows = np.arange(scene.n)[::97]
    np.testing.assert_array_equal(
        column(scene.world, CubePosition, some), scene.pos[rows].astype(np.float32)
    )
    np.testing.assert_array_equal(
        column(scene.world, CubeOrientation, some), scene.quat[rows].astype(np.float32)
    )
    np.testing.assert_array_equal(
        column(scene.world, CubeInteracting, some), scene.interacting[rows]
    )


def test_dropped_cubes_land_flat_and_sleep(settled: CubesScene) -> None:
    scene = settled
    asleep = ~scene.awake
    asleep[0] = False
    assert asleep.sum() > 0.8 * (scene.n - 1)
    # Sleeping cubes are still, on the ground (or on a neighbour), resting on a face.
    assert not scene.vel[asleep].any() and not scene.spin[asleep].any()
    on_ground = asleep & (scene.pos[:, 1] < 0.6)
    assert on_ground.sum() > 0.75 * (scene.n - 1)
    up = np.abs(rotation_matrices(scene.quat)[:, 1, :]).max(axis=1)
    flat = on_ground & (up > math.cos(math.radians(3)))
    assert flat.sum() > 0.95 * on_ground.sum()
    assert np.all(np.abs(scene.pos[flat, 1] - cubes_mod.HALF) < 0.01)
    # The others lean on a neighbour (cube-cube contact holds them), not on thin air.
    for k in np.flatnonzero(on_ground & ~flat):
        d = np.linalg.norm(scene.pos[1:] - scene.pos[k], axis=1)
        d[k - 1] = np.inf
        assert d.min() < 2 * cubes_mod.CONTACT_RADIUS + 0.05
    # No cube sank through the ground.
    corners = np.einsum("mij,kj->mki", rotation_matrices(scene.quat[1:]), cubes_mod._CORNERS)
    assert (scene.pos[1:, None, 1] + corners[:, :, 1]).min() > -0.05


def test_the_ball_pushes_cubes_and_flags_them() -> None:
    scene = CubesScene(seed=2)
    for _ in range(150):  # 2.5 s: landed, and the ball has not reached the field yet
        scene.step()
    assert scene.interacting_count == 0
    landed = scene.pos.copy()
    slept = ~scene.awake
    ever_interacting = np.zeros(scene.n, np.bool_)
    path = []
    for _ in range(270):  # 4.5 s more: the ball ploughs in
        scene.step()
        path.append(scene.pos[0].copy())
        ever_interacting |= scene.interacting.astype(bool)
        flagged = scene.interacting[1:].astype(bool)
        assert np.all(scene.awake[1:][flagged])  # a flagged cube is in play
    ever_interacting[0] = False
    assert 10 < ever_interacting.sum() < 400
    pushed = np.linalg.norm(scene.pos[:, [0, 2]] - landed[:, [0, 2]], axis=1)
    # Cubes the ball touched were moved far; cubes well away from its path did not move at all.
    assert np.median(pushed[ever_interacting]) > 1.0
    track = np.array(path)[:, [0, 2]]
    clearance = np.linalg.norm(landed[:, None, [0, 2]] - track[None, :, :], axis=2).min(axis=1)
    far = clearance > 12.0
    far[0] = False
    assert far.sum() > 200
    assert not ever_interacting[far].any()
    assert np.all(pushed[far] < 0.75)  # at most the end of a landing tumble (under one face)
    # Asleep, out of the ball's reach and with no awake cube nearby: not a bit changed.
    gap = np.linalg.norm(landed[:, None, [0, 2]] - landed[None, :, [0, 2]], axis=2)
    quiet_neighbourhood = ~((gap < 3.0) & ~slept[None, :]).any(axis=1)
    undisturbed = far & slept & quiet_neighbourhood
    assert undisturbed.sum() > 100
    assert not pushed[undisturbed].any()
    # Most cubes are at rest while some move: what delta compression feeds on.
    assert 0 < scene.awake_count < 0.5 * (scene.n - 1)


def test_a_single_cube_falls_bounces_lower_and_settles() -> None:
    scene = CubesScene(n=2, seed=3)
    drop = scene.pos[1, 1]
    heights = []
    for _ in range(150):
        scene.step()
        heights.append(scene.pos[1, 1])
    h = np.array(heights)
    assert h.min() > cubes_mod.HALF - 0.03  # never through the floor
    assert h.max() <= drop  # no energy from nowhere
    assert not scene.awake[1]
    assert abs(scene.pos[1, 1] - cubes_mod.HALF) < 0.01
    # Resting on a face: one of its axes points straight up.
    up = np.abs(rotation_matrices(scene.quat[1:2])[0, 1, :]).max()
    assert up > math.cos(math.radians(2))


@pytest.mark.parametrize(
    ("make", "position"),
    [
        (lambda seed: CubesScene(n=101, seed=seed), CubePosition),
        (lambda seed: CrowdScene(n=300, seed=seed), CrowdPosition),
    ],
    ids=["cubes", "crowd"],
)
def test_scenes_are_deterministic_per_seed(make: Any, position: Any) -> None:
    a, b, c = make(5), make(5), make(6)
    for _ in range(40):
        a.step()
        b.step()
        c.step()
    wa, wb, wc = world_columns(a), world_columns(b), world_columns(c)
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name])
    assert not np.array_equal(wa[position.name], wc[position.name])


def test_cube_values_stay_in_their_quantized_ranges() -> None:
    scene = CubesScene(n=401, seed=7)
    for f in range(300):
        scene.step()
        if f % 10 == 0:
            cols = world_columns(scene)
            assert_in_quantized_range(CubePosition, cols[CubePosition.name])
            assert_in_quantized_range(CubeLinearVelocity, cols[CubeLinearVelocity.name])
            norms = np.linalg.norm(cols[CubeOrientation.name].astype(np.float64), axis=1)
            np.testing.assert_allclose(norms, 1.0, atol=1e-5)
            assert set(np.unique(cols[CubeInteracting.name])) <= {0, 1}


def test_only_moving_cubes_are_written(settled: CubesScene) -> None:
    scene = settled
    before = scene.world.change_tick
    snapshot = world_columns(scene)
    scene.step()
    changed = np.concatenate(
        [e for e, _ in scene.world.query(CubePosition).changed_since(before)]
    )
    expected = scene.entities[scene.last_changed]
    np.testing.assert_array_equal(np.sort(changed), np.sort(expected))
    assert len(expected) < scene.n / 2
    # Rows not written are bit-identical to the previous frame.
    after = world_columns(scene)
    untouched = np.setdiff1d(np.sort(scene.entities), expected)
    rows = np.searchsorted(np.sort(scene.entities), untouched)
    for name in snapshot:
        np.testing.assert_array_equal(snapshot[name][rows], after[name][rows])


def test_stepping_the_world_runs_the_physics() -> None:
    scene = CubesScene(n=10, seed=0)
    y0 = scene.pos[1:, 1].copy()
    scene.world.step(1 / 60)
    assert scene.frame == 1 and np.all(scene.pos[1:, 1] < y0)
    scene.step(1 / 30)  # a longer frame is split into substeps
    assert scene.time == pytest.approx(1 / 60 + 1 / 30)


@pytest.mark.parametrize("n", [0, -1, 100_000, 2.5])
def test_cubes_reject_bad_sizes(n: object) -> None:
    with pytest.raises(ValueError):
        CubesScene(n=n)  # type: ignore[arg-type]


@pytest.mark.parametrize("dt", [0.0, -0.1, math.nan, math.inf, 5.0, "0.1", True])
def test_scenes_reject_bad_steps(dt: float) -> None:
    for scene in (CubesScene(n=5), CrowdScene(n=5)):
        with pytest.raises(ValueError):
            scene.simulate(dt)
        assert scene.frame == 0


def test_numpy_steps_are_fine() -> None:
    scene = CubesScene(n=5)
    scene.simulate(np.float32(1 / 60))  # type: ignore[arg-type]
    assert scene.frame == 1


# -- crowd ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crowd() -> tuple[CrowdScene, list[dict[str, npt.NDArray]]]:
    scene = CrowdScene(n=10_000, seed=4)
    frames = [world_columns(scene)]
    for _ in range(100):  # 5 s at 20 Hz
        scene.step()
        frames.append(world_columns(scene))
    return scene, frames


def test_crowd_world_and_ranges(crowd: tuple[CrowdScene, list[dict[str, npt.NDArray]]]) -> None:
    scene, frames = crowd
    assert scene.world.entity_count == 10_000
    for cols in frames[::10]:
        pos = cols[CrowdPosition.name]
        assert np.abs(pos[:, [0, 2]]).max() <= scene.extent
        assert not pos[:, 1].any()
        assert_in_quantized_range(CrowdPosition, pos)
        assert_in_quantized_range(CrowdVelocity, cols[CrowdVelocity.name])
        assert np.abs(cols[CrowdHeading.name]).max() <= math.pi


def test_crowd_moves_like_walkers(crowd: tuple[CrowdScene, list[dict[str, npt.NDArray]]]) -> None:
    scene, frames = crowd
    dt = 1 / scene.rate_hz
    for prev, cur in zip(frames[-20:-1], frames[-19:]):
        p0, p1 = prev[CrowdPosition.name], cur[CrowdPosition.name]
        v1 = cur[CrowdVelocity.name]
        # Integration is consistent: the step taken is the velocity reported.
        np.testing.assert_allclose(p1 - p0, v1 * dt, atol=2e-3)
        speed = np.linalg.norm(v1, axis=1)
        standing = speed == 0
        assert 0.05 < standing.mean() < 0.35
        assert np.median(speed[~standing]) == pytest.approx(1.35, abs=0.2)
        assert speed.max() < 8.0
        # A standing agent's row is bit-identical from one frame to the next.
        still = standing & (np.linalg.norm(prev[CrowdVelocity.name], axis=1) == 0)
        for name in cur:
            np.testing.assert_array_equal(prev[name][still], cur[name][still])
    # Headings wander: over 5 s most walkers turned noticeably.
    h0, h1 = frames[0][CrowdHeading.name], frames[-1][CrowdHeading.name]
    turned = np.abs((h1 - h0 + np.pi) % (2 * np.pi) - np.pi) > 0.2
    assert turned.mean() > 0.5


def test_crowd_stays_inside_by_steering_not_by_the_wall() -> None:
    scene = CrowdScene(n=500, seed=8, extent=30.0)
    pinned = 0
    for _ in range(600):  # 30 s in a small field: every walker meets the edge
        scene.step()
        pinned += int((np.abs(scene.pos[:, [0, 2]]) >= scene.extent - 1e-9).any(axis=1).sum())
    assert np.abs(scene.pos[:, [0, 2]]).max() <= 30.0
    assert pinned / (600 * 500) < 0.02


@pytest.mark.parametrize(
    "kwargs", [{"n": -1}, {"n": 1.5}, {"extent": 0.0}, {"extent": 5000.0}, {"extent": math.nan}]
)
def test_crowd_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CrowdScene(**kwargs)  # type: ignore[arg-type]


def test_scenes_share_a_world() -> None:
    world = World()
    cubes = CubesScene(n=20, world=world)
    people = CrowdScene(n=50, world=world)
    world.step(1 / 60)
    assert world.entity_count == 70
    assert cubes.frame == people.frame == 1
