"""The voice pump shared by tests and benchmarks: a signal through a sender, a loopback link
(theta_ecs's seeded link model), a listener's stream, and back out as audio on the listener's
playout timeline.

Time is simulated and event-driven (capture instants, arrivals, playout instants), so a run is
exact and repeatable; the CPU time of encoding and decoding is measured for real and reported
beside it. Mouth-to-ear delay of a frame: its playout time minus the capture time of its first
sample, plus the codec's lookahead (6.5 ms for Opus) and the mean encode and decode time. Device
buffers (capture and playback blocks) are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from theta_ecs.backends.loopback import LinkModel, LoopbackLink

from .diagnostics import VoiceDiagnostics
from .jitter import PlayoutKind
from .packet import VoicePacket
from .stream import VoiceSender, VoiceStream

__all__ = ["SimResult", "run_link"]


@dataclass
class SimResult:
    """What the listener heard and how the stream fared."""

    output: npt.NDArray[np.int16]  # the listener's audio, sample i played at time i / rate
    kinds: dict[str, int]
    mouth_to_ear_s: npt.NDArray[np.float64]  # per frame played from its own packet
    sender: VoiceDiagnostics
    receiver: VoiceDiagnostics
    bytes_sent: int
    packets_sent: int
    duration_s: float
    lookahead_s: float
    cpu_s: float  # encode + decode, per frame of audio
    delays_ms: list[float] = field(default_factory=list)  # buffer delay at each frame played

    def aligned(self, length: int) -> npt.NDArray[np.int16]:
        """The output shifted back by the median mouth-to-ear delay, cut to ``length``."""
        shift = round(float(np.median(self.mouth_to_ear_s)) * 48_000) if len(
            self.mouth_to_ear_s) else 0
        out = self.output[shift: shift + length]
        return np.pad(out, (0, length - len(out)))

    @property
    def bitrate_bps(self) -> float:
        return 8 * self.bytes_sent / self.duration_s if self.duration_s else 0.0


def run_link(signal: npt.NDArray[np.int16], model: LinkModel | None = None, *,
             frame_ms: int = 20, codec: str = "opus", sender_options: dict[str, Any] | None = None,
             stream_options: dict[str, Any] | None = None, sample_rate: int = 48_000,
             tail_s: float = 1.0) -> SimResult:
    """Send ``signal`` (48 kHz mono int16) one frame at a time over a link impaired by ``model``
    and play it out at the other end."""
    sender = VoiceSender(7, codec=codec, frame_ms=frame_ms, initial_seq=1000,
                         initial_timestamp=123_456, **(sender_options or {}))
    stream = VoiceStream(7, codec=codec, frame_ms=frame_ms, **(stream_options or {}))
    link = LoopbackLink(model or LinkModel())
    n = sender.frame_samples
    frames = signal[: len(signal) // n * n].reshape(-1, n)
    frame_s = n / sample_rate
    duration = len(frames) * frame_s
    end = duration + tail_s
    out = np.zeros(int((end + 1.0) * sample_rate), np.int16)
    kinds: dict[str, int] = {k.value: 0 for k in PlayoutKind}
    m2e: list[float] = []
    delays: list[float] = []
    k = 0
    now = 0.0
    while True:
        candidates = [t for t in (
            (k + 1) * frame_s if k < len(frames) else None,
            link.next_arrival(), stream.next_play_time()) if t is not None]
        if not candidates:
            break
        now = max(now, min(candidates))
        if now > end:
            break
        if k < len(frames) and now >= (k + 1) * frame_s - 1e-12:
            data = sender.push(frames[k], now)
            if data is not None:
                link.send(data, now)
            k += 1
        for arrival, data in link.receive_timed(now):
            stream.push(VoicePacket.decode(data), arrival)
        while (item := stream.pop(now)) is not None:
            frame, pcm = item
            kinds[frame.kind.value] += 1
            start = round(frame.play_time * sample_rate)
            if start >= 0 and start + len(pcm) <= len(out):
                out[start: start + len(pcm)] = pcm
            delays.append(stream.buffer.current_delay * 1e3)
            if frame.kind is PlayoutKind.NORMAL:
                captured = ((frame.timestamp - 123_456) % 2**32) / sample_rate
                m2e.append(frame.play_time - captured)
    lookahead = getattr(getattr(sender.codec, "encoder", None), "lookahead_samples", 0)
    cpu = (sender.encode_seconds + stream.decode_seconds) / max(len(frames), 1)
    lookahead_s = lookahead / sample_rate
    return SimResult(
        output=out, kinds=kinds,
        mouth_to_ear_s=np.asarray(m2e) + lookahead_s + cpu,
        sender=sender.diagnostics(), receiver=stream.diagnostics(),
        bytes_sent=sender.bytes_sent, packets_sent=sender.packets_sent, duration_s=duration,
        lookahead_s=lookahead_s, cpu_s=cpu, delays_ms=delays,
    )
