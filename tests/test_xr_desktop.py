"""The desktop window on a virtual display (Xvfb): a GL 4.5 window, the renderer presenting both
eyes into it, and the keyboard-and-mouse provider polling it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from theta_ecs import World
from theta_ecs.interfaces import Pose

pytest.importorskip("glfw", reason="the xr extra is not installed")

from theta_xr.camera import stereo_eyes
from theta_xr.errors import WindowUnavailableError
from theta_xr.fields import cube_field

EYE = (96, 108)


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is missing: .ci/sysdeps installs it (apt-get install xvfb)")
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X{n}-lock").exists())
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "640x480x24", "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10.0
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Xvfb :{number} did not start")
            time.sleep(0.05)
        monkeypatch.setenv("DISPLAY", f":{number}")
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_window_shows_both_eyes_and_polls_input(display: str) -> None:
    from theta_xr.desktop import DesktopInputProvider, DesktopWindow
    from theta_xr.renderer import ModernGLRenderer

    window = DesktopWindow((2 * EYE[0], EYE[1]))
    ctx = window.context()
    assert ctx.version_code >= 450
    renderer = ModernGLRenderer(eye_size=EYE, context=ctx, samples=0)
    world = World()
    cube_field(world, 200)
    renderer.attach(world)
    provider = DesktopInputProvider(window=window)
    frame = provider.poll(0.0)
    assert frame.head.position == (0.0, 1.7, 0.0) and not frame.buttons["right/trigger"]
    renderer.draw(stereo_eyes(Pose((0.0, 1.5, 0.0)), size=EYE))
    renderer.present(ctx.screen)
    shown = np.frombuffer(ctx.screen.read(components=3), np.uint8).reshape(EYE[1], 2 * EYE[0], 3)
    left, right = shown[::-1, : EYE[0]], shown[::-1, EYE[0]:]
    np.testing.assert_array_equal(left, renderer.read_eye(0))
    np.testing.assert_array_equal(right, renderer.read_eye(1))
    assert not np.array_equal(left, right)
    window.swap()
    assert not window.should_close
    renderer.close()
    provider.close()
    window.close()


def test_no_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from theta_xr.desktop import DesktopWindow

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(WindowUnavailableError, match="no display"):
        DesktopWindow()
    assert "DISPLAY" not in os.environ
