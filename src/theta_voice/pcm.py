"""The PCM voice codec: 16-bit little-endian samples, no compression; the always-there baseline."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import VoiceConfigError, VoiceDecodeError

__all__ = ["PcmCodec", "VoiceDecodeError"]


class PcmCodec:
    """48 kHz mono, 20 ms frames by default; packet loss is concealed with silence."""

    name = "pcm"

    def __init__(self, sample_rate: int = 48_000, frame_ms: int = 20, **_: object) -> None:
        if sample_rate <= 0 or frame_ms <= 0:
            raise VoiceConfigError("sample rate and frame length must be positive",
                                   setting="frame_ms", expected="> 0", actual=frame_ms)
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        arr = np.asarray(pcm)
        if arr.dtype != np.int16 or arr.shape != (self.frame_samples,):
            raise VoiceConfigError(
                f"expected {self.frame_samples} int16 samples, got {arr.shape} {arr.dtype}",
                setting="pcm", expected=(self.frame_samples,), actual=arr.shape,
            )
        return arr.astype("<i2", copy=False).tobytes()

    def decode(self, packet: bytes | None) -> npt.NDArray[np.int16]:
        if packet is None:
            return np.zeros(self.frame_samples, np.int16)
        if len(packet) != 2 * self.frame_samples:
            raise VoiceDecodeError(
                f"PCM packet of {len(packet)} bytes, expected {2 * self.frame_samples}",
                expected=2 * self.frame_samples, actual=len(packet),
            )
        return np.frombuffer(packet, dtype="<i2").astype(np.int16)
