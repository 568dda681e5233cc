"""The examples for engine authors stay true: the fixed-step loop embeds the core correctly, and
a separately installed backend package shows up in ``theta backends`` and works."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loop_example() -> ModuleType:
    return _load(EXAMPLES / "fixed_step_loop.py")


class FakeClock:
    """The engine's clock, advanced by hand: irregular frame times, and a hitch on request."""

    def __init__(self, frame_times: Iterator[float]) -> None:
        self.now = 100.0
        self.frame_times = frame_times

    def __call__(self) -> float:
        return self.now

    def advance(self) -> None:
        self.now += next(self.frame_times)


def _cycle(times: list[float]) -> Iterator[float]:
    while True:
        yield from times


def test_fixed_steps_are_deterministic_whatever_the_frame_times(loop_example: ModuleType) -> None:
    world, player = loop_example.build_world(crowd=50, seed=3)
    start = {e: p.copy() for ents, (pos,) in world.query(loop_example.Position)
             for e, p in zip(ents.tolist(), pos)}
    vel = {e: v.copy() for ents, (v,) in world.query(loop_example.Velocity)
           for e, v in zip(ents.tolist(), v)}
    clock = FakeClock(_cycle([0.007, 0.020, 0.0333, 0.0041]))  # 64.74 ms per 4 frames
    loop = loop_example.FixedStepLoop(world, hz=60.0, clock=clock)
    on_step = loop_example.steer(player, speed=2.0)
    tick0 = world.tick
    alphas = [loop.frame(on_step)]
    for _ in range(199):
        clock.advance()
        alphas.append(loop.frame(on_step))
    elapsed = clock.now - 100.0
    assert loop.steps == int(elapsed * 60.0)
    assert all(0.0 <= a < 1.0 for a in alphas)
    assert world.tick - tick0 == loop.steps
    x = float(loop.positions()[player][0])
    assert x == pytest.approx(2.0 * loop.steps / 60.0, rel=1e-5)
    crowd = next(e for e in start if e != player)
    pos = loop.positions()[crowd]
    np.testing.assert_allclose(pos, start[crowd] + vel[crowd] * loop.steps / 60.0, rtol=1e-4,
                               atol=1e-4)
    # rendering blends the last two states by the leftover fraction
    alpha = 0.25
    blended = loop.render_positions(alpha)[player][0]
    prev = loop.previous[player][0]
    assert blended == pytest.approx(prev + alpha * (x - prev))
    assert world.metrics().frame_time.mean_ms > 0


def test_a_hitch_is_caught_up_only_to_the_cap(loop_example: ModuleType) -> None:
    world, _ = loop_example.build_world(crowd=10)
    clock = FakeClock(iter([]))
    loop = loop_example.FixedStepLoop(world, hz=60.0, clock=clock, max_steps_per_frame=5)
    loop.frame()
    clock.now += 1.0  # the process was paused for a second
    loop.frame()
    assert loop.steps == 5
    assert loop.dropped_s == pytest.approx(1.0 - 5 / 60.0)


def test_the_loop_example_runs_as_a_script() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "fixed_step_loop.py"), "--seconds", "0.3", "--crowd",
         "200"], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout)
    assert result["steps"] >= 10 and result["frames"] >= result["steps"] // 2
    assert result["entities"] == 201
    assert result["player_x"] == pytest.approx(2.0 * result["steps"] / 60.0, rel=1e-4)


BACKEND = EXAMPLES / "theta-example-backend"
USE_BACKENDS = """
import json, numpy as np
from theta_ecs import plugins
transport = plugins.create("theta.transports")        # THETA_TRANSPORT=ipc
a, b = transport.connect_pair()
a.send(b"hello"); a.send(b"x" * 1000, reliable=True)
messages = b.receive()
codec = plugins.create("theta.voice_codecs")           # THETA_VOICE_CODEC=mulaw
t = np.arange(codec.frame_samples) / codec.sample_rate
pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
packet = codec.encode(pcm)
back = codec.decode(packet).astype(np.float64)
snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum((back - pcm) ** 2))
print(json.dumps({"transport": type(transport).__module__, "messages": [len(m) for m in messages],
                  "codec": type(codec).__name__, "packet": len(packet), "snr_db": snr}))
"""


@pytest.fixture(scope="module")
def scratch_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment that sees this one's packages (theta among them) and has
    the example backend installed into it, offline: this environment stays untouched."""
    root = tmp_path_factory.mktemp("scratch")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    parent = sysconfig.get_paths()["purelib"]  # processed as a site dir: its .pth files count
    Path(site.stdout.strip(), "parent_env.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n")
    source = root / "src"
    shutil.copytree(BACKEND, source)  # a build in place would leave build/ in the repo
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", str(source)],
                   check=True, timeout=120, capture_output=True)
    return python


def test_an_installed_backend_package_is_listed_and_usable(scratch_python: Path) -> None:
    out = subprocess.run([str(scratch_python), "-m", "theta_ecs.cli", "backends", "--json"],
                         capture_output=True, text=True, check=True, timeout=60)
    rows = {(r["group"], r["name"]): r for r in json.loads(out.stdout)}
    assert rows[("theta.transports", "ipc")]["loadable"], rows[("theta.transports", "ipc")]
    assert rows[("theta.voice_codecs", "mulaw")]["loadable"]
    assert rows[("theta.transports", "ipc")]["target"] == (
        "theta_example_backend.ipc:IpcTransportFactory")
    assert rows[("theta.transports", "loopback")]["loadable"]  # theta's own are still there

    env = {**os.environ, "THETA_TRANSPORT": "ipc", "THETA_VOICE_CODEC": "mulaw"}
    used = subprocess.run([str(scratch_python), "-c", USE_BACKENDS], env=env,
                          capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(used.stdout)
    assert result["transport"] == "theta_example_backend.ipc"
    assert result["messages"] == [5, 1000]
    assert result["codec"] == "MuLawCodec" and result["packet"] == 960  # 1 byte per sample
    assert result["snr_db"] > 30


def test_this_environment_does_not_see_the_example(scratch_python: Path) -> None:
    from theta_ecs import plugins

    assert "ipc" not in plugins.entry_points("theta.transports")
