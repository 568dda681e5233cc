"""``theta render`` writes PNG frames with both eyes side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from theta_ecs.cli import main

pytest.importorskip("moderngl", reason="the xr extra is not installed")
from PIL import Image

from theta_xr.errors import GraphicsUnavailableError


def test_render_writes_stereo_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["render", "--frames", "2", "--size", "64x72", "--entities", "101",
                     "--warmup", "0.5", "--out", str(tmp_path)])
    except GraphicsUnavailableError as exc:
        pytest.skip(f"no EGL OpenGL 4.5 context here: {exc}")
    assert code == 0
    frames = sorted(tmp_path.glob("frame_*.png"))
    assert [f.name for f in frames] == ["frame_0000.png", "frame_0001.png"]
    img = np.asarray(Image.open(frames[1]).convert("RGB")).astype(int)
    assert img.shape == (72, 128, 3)
    left, right = img[:, :64], img[:, 64:]
    assert (left != left[0, 0]).any(axis=2).mean() > 0.2  # the scene is drawn
    assert not np.array_equal(left, right)  # two viewpoints
    assert "102 instances" in capsys.readouterr().out  # 101 bodies and the ground


def test_render_refuses_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="WxH"):
        main(["render", "--size", "big", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"16\.\.8192"):
        main(["render", "--size", "8x8", "--out", str(tmp_path)])


def test_render_without_opengl_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from theta_xr import render_cli

    def no_gl(**_: object) -> None:
        raise GraphicsUnavailableError("no OpenGL 4.5 context through egl: EGL_NOT_INITIALIZED")

    monkeypatch.setattr(render_cli, "ModernGLRenderer", no_gl)
    code = main(["render", "--size", "32x32", "--warmup", "0.1", "--entities", "10",
                 "--out", str(tmp_path)])
    assert code == 2 and "EGL_NOT_INITIALIZED" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--entities", "0", "--entities"),  # was the scene's bare ValueError, a traceback
    ("--entities", "-5", "--entities"),
    ("--warmup", "nan", "--warmup"),  # was a ValueError traceback
    ("--warmup", "1e12", "--warmup"),  # stepped the simulation for days
    ("--warmup", "-1", "--warmup"),
])
def test_render_refuses_bad_scene_options(tmp_path: Path, option: str, value: str,
                                          says: str) -> None:
    with pytest.raises(SystemExit, match=says):
        main(["render", "--size", "32x32", option, value, "--out", str(tmp_path)])


def test_render_to_an_unwritable_place_says_why(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    try:
        code = main(["render", "--size", "32x32", "--warmup", "0", "--entities", "10",
                     "--out", str(blocker / "frames")])
    except GraphicsUnavailableError as exc:
        pytest.skip(f"no EGL OpenGL 4.5 context here: {exc}")
    assert code == 2 and "cannot write frames" in capsys.readouterr().err
