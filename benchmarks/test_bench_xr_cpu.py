"""CPU cost of the render system (change detection, culling, buffer upload) per 1k entities.

Peers, measured in the same run on the same columns: ``numpy_interleave`` (the floor for a full
upload: one numpy interleave of the columns into an instance array and one buffer write) and
``per_entity_python`` (a model matrix built per entity in Python, as the core's RenderItem
protocol path and per-entity engines do, then one write).

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_xr_cpu.py --benchmark-json=...``
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("moderngl", reason="the xr extra is not installed")

from theta_ecs import World
from theta_ecs.interfaces import Pose
from theta_ecs.stdcomponents import Color, Position, Rotation, Scale
from theta_xr.camera import stereo_eyes
from theta_xr.errors import GraphicsUnavailableError
from theta_xr.fields import cube_field, jiggle
from theta_xr.math3d import quat_to_matrices
from theta_xr.renderer import ModernGLRenderer

N = 100_000
SIZE = (64, 64)


@pytest.fixture(scope="module")
def renderer() -> Iterator[ModernGLRenderer]:
    try:
        r = ModernGLRenderer(eye_size=SIZE, samples=0)
    except GraphicsUnavailableError as exc:
        pytest.skip(f"no EGL context: {exc}")
    yield r
    r.close()


def best_of(fn: Callable[[], None], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peers(r: ModernGLRenderer, world: World) -> dict[str, float]:
    arch = world.query(Position).archetypes()[0]
    n = arch.count
    cols = [arch.columns[c.id][:n] for c in (Position, Rotation, Scale)]
    color = arch.columns[Color.id][:n]
    buf = r.ctx.buffer(reserve=n * 44)

    def interleave() -> None:
        inst = np.empty((n, 11), np.float32)
        inst[:, 0:3], inst[:, 3:7], inst[:, 7:10] = cols
        inst[:, 10] = color.view(np.float32).ravel()
        buf.write(inst)

    k = min(n, 10_000)  # the Python loop is measured on 10k entities and scaled

    def per_entity() -> None:
        out = np.empty((k, 16), np.float32)
        pos, rot, scale = (c[:k] for c in cols)
        for i in range(k):
            m = np.eye(4, dtype=np.float32)
            m[:3, :3] = quat_to_matrices(rot[i])[0] * scale[i]
            m[:3, 3] = pos[i]
            out[i] = m.ravel()
        buf.write(out)

    result = {"numpy_interleave_s": best_of(interleave),
              "per_entity_python_s": best_of(per_entity, 1) * n / k}
    buf.release()
    return result


@pytest.mark.parametrize("cull", [False, True], ids=["nocull", "cull"])
@pytest.mark.parametrize("changed", ["all", "one_percent", "none"])
def test_render_system_cpu(benchmark: pytest.FixtureRequest, renderer: ModernGLRenderer,
                           changed: str, cull: bool, request: pytest.FixtureRequest) -> None:
    n = 10_000 if request.config.getoption("--bench-quick", default=False) else N
    world = World()
    ents = cube_field(world, n)
    renderer.instances.clear()
    renderer.cull = cull
    renderer.attach(world)
    eyes = stereo_eyes(Pose((0.0, 1.5, 0.0)), size=SIZE)
    renderer.prepare(eyes)
    rng = np.random.default_rng(1)
    t = [0.0]

    def touch() -> None:
        t[0] += 1.0
        if changed == "all":
            jiggle(world, t[0])
        elif changed == "one_percent":
            for e in rng.choice(ents, n // 100, replace=False):
                world.set(int(e), Position, (0.0, 1.5 + 0.01 * math.sin(t[0]), -3.0))

    stats = []

    def run() -> None:
        stats.append(renderer.prepare(eyes))

    benchmark.pedantic(run, setup=touch, rounds=15, warmup_rounds=2)  # type: ignore[attr-defined]
    if benchmark.stats is None:  # type: ignore[attr-defined]  # --benchmark-disable: a smoke run
        renderer.instances.clear()
        return
    mean = benchmark.stats.stats.mean  # type: ignore[attr-defined]
    ref = peers(renderer, world)
    last = stats[-1]
    benchmark.extra_info.update({  # type: ignore[attr-defined]
        "entities": n, "changed": changed, "cull": cull, "rows_uploaded": last.rows_uploaded,
        "bytes_uploaded": last.bytes_uploaded,
        "us_per_1k_entities": mean / n * 1e3 * 1e6,
        "sync_ms": last.sync_s * 1e3, "cull_ms": last.cull_s * 1e3,
        "upload_ms": last.upload_s * 1e3,
        **{k: v for k, v in ref.items()},
        "ratio_vs_numpy_interleave": mean / ref["numpy_interleave_s"],
        "ratio_vs_per_entity_python": mean / ref["per_entity_python_s"],
        "gl_renderer": renderer.ctx.info["GL_RENDERER"],
    })
    renderer.instances.clear()
