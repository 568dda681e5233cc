"""Capture and playback: sounddevice (PortAudio) streams and the headless ``null`` source.

The PortAudio callback does one thing: move frames through a :class:`RingBuffer` (no decoding,
no allocation beyond the copy, no Python-level locks held for long). The engine's side writes and
reads the ring at 48 kHz; when the device runs at another rate the engine side resamples with
soxr's streaming resampler. Underruns (the device wanted audio the ring did not have) and overruns
(audio that found the ring full) are counted, never raised.

On a machine with no sound card, ``make`` points ALSA's default device at the null plugin
(``pcm.!default { type null }``); it never paces, so callbacks run as fast as the CPU allows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import AudioDeviceError, BackendUnavailableError, VoiceConfigError

__all__ = ["NullAudioSource", "RingBuffer", "SoundDeviceSink", "SoundDeviceSource"]

RATE = 48_000


class RingBuffer:
    """A bounded FIFO of int16 frames (``channels`` per frame) shared by one writer and one
    reader thread. ``write`` keeps what fits and counts the rest as overrun; ``read_into`` fills
    what it has and zeroes the rest, counting an underrun."""

    def __init__(self, capacity: int, channels: int = 1) -> None:
        if capacity <= 0 or channels <= 0:
            raise VoiceConfigError("ring capacity and channels must be positive",
                                   setting="capacity", expected="> 0", actual=capacity)
        self._buf = np.zeros((capacity, channels), np.int16)
        self.capacity = capacity
        self.channels = channels
        self._read = 0
        self._size = 0
        self._lock = threading.Lock()
        self.overrun_frames = 0
        self.overruns = 0
        self.underrun_frames = 0
        self.underruns = 0

    def __len__(self) -> int:
        return self._size

    def write(self, pcm: npt.NDArray[np.int16]) -> int:
        """Append frames; returns how many fitted."""
        data = np.asarray(pcm, np.int16).reshape(-1, self.channels)
        with self._lock:
            free = self.capacity - self._size
            n = min(free, len(data))
            if n < len(data):
                self.overruns += 1
                self.overrun_frames += len(data) - n
            start = (self._read + self._size) % self.capacity
            first = min(n, self.capacity - start)
            self._buf[start:start + first] = data[:first]
            self._buf[: n - first] = data[first:n]
            self._size += n
        return n

    def read_into(self, out: npt.NDArray[np.int16]) -> int:
        """Fill ``out`` (frames x channels) from the ring; returns frames that were real audio."""
        want = out.shape[0]
        with self._lock:
            n = min(want, self._size)
            first = min(n, self.capacity - self._read)
            out[:first] = self._buf[self._read:self._read + first]
            out[first:n] = self._buf[: n - first]
            self._read = (self._read + n) % self.capacity
            self._size -= n
            if n < want:
                self.underruns += 1
                self.underrun_frames += want - n
        out[n:] = 0
        return n

    def read(self, max_frames: int) -> npt.NDArray[np.int16]:
        """Up to ``max_frames`` frames, without counting an underrun (a capture reader)."""
        with self._lock:
            n = min(max_frames, self._size)
        out = np.empty((n, self.channels), np.int16)
        with self._lock:
            first = min(n, self.capacity - self._read)
            out[:first] = self._buf[self._read:self._read + first]
            out[first:n] = self._buf[: n - first]
            self._read = (self._read + n) % self.capacity
            self._size -= n
        return out


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: PortAudio itself is missing
        raise BackendUnavailableError(
            f"sounddevice backends need sounddevice and libportaudio2: {exc}") from exc
    return sounddevice


def _resampler(src: int, dst: int, channels: int) -> Any:
    import soxr

    return soxr.ResampleStream(src, dst, channels, dtype="int16", quality="HQ")


class _PortAudioStream:
    """What a sounddevice sink and source share: a started PortAudio stream whose callback
    moves frames through ``ring``, and closing it once."""

    ring: RingBuffer
    closed: bool
    _stream: Any

    def _open(self, direction: str, callback: Callable[..., None], *, channels: int,
              device: Any, device_rate: int | None, buffer_ms: int, blocksize: int) -> int:
        """Open and start the ``direction`` ("input" or "output") stream; returns the device
        rate. The ring exists before ``start``, so the first callback finds it."""
        sd = _sounddevice()
        try:
            info = sd.query_devices(device, direction)
            rate = int(device_rate or info["default_samplerate"])
            self.ring = RingBuffer(rate * buffer_ms // 1000, channels)
            stream = sd.InputStream if direction == "input" else sd.OutputStream
            self._stream = stream(samplerate=rate, channels=channels, dtype="int16",
                                  device=device, blocksize=blocksize, callback=callback)
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"cannot open the {direction} device {device!r}: {exc}") from exc
        return rate

    @property
    def overruns(self) -> int:
        return self.ring.overruns

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._stream.stop()
            self._stream.close()


class SoundDeviceSink(_PortAudioStream):
    """The ``sounddevice`` entry of ``theta.audio_sinks``: plays 48 kHz int16 (mono or stereo)
    through a PortAudio output stream."""

    def __init__(self, *, channels: int = 2, device: Any = None, device_rate: int | None = None,
                 buffer_ms: int = 200, blocksize: int = 0, **_: object) -> None:
        self.callbacks = 0
        self.status_underflows = 0
        rate = self._open("output", self._callback, channels=channels, device=device,
                          device_rate=device_rate, buffer_ms=buffer_ms, blocksize=blocksize)
        self.device_rate = rate
        self.channels = channels
        self._resample = _resampler(RATE, rate, channels) if rate != RATE else None
        self.closed = False

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        self.callbacks += 1
        if status.output_underflow:
            self.status_underflows += 1
        self.ring.read_into(outdata)

    def play(self, pcm: npt.NDArray[np.int16]) -> None:
        if self.closed:
            raise AudioDeviceError("play() after close()")
        arr = np.asarray(pcm)
        if arr.dtype != np.int16:
            raise VoiceConfigError(f"audio must be int16 PCM, got {arr.dtype}", setting="pcm",
                                   expected="int16", actual=str(arr.dtype))
        if arr.ndim == 1:
            arr = np.repeat(arr[:, None], self.channels, axis=1) if self.channels > 1 else arr
        elif arr.ndim == 2 and arr.shape[1] != self.channels:
            if self.channels != 1:
                raise VoiceConfigError(
                    f"{arr.shape[1]}-channel audio for a {self.channels}-channel sink",
                    setting="channels", expected=self.channels, actual=arr.shape[1])
            arr = arr.mean(axis=1).astype(np.int16)  # a mix for a mono device
        if self._resample is not None:
            arr = self._resample.resample_chunk(arr.reshape(-1, self.channels))
        self.ring.write(arr)

    @property
    def underruns(self) -> int:
        return self.ring.underruns


class SoundDeviceSource(_PortAudioStream):
    """The ``sounddevice`` entry of ``theta.audio_sources``: captures mono int16 and hands it
    out at 48 kHz."""

    def __init__(self, *, device: Any = None, device_rate: int | None = None,
                 buffer_ms: int = 500, blocksize: int = 0, **_: object) -> None:
        self.callbacks = 0
        self.status_overflows = 0
        rate = self._open("input", self._callback, channels=1, device=device,
                          device_rate=device_rate, buffer_ms=buffer_ms, blocksize=blocksize)
        self.sample_rate = RATE
        self.device_rate = rate
        self._resample = _resampler(rate, RATE, 1) if rate != RATE else None
        self.closed = False

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        self.callbacks += 1
        if status.input_overflow:
            self.status_overflows += 1
        self.ring.write(indata)

    def read(self, max_samples: int) -> npt.NDArray[np.int16]:
        """Captured audio at 48 kHz, up to about ``max_samples`` (never blocks)."""
        if self.closed:
            return np.zeros(0, np.int16)
        want = max_samples if self._resample is None else (
            max_samples * self.device_rate // RATE)
        raw = self.ring.read(want)[:, 0]
        if self._resample is not None:
            out: npt.NDArray[np.int16] = self._resample.resample_chunk(raw)
            return out
        return raw


class NullAudioSource:
    """The ``null`` entry of ``theta.audio_sources``: no microphone (a headless server), or a
    recording played in as if captured (bots, tests)."""

    def __init__(self, *, signal: npt.NDArray[np.int16] | None = None, loop: bool = False,
                 **_: object) -> None:
        self.sample_rate = RATE
        self._signal = (np.zeros(0, np.int16) if signal is None
                        else np.asarray(signal, np.int16).reshape(-1))
        self._pos = 0
        self.loop = loop and len(self._signal) > 0
        self.closed = False
        self.samples_read = 0

    def read(self, max_samples: int) -> npt.NDArray[np.int16]:
        if self.closed or max_samples <= 0:
            return np.zeros(0, np.int16)
        parts = [self._signal[self._pos:self._pos + max_samples]]
        self._pos += len(parts[0])
        got = len(parts[0])
        while self.loop and got < max_samples:  # a loop, not recursion: a short signal is fine
            self._pos = min(max_samples - got, len(self._signal))
            parts.append(self._signal[:self._pos])
            got += self._pos
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.samples_read += len(out)
        return out

    def close(self) -> None:
        self.closed = True
