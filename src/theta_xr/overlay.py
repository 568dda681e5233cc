"""The telemetry overlay: a few lines of text (frame time, stage times, network and voice
figures) drawn by Pillow into an RGBA image the renderer blends over each eye.

The network and voice figures come from the world's telemetry, where the backends put them
(theta_net's client and server as ``net.*`` gauges, theta_voice's diagnostics exporter as
``voice.<direction>.<stream>.*``): :func:`world_figures` picks them, so this package imports
neither backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from theta_ecs.telemetry import MetricsSnapshot

LINE_HEIGHT = 12
PADDING = 4

#: The world telemetry keys the overlay shows when present (patterns over counter and gauge
#: names), in this order: the network's health and each voice stream's delay, loss and bitrate.
WORLD_FIGURES: tuple[str, ...] = (
    "net.rtt_ms", "net.loss", "net.kbps_down", "net.kbps_up", "net.entities",
    "net.clients", "net.srtt_ms_max", "net.loss_max", "net.refused.*",
    "voice.*.current_delay_ms", "voice.*.loss_rate", "voice.*.bitrate_bps",
    "voice.*.concealment_events", "voice.dropped.*",
)


def _figure(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def world_figures(
    counters: Mapping[str, float], gauges: Mapping[str, float],
    patterns: Sequence[str] = WORLD_FIGURES, max_lines: int = 4,
) -> dict[str, str]:
    """The overlay's figures from a world's telemetry (``world.metrics().counters`` and
    ``.gauges``): the keys ``patterns`` match, one line per group (the key less its last part:
    ``net``, ``voice.rx.7``) of ``name value`` pairs, at most ``max_lines`` groups."""
    values = {**counters, **gauges}
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for pattern in patterns:
        for key in sorted(values):
            if key in seen or "." not in key or not fnmatchcase(key, pattern):
                continue
            seen.add(key)
            group, name = key.rsplit(".", 1)
            groups.setdefault(group, []).append(f"{name} {_figure(values[key])}")
    return {g: " ".join(pairs) for g, pairs in list(groups.items())[:max_lines]}


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


def world_lines(metrics: MetricsSnapshot, extra: Mapping[str, str] | None = None) -> list[str]:
    """The overlay of a world: its last frame and stage times (ms), ``extra``, then the network
    and voice figures of its telemetry (:func:`world_figures`)."""
    stages = {name: t.last_ms for name, t in metrics.stages.items()}
    figures = world_figures(metrics.counters, metrics.gauges)
    return telemetry_lines(metrics.frame_time.last_ms, stages, {**(extra or {}), **figures})


def render_text(lines: Sequence[str], width: int) -> npt.NDArray[np.uint8]:
    """RGBA pixels (rows top-down) of ``lines`` on a translucent dark panel ``width`` wide."""
    height = PADDING * 2 + LINE_HEIGHT * max(len(lines), 1)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 160))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default_imagefont()  # the bitmap font: same pixels everywhere
    for i, line in enumerate(lines):
        # the bitmap font encodes Latin-1 only: any other character (an arrow, a CJK system
        # name) raised UnicodeEncodeError from inside draw(), every frame; now it shows as '?'
        text = str(line).encode("latin-1", "replace").decode("latin-1")
        draw.text((PADDING, PADDING + i * LINE_HEIGHT), text, fill=(255, 255, 160, 255),
                  font=font)
    return np.asarray(img, dtype=np.uint8)
