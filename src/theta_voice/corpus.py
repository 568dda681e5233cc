"""Labelled speech for tests and benchmarks: espeak-ng sentences with pauses, at 48 kHz, with
noise mixed in at a chosen SNR and a speech/non-speech label per frame.

Labels come from the synthesis, not from a detector: a frame is speech when the clean synthesized
signal in it is louder than ``label_dbfs`` (espeak-ng writes true digital silence between
sentences; the threshold keeps the quiet tails of words). The SNR is measured over the speech
frames only, as VAD studies do.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import BackendUnavailableError
from .vad import frame_dbfs

__all__ = ["SENTENCES", "SpeechClip", "add_noise", "pink_noise", "speech_clip", "synthesize"]

SAMPLE_RATE = 48_000
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
)


@dataclass(frozen=True)
class SpeechClip:
    """Clean speech, the same with noise, and one label per ``frame_ms`` frame."""

    clean: npt.NDArray[np.int16]
    noisy: npt.NDArray[np.int16]
    labels: npt.NDArray[np.bool_]
    frame_ms: int
    snr_db: float | None
    sample_rate: int = SAMPLE_RATE

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    def frames(self, noisy: bool = True) -> npt.NDArray[np.int16]:
        """The signal as (n_frames, frame_samples)."""
        x = self.noisy if noisy else self.clean
        n = len(x) // self.frame_samples
        return x[: n * self.frame_samples].reshape(n, self.frame_samples)


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise BackendUnavailableError("speech fixtures need espeak-ng (apt-get install espeak-ng)")
    return exe


@functools.lru_cache(maxsize=32)
def synthesize(text: str, voice: str = "en-us", speed: int = 165) -> npt.NDArray[np.int16]:
    """``text`` spoken by espeak-ng, resampled to 48 kHz int16 (soxr)."""
    import soxr

    out = subprocess.run([_espeak(), "-v", voice, "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True, timeout=60).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
    y = soxr.resample(pcm, rate, SAMPLE_RATE, quality="HQ")
    result: npt.NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return result


def pink_noise(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """1/f noise (spectrally shaped white noise), unit RMS: closer to room noise than white."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    result: npt.NDArray[np.float64] = pink / np.sqrt(np.mean(pink * pink))
    return result


def add_noise(clean: npt.NDArray[np.int16], labels: npt.NDArray[np.bool_], frame_samples: int,
              snr_db: float, rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """``clean`` plus pink noise at ``snr_db`` below the speech frames' power."""
    x = clean.astype(np.float64)
    mask = np.repeat(labels, frame_samples)
    mask = np.pad(mask, (0, max(0, len(x) - len(mask))))[: len(x)]
    speech_power = float(np.mean(x[mask] ** 2)) if mask.any() else float(np.mean(x**2))
    noise = pink_noise(len(x), rng) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return np.clip(np.rint(x + noise), -32768, 32767).astype(np.int16)


def speech_clip(*, sentences: int = 4, snr_db: float | None = None, frame_ms: int = 20,
                seed: int = 0, label_dbfs: float = -50.0, voice: str = "en-us") -> SpeechClip:
    """``sentences`` sentences separated by 0.3 to 1.2 s pauses (seeded), with 0.5 s of
    leading silence; noise at ``snr_db`` (None: none)."""
    rng = np.random.default_rng(seed)
    parts: list[npt.NDArray[np.int16]] = [np.zeros(SAMPLE_RATE // 2, np.int16)]
    for i in range(sentences):
        parts.append(synthesize(SENTENCES[(seed + i) % len(SENTENCES)], voice))
        parts.append(np.zeros(int(SAMPLE_RATE * rng.uniform(0.3, 1.2)), np.int16))
    clean = np.concatenate(parts)
    fs = SAMPLE_RATE * frame_ms // 1000
    n = len(clean) // fs
    clean = clean[: n * fs]
    labels = np.array([frame_dbfs(f) > label_dbfs for f in clean.reshape(n, fs)])
    noisy = clean if snr_db is None else add_noise(clean, labels, fs, snr_db, rng)
    return SpeechClip(clean, noisy, labels, frame_ms, snr_db)
