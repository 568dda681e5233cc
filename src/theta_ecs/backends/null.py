"""Null backends: accept work and count it, for headless servers, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import ThetaError
from ..interfaces import RenderItem


class NullRenderer:
    """Validates and counts what it would draw."""

    def __init__(self, **_: object) -> None:
        self.frames = 0
        self.items_drawn = 0
        self.closed = False

    def render(self, items: Sequence[RenderItem], views: Sequence[npt.NDArray[np.float32]]) -> None:
        if self.closed:
            raise ThetaError("render() after close()")
        for view in views:
            if np.shape(view) != (4, 4):
                raise ValueError(f"a view matrix must be 4x4, got {np.shape(view)}")
        self.frames += 1
        self.items_drawn += len(items) * max(len(views), 1)

    def close(self) -> None:
        self.closed = True


class NullAudioSink:
    """Discards audio, counting samples so callers can check pacing."""

    def __init__(self, **_: object) -> None:
        self.samples_played = 0
        self.closed = False

    def play(self, pcm: npt.NDArray[np.int16]) -> None:
        if self.closed:
            raise ThetaError("play() after close()")
        arr = np.asarray(pcm)
        if arr.dtype != np.int16:
            raise ValueError(f"audio must be int16 PCM, got {arr.dtype}")
        self.samples_played += int(arr.shape[0]) if arr.ndim else 0

    def close(self) -> None:
        self.closed = True
