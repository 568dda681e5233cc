"""Voice activity detection: which frames carry speech.

Detectors sit behind a small ABC with a registry. ``energy`` (the default) is Mumble's kind of
detector made adaptive: frame RMS in dBFS against a noise floor tracked as a low quantile of the
last few seconds, with hysteresis (a higher threshold to start than to stay) and a hangover
(~200 ms) so word endings and short pauses are not clipped. ``push_to_talk`` and
``always_on`` are the two manual modes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .errors import VoiceConfigError

__all__ = [
    "VADS",
    "AlwaysOn",
    "EnergyVad",
    "PushToTalk",
    "VoiceActivityDetector",
    "frame_dbfs",
    "make_vad",
    "register_vad",
]

_FULL_SCALE = 32768.0


def frame_dbfs(pcm: npt.NDArray[np.int16]) -> float:
    """RMS level of a frame in dB relative to full scale (digital silence: -120)."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size == 0:
        return -120.0
    power = float(np.dot(x, x)) / x.size / (_FULL_SCALE * _FULL_SCALE)
    return 10.0 * math.log10(power) if power > 1e-12 else -120.0


class VoiceActivityDetector(ABC):
    """Says, frame by frame, whether someone is talking."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.active = False
        self.frames = 0
        self.active_frames = 0

    def push(self, pcm: npt.NDArray[np.int16], now: float) -> bool:
        """Classify one frame captured at ``now`` (seconds); returns and keeps ``active``."""
        self.active = self._decide(pcm, now)
        self.frames += 1
        self.active_frames += self.active
        return self.active

    @property
    def speech_ratio(self) -> float:
        return self.active_frames / self.frames if self.frames else 0.0

    @abstractmethod
    def _decide(self, pcm: npt.NDArray[np.int16], now: float) -> bool: ...


VADS: dict[str, type[VoiceActivityDetector]] = {}


def register_vad(cls: type[VoiceActivityDetector]) -> type[VoiceActivityDetector]:
    VADS[cls.name] = cls
    return cls


def make_vad(name: str, **options: Any) -> VoiceActivityDetector:
    cls = VADS.get(name)
    if cls is None:
        raise VoiceConfigError(f"no voice activity detector {name!r}", setting="vad",
                               expected=sorted(VADS), actual=name)
    return cls(**options)


@register_vad
class EnergyVad(VoiceActivityDetector):
    """RMS energy against an adaptive noise floor, with hysteresis and a hangover.

    ``start_db`` / ``stay_db`` are the margins above the floor that start and sustain speech;
    ``min_level_dbfs`` keeps near-silence from ever counting. The floor is a low quantile (10th
    percentile) of the frame levels of the last ``floor_window`` seconds: speech has pauses, so
    the quiet end of the window is noise, and a quantile is steadier than the minimum on noise
    whose level fluctuates (pink noise, fans, traffic).
    """

    name = "energy"

    def __init__(self, *, frame_ms: int = 20, start_db: float = 9.0, stay_db: float = 5.0,
                 hangover: float = 0.2, floor_window: float = 3.0, floor_quantile: float = 0.1,
                 min_level_dbfs: float = -55.0) -> None:
        super().__init__()
        if stay_db > start_db:
            raise VoiceConfigError("hysteresis: stay_db must not exceed start_db",
                                   setting="stay_db", expected=f"<= {start_db}", actual=stay_db)
        if not 0.0 <= floor_quantile < 0.5:
            raise VoiceConfigError("the floor is a low quantile", setting="floor_quantile",
                                   expected=(0.0, 0.5), actual=floor_quantile)
        self.start_db = start_db
        self.stay_db = stay_db
        self.min_level_dbfs = min_level_dbfs
        self.floor_quantile = floor_quantile
        self.hangover_frames = max(0, round(hangover * 1000 / frame_ms))
        self._levels: deque[float] = deque(maxlen=max(2, round(floor_window * 1000 / frame_ms)))
        self._hang = 0
        self.level_dbfs = -120.0
        self.noise_floor_dbfs = -120.0

    def _decide(self, pcm: npt.NDArray[np.int16], now: float) -> bool:
        level = frame_dbfs(pcm)
        self.level_dbfs = level
        self._levels.append(level)
        levels = np.fromiter(self._levels, float, len(self._levels))
        floor = self.noise_floor_dbfs = float(np.quantile(levels, self.floor_quantile))
        margin = self.stay_db if self.active else self.start_db
        loud = level >= self.min_level_dbfs and level >= floor + margin
        if loud:
            self._hang = self.hangover_frames
            return True
        if self.active and self._hang > 0:
            self._hang -= 1
            return True
        return False


@register_vad
class PushToTalk(VoiceActivityDetector):
    """Talking while the engine says the key is held (``pressed``)."""

    name = "push_to_talk"

    def __init__(self, **_: object) -> None:
        super().__init__()
        self.pressed = False

    def _decide(self, pcm: npt.NDArray[np.int16], now: float) -> bool:
        return self.pressed


@register_vad
class AlwaysOn(VoiceActivityDetector):
    """Every frame is sent as speech (an open microphone)."""

    name = "always_on"

    def __init__(self, **_: object) -> None:
        super().__init__()

    def _decide(self, pcm: npt.NDArray[np.int16], now: float) -> bool:
        return True
