"""``theta render``: a built-in scene drawn in stereo, frames written as PNGs (left eye, right
eye, side by side). Headless (EGL), so it runs on a server or in CI."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from theta_ecs.scenes import CubesScene
from theta_ecs.scenes.cubes import MOVER_RADIUS
from theta_ecs.stdcomponents import Color, Position, Scale
from theta_ecs.world import World

from .binding import STANDARD, scene_binding
from .camera import stereo_eyes
from .components import MeshHandle
from .errors import GraphicsUnavailableError
from .meshes import PLANE, SPHERE
from .overlay import telemetry_lines, world_figures
from .renderer import FrameStats, ModernGLRenderer
from .simulated import SimulatedInputProvider

MAX_ENTITIES = 1_000_000
MAX_WARMUP_S = 600.0

PALETTE = np.array([[230, 90, 70, 255], [240, 180, 60, 255], [90, 170, 220, 255],
                    [120, 200, 110, 255], [200, 120, 210, 255]], np.uint8)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size: expected WxH, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise SystemExit(f"--size: each side in 16..8192, got {text!r}")
    return w, h


def cubes_world(n: int, seed: int = 0) -> tuple[CubesScene, World]:
    """The cubes scene with colours and meshes for drawing, and a ground plane."""
    scene = CubesScene(n=n, seed=seed)
    world = scene.world
    ents = scene.entities
    world.insert_batch(ents, Color, PALETTE[np.arange(len(ents)) % len(PALETTE)])
    handles = np.zeros(len(ents), np.uint16)
    handles[0] = SPHERE
    world.insert_batch(ents, MeshHandle, handles)
    scales = np.ones((len(ents), 3), np.float32)
    scales[0] = 2.0 * MOVER_RADIUS  # the ball: a unit-diameter sphere scaled to its size
    world.insert_batch(ents, Scale, scales)
    world.spawn({Position: (0.0, 0.0, 0.0), Scale: (130.0, 1.0, 130.0),
                 Color: (70, 78, 90, 255), MeshHandle: PLANE})
    return scene, world


def run(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise SystemExit("--frames must be at least 1")
    if not 1 <= args.entities <= MAX_ENTITIES:
        raise SystemExit(f"--entities: 1..{MAX_ENTITIES}, got {args.entities}")
    if not (math.isfinite(args.warmup) and 0.0 <= args.warmup <= MAX_WARMUP_S):
        # NaN was a traceback; 1e12 stepped the simulation for days
        raise SystemExit(f"--warmup: 0..{MAX_WARMUP_S:g} simulated seconds, got {args.warmup}")
    size = _size(args.size)
    t_start = time.perf_counter()
    scene, world = cubes_world(args.entities)
    for _ in range(int(args.warmup * scene.rate_hz)):
        scene.step()
    try:
        renderer = ModernGLRenderer(eye_size=size, samples=args.samples)
    except GraphicsUnavailableError as exc:
        print(f"theta render: {exc}", file=sys.stderr)
        return 2
    renderer.attach(world, (scene_binding("cubes"), STANDARD))
    hmd = SimulatedInputProvider(motion="orbit", orbit_center=(0.0, 0.0, 0.0),
                                 orbit_radius=34.0, orbit_height=14.0, orbit_period=60.0)
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        renderer.close()
        print(f"theta render: cannot write frames to {out}: {exc}", file=sys.stderr)
        return 2
    from PIL import Image  # the overlay module already needs Pillow

    frame_ms = 0.0
    for i in range(args.frames):
        t = args.warmup + i / scene.rate_hz
        t0 = time.perf_counter()
        scene.step()
        sim_ms = (time.perf_counter() - t0) * 1e3
        eyes = stereo_eyes(hmd.poll(t).head, size=size)

        def overlay(stats: FrameStats, sim_ms: float = sim_ms, last_ms: float = frame_ms) -> (
            list[str]
        ):
            return telemetry_lines(
                last_ms, {"sim": sim_ms, "upload": (stats.sync_s + stats.upload_s) * 1e3},
                {"instances": f"{stats.instances} x 2 eyes",
                 **world_figures(world.telemetry.counters, world.telemetry.gauges)})

        t1 = time.perf_counter()
        renderer.draw(eyes, None if args.no_overlay else overlay)
        pixels = renderer.read_stereo()
        frame_ms = (time.perf_counter() - t1) * 1e3
        path = out / f"frame_{i:04d}.png"
        try:
            Image.fromarray(pixels).save(path)
        except OSError as exc:
            renderer.close()
            print(f"theta render: cannot write {path}: {exc}", file=sys.stderr)
            return 2
        print(f"{path}  {pixels.shape[1]}x{pixels.shape[0]}  {frame_ms:.1f} ms "
              f"({renderer.stats.instances} instances, {renderer.stats.visible} visible)")
    gl = renderer.ctx.info["GL_RENDERER"]
    renderer.close()
    print(f"{args.frames} frame(s) in {time.perf_counter() - t_start:.2f} s on {gl}")
    return 0
