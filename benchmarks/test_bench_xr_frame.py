"""Frame time of instanced cubes in stereo: the render system's upload, culling and both eyes'
passes, waited for on the GPU (``glFinish``), with every position changed each frame (CPU
upload included) or none.

Sizes: on llvmpipe (the default) 1k and 10k cubes at 2x(320x360); with
``THETA_XR_BENCH=gpu`` 10k, 100k and 1M cubes at 2x(1832x1920), the resolution the issue names.
``THETA_XR_SAMPLES`` sets MSAA (default: the renderer's own, 2x at the GPU size, 4x at
llvmpipe's) and ``THETA_XR_CULL`` which culling modes run
(default ``1,0``), ``THETA_XR_STEREO`` the stereo paths (default ``two_pass,single_pass``).
The 90 Hz budget is 11.1 ms; ``extra_info`` says whether a run fits it.
The peer is the same frame with the upload left out (static columns): every ``upload`` run
also times it, right after, on the same renderer and columns, and records ``ratio_vs_static``
(medians).

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_xr_frame.py --benchmark-json=...``
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence

import pytest

pytest.importorskip("moderngl", reason="the xr extra is not installed")

from theta_ecs import World
from theta_ecs.interfaces import Pose
from theta_xr.camera import Eye, stereo_eyes
from theta_xr.errors import GraphicsUnavailableError
from theta_xr.fields import cube_field, jiggle
from theta_xr.renderer import ModernGLRenderer

GPU = os.environ.get("THETA_XR_BENCH") == "gpu"
SIZE = (1832, 1920) if GPU else (320, 360)
COUNTS = (10_000, 100_000, 1_000_000) if GPU else (1_000, 10_000)
BUDGET_S = 1.0 / 90.0
SAMPLES = int(os.environ["THETA_XR_SAMPLES"]) if "THETA_XR_SAMPLES" in os.environ else None
CULL = [c == "1" for c in os.environ.get("THETA_XR_CULL", "1,0").split(",")]
STEREO = os.environ.get("THETA_XR_STEREO", "two_pass,single_pass").split(",")


@pytest.fixture(scope="module", params=STEREO)
def renderer(request: pytest.FixtureRequest) -> Iterator[ModernGLRenderer]:
    try:
        r = ModernGLRenderer(eye_size=SIZE, samples=SAMPLES, stereo=request.param)
    except GraphicsUnavailableError as exc:
        pytest.skip(f"no EGL context: {exc}")
    yield r
    r.close()


def static_frame_s(renderer: ModernGLRenderer, eyes: Sequence[Eye], rounds: int) -> float:
    """Median time of a frame whose columns did not change (no upload), waited for."""
    renderer.draw(eyes)  # type: ignore[arg-type]  # whatever the last round left to send
    renderer.finish()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        renderer.draw(eyes)
        renderer.finish()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@pytest.mark.parametrize("cull", CULL, ids=["cull" if c else "nocull" for c in CULL])
@pytest.mark.parametrize("upload", [True, False], ids=["upload", "static"])
@pytest.mark.parametrize("n", COUNTS)
def test_stereo_frame(benchmark: pytest.FixtureRequest, renderer: ModernGLRenderer, n: int,
                      upload: bool, cull: bool, request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--bench-quick", default=False) and n > COUNTS[0]:
        pytest.skip("--bench-quick: the smallest count only")
    world = World()
    cube_field(world, n)
    renderer.instances.clear()
    renderer.cull = cull
    inst = renderer.attach(world)
    eyes = stereo_eyes(Pose((0.0, 1.5, 0.0)), size=SIZE)
    renderer.draw(eyes)
    renderer.finish()
    frame = [0.0]
    stats = []

    def touch() -> None:
        frame[0] += 1.0
        if upload:
            jiggle(world, frame[0])

    def run() -> None:
        stats.append(renderer.draw(eyes))
        renderer.finish()

    rounds = 5 if (n >= 1_000_000 or not GPU) else 20
    benchmark.pedantic(run, setup=touch, rounds=rounds, warmup_rounds=1)  # type: ignore[attr-defined]
    if benchmark.stats is None:  # type: ignore[attr-defined]  # --benchmark-disable: a smoke run
        renderer.instances.clear()
        return
    mean = benchmark.stats.stats.mean  # type: ignore[attr-defined]
    median = benchmark.stats.stats.median  # type: ignore[attr-defined]
    s = stats[-1]
    peer: dict[str, float] = {}
    if upload:  # the peer, measured now: the same frame with nothing changed
        peer_s = static_frame_s(renderer, eyes, rounds)
        peer = {"static_frame_ms": peer_s * 1e3, "ratio_vs_static": median / peer_s}
    benchmark.extra_info.update({  # type: ignore[attr-defined]
        "instances": n, "visible": s.visible, "eye_size": list(SIZE), "samples": renderer.samples,
        "stereo": renderer.stereo, "draw_calls": s.draw_calls,
        "upload": upload, "cull": cull, "frame_ms": mean * 1e3,
        "cpu_prepare_ms": (s.sync_s + s.cull_s + s.upload_s) * 1e3,
        "issue_ms": s.draw_s * 1e3, "bytes_uploaded": s.bytes_uploaded,
        "fits_90hz": mean <= BUDGET_S, "gl_renderer": renderer.ctx.info["GL_RENDERER"],
        "gl_version": renderer.ctx.info["GL_VERSION"], "median_frame_ms": median * 1e3,
        **peer,
    })
    assert inst.count == n
    renderer.instances.clear()
