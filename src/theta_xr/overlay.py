"""The telemetry overlay: a few lines of text (frame time, stage times, network and voice
figures) drawn by Pillow into an RGBA image the renderer blends over each eye."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

LINE_HEIGHT = 12
PADDING = 4


def telemetry_lines(
    frame_ms: float, stages: Mapping[str, float] | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[str]:
    """The overlay's text: frame time, then stage times (ms), then any figures others report
    (network, voice) as name: value."""
    if frame_ms > 0:
        lines = [f"frame {frame_ms:6.2f} ms ({1000.0 / frame_ms:5.1f} Hz)"]
    else:
        lines = ["frame    -- ms (first frame)"]
    if stages:
        lines.append(" ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    for k, v in (extra or {}).items():
        lines.append(f"{k}: {v}")
    return lines


def render_text(lines: Sequence[str], width: int) -> npt.NDArray[np.uint8]:
    """RGBA pixels (rows top-down) of ``lines`` on a translucent dark panel ``width`` wide."""
    height = PADDING * 2 + LINE_HEIGHT * max(len(lines), 1)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 160))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default_imagefont()  # the bitmap font: same pixels everywhere
    for i, line in enumerate(lines):
        draw.text((PADDING, PADDING + i * LINE_HEIGHT), line, fill=(255, 255, 160, 255),
                  font=font)
    return np.asarray(img, dtype=np.uint8)
