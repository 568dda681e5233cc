"""Mixing several speakers for one listener (sans-I/O): ``push(speaker, pcm, now)``, ``pop(now)``.

Each speaker's decoded audio waits in its own bounded queue (streams play on their own timelines,
so a frame of one may be due a little before a frame of another); every ``pop`` takes one output
frame from each queue, applies the listener's mute and volume for that speaker and, when positions
are known, a distance gain and a constant-power stereo pan, and sums with saturation to int16
stereo.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import VoiceConfigError

__all__ = ["SpeakerMix", "VoiceMixer", "pan_gains", "spatial_gain"]

Vec3 = tuple[float, float, float]


def spatial_gain(distance: float, *, ref_distance: float = 1.0, rolloff: float = 1.0,
                 max_distance: float = 50.0) -> float:
    """Inverse-distance gain (OpenAL's clamped model): 1 inside ``ref_distance``, silent beyond
    ``max_distance``."""
    if distance >= max_distance:
        return 0.0
    d = max(distance, ref_distance)
    return ref_distance / (ref_distance + rolloff * (d - ref_distance))


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) gains for ``pan`` in [-1 (left), 1 (right)]."""
    angle = (min(max(pan, -1.0), 1.0) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def _rotate_into_listener(offset: Vec3, rotation: tuple[float, float, float, float]) -> Vec3:
    """``offset`` in the listener's frame: the inverse of the listener's rotation applied."""
    x, y, z, w = rotation
    # Conjugate quaternion rotation of a vector: v' = q* v q.
    qx, qy, qz = -x, -y, -z
    vx, vy, vz = offset
    tx = 2.0 * (qy * vz - qz * vy)
    ty = 2.0 * (qz * vx - qx * vz)
    tz = 2.0 * (qx * vy - qy * vx)
    return (vx + w * tx + (qy * tz - qz * ty), vy + w * ty + (qz * tx - qx * tz),
            vz + w * tz + (qx * ty - qy * tx))


@dataclass
class SpeakerMix:
    """The listener's settings for one speaker."""

    volume: float = 1.0
    muted: bool = False
    position: Vec3 | None = None


class VoiceMixer:
    """One listener's mix of every speaker: stereo int16 frames of ``frame_samples``."""

    def __init__(self, *, frame_samples: int = 960, max_queue_frames: int = 8,
                 spatial: bool = True, ref_distance: float = 1.0, rolloff: float = 1.0,
                 max_distance: float = 50.0) -> None:
        self.frame_samples = frame_samples
        self.max_queue = max_queue_frames * frame_samples
        self.spatial = spatial
        self.ref_distance = ref_distance
        self.rolloff = rolloff
        self.max_distance = max_distance
        self.listener_position: Vec3 = (0.0, 0.0, 0.0)
        self.listener_rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
        self.speakers: dict[int, SpeakerMix] = {}
        self._queues: dict[int, deque[npt.NDArray[np.int16]]] = {}
        self._queued: dict[int, int] = {}
        self._heads: dict[int, int] = {}  # samples already taken from each queue's first chunk
        self.dropped_samples = 0  # a speaker ahead of the mix by more than the queue holds
        self.clipped_samples = 0
        self.unplaced_gains = 0  # gains asked for a speaker whose position was not finite
        self.frames_mixed = 0

    # -- settings -------------------------------------------------------------------------------
    def speaker(self, speaker: int) -> SpeakerMix:
        mix = self.speakers.get(speaker)
        if mix is None:
            mix = self.speakers[speaker] = SpeakerMix()
        return mix

    def set_volume(self, speaker: int, volume: float) -> None:
        if not 0.0 <= volume <= 4.0 or not math.isfinite(volume):
            raise VoiceConfigError("volume is a gain in [0, 4]", setting="volume",
                                   expected=(0.0, 4.0), actual=volume)
        self.speaker(speaker).volume = volume

    def mute(self, speaker: int, muted: bool = True) -> None:
        self.speaker(speaker).muted = muted

    def set_listener(self, position: Vec3, rotation: tuple[float, float, float, float] = (
            0.0, 0.0, 0.0, 1.0)) -> None:
        self.listener_position = position
        self.listener_rotation = rotation

    def set_position(self, speaker: int, position: Vec3 | None) -> None:
        self.speaker(speaker).position = position

    def update_from_world(self, world: Any, listener: int, speakers: Mapping[int, int]) -> None:
        """Positions from the ECS: ``theta.Position`` (and the listener's ``theta.Rotation``,
        when it has one) of the listener entity and of each speaker's entity."""
        from theta_ecs.stdcomponents import Position, Rotation

        pos = world.get(listener, Position)
        rot = (world.get(listener, Rotation) if world.has(listener, Rotation)
               else (0.0, 0.0, 0.0, 1.0))
        self.set_listener(tuple(float(v) for v in pos),  # type: ignore[arg-type]
                          tuple(float(v) for v in rot))  # type: ignore[arg-type]
        for speaker, entity in speakers.items():
            if world.is_alive(entity) and world.has(entity, Position):
                self.set_position(speaker, tuple(float(v) for v in world.get(entity, Position)))  # type: ignore[arg-type]
            else:
                self.set_position(speaker, None)

    def gains(self, speaker: int) -> tuple[float, float]:
        """(left, right) gains the listener applies to ``speaker`` now."""
        mix = self.speaker(speaker)
        if mix.muted:
            return 0.0, 0.0
        if not self.spatial or mix.position is None:
            return mix.volume * math.sqrt(0.5), mix.volume * math.sqrt(0.5)
        offset = tuple(p - q for p, q in zip(mix.position, self.listener_position))
        local = _rotate_into_listener(offset, self.listener_rotation)  # type: ignore[arg-type]
        distance = math.sqrt(sum(c * c for c in local))
        if not math.isfinite(distance):
            # A NaN or infinite position or rotation (replicated from a peer): heard unplaced,
            # since a NaN gain would turn the whole mix, every speaker, into NaN.
            self.unplaced_gains += 1
            return mix.volume * math.sqrt(0.5), mix.volume * math.sqrt(0.5)
        gain = mix.volume * spatial_gain(distance, ref_distance=self.ref_distance,
                                         rolloff=self.rolloff, max_distance=self.max_distance)
        # Listener looks down -z, +x is to the right (OpenXR/OpenGL convention).
        pan = local[0] / distance if distance > 1e-6 else 0.0
        left, right = pan_gains(pan)
        return gain * left, gain * right

    # -- audio ----------------------------------------------------------------------------------
    def push(self, speaker: int, pcm: npt.NDArray[np.int16], now: float) -> None:
        """Queue ``speaker``'s decoded audio (it plays from the next ``pop``)."""
        arr = np.asarray(pcm)
        if arr.dtype != np.int16 or arr.ndim != 1:
            raise VoiceConfigError("the mixer takes mono int16 frames", setting="pcm",
                                   expected="int16 (n,)", actual=f"{arr.dtype} {arr.shape}")
        queue = self._queues.get(speaker)
        if queue is None:
            queue = self._queues[speaker] = deque()
            self._queued[speaker] = 0
            self._heads[speaker] = 0
            self.speaker(speaker)
        queue.append(arr)
        self._queued[speaker] += arr.shape[0]
        while self._queued[speaker] > self.max_queue:  # bounded: drop the oldest audio
            old = queue.popleft()
            taken = len(old) - self._heads[speaker]
            self._heads[speaker] = 0
            self._queued[speaker] -= taken
            self.dropped_samples += taken

    def _take(self, speaker: int, n: int) -> npt.NDArray[np.float32] | None:
        queue = self._queues[speaker]
        if not queue:
            return None
        out = np.zeros(n, np.float32)
        filled = 0
        while filled < n and queue:
            head = self._heads[speaker]
            chunk = queue[0]
            k = min(n - filled, len(chunk) - head)
            out[filled:filled + k] = chunk[head:head + k]
            filled += k
            if head + k == len(chunk):
                queue.popleft()
                self._heads[speaker] = 0
            else:
                self._heads[speaker] = head + k
        self._queued[speaker] -= filled
        return out

    def pop(self, now: float) -> npt.NDArray[np.int16]:
        """One stereo frame (``frame_samples`` x 2) of every speaker mixed; silence if none."""
        n = self.frame_samples
        acc = np.zeros((n, 2), np.float32)
        for speaker in list(self._queues):
            mono = self._take(speaker, n)
            if mono is None:
                continue
            left, right = self.gains(speaker)
            if left == 0.0 and right == 0.0:
                continue
            acc[:, 0] += left * mono
            acc[:, 1] += right * mono
        clipped = np.abs(acc) > 32767.0
        self.clipped_samples += int(np.count_nonzero(clipped))
        self.frames_mixed += 1
        return np.clip(np.rint(acc), -32768, 32767).astype(np.int16)

    def forget(self, speaker: int) -> None:
        """Drop a speaker who left (their settings too)."""
        self._queues.pop(speaker, None)
        self._queued.pop(speaker, None)
        self._heads.pop(speaker, None)
        self.speakers.pop(speaker, None)
