"""One speaker's stream at each end: :class:`VoiceSender` (capture side: VAD, encoder, packets)
and :class:`VoiceStream` (listener side: jitter buffer, decoder, diagnostics). Both sans-I/O:
frames and bytes in, frames and bytes out, time passed in."""

from __future__ import annotations

import secrets
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from theta_ecs import plugins

from .delay import DelayPolicy
from .diagnostics import VoiceDiagnostics
from .errors import VoiceConfigError, VoiceDecodeError
from .jitter import JitterBuffer, PlayoutFrame, PlayoutKind, PushResult
from .packet import CODEC_IDS, MAX_PAYLOAD, VoicePacket
from .vad import VoiceActivityDetector, make_vad

__all__ = ["TRANSMIT_MODES", "VoiceSender", "VoiceStream", "make_codec"]

CODEC_GROUP = "theta.voice_codecs"
#: ``continuous``: every frame is sent (flagged speech or not; Opus DTX may still skip silence);
#: ``vad``: only frames the detector calls speech (push-to-talk is ``vad`` with that detector).
TRANSMIT_MODES = ("continuous", "vad")
#: An Opus packet this short is DTX silence (libopus: 2 bytes or fewer need not be sent).
DTX_PACKET_BYTES = 2


def make_codec(name: str | None, **options: Any) -> Any:
    """A codec from the ``theta.voice_codecs`` entry points (argument, THETA_VOICE_CODEC, pcm)."""
    return plugins.create(CODEC_GROUP, name, **options)


class VoiceSender:
    """Turns captured 48 kHz mono frames into voice packets for one stream."""

    def __init__(self, stream_id: int, *, codec: str | None = "opus", frame_ms: int = 20,
                 sample_rate: int = 48_000, vad: VoiceActivityDetector | str = "energy",
                 mode: str = "continuous", bitrate: int = 32_000, fec: bool = True,
                 expected_loss: float = 0.05, dtx: bool = False,
                 initial_seq: int | None = None, initial_timestamp: int | None = None) -> None:
        if mode not in TRANSMIT_MODES:
            raise VoiceConfigError(f"transmit mode {mode!r}", setting="mode",
                                   expected=TRANSMIT_MODES, actual=mode)
        if not 0 <= stream_id < 2**32:
            raise VoiceConfigError("a stream id is a u32", setting="stream_id",
                                   expected=(0, 2**32 - 1), actual=stream_id)
        self.stream_id = stream_id
        self.codec = make_codec(codec, sample_rate=sample_rate, frame_ms=frame_ms,
                                bitrate=bitrate, fec=fec, expected_loss=expected_loss, dtx=dtx)
        self.codec_name: str = getattr(self.codec, "name", codec or "pcm")
        if self.codec_name not in CODEC_IDS:
            raise VoiceConfigError(f"codec {self.codec_name!r} has no packet codec id",
                                   setting="codec", expected=sorted(CODEC_IDS),
                                   actual=self.codec_name)
        self.frame_ms = frame_ms
        self.frame_samples = self.codec.frame_samples
        if self.codec_name == "pcm" and 2 * self.frame_samples > MAX_PAYLOAD:
            # Refused here, once, rather than by every push (a PCM frame does not fit a packet).
            raise VoiceConfigError(
                f"a {frame_ms} ms PCM frame is {2 * self.frame_samples} bytes, over the "
                f"{MAX_PAYLOAD}-byte packet payload", setting="frame_ms",
                expected=f"<= {MAX_PAYLOAD // 2 * 1000 // sample_rate} ms for pcm",
                actual=frame_ms)
        self.fec = fec and self.codec_name == "opus"
        self._has_fec = getattr(self.codec, "has_fec", None)
        self.vad = make_vad(vad, frame_ms=frame_ms) if isinstance(vad, str) else vad
        self.mode = mode
        self.seq = secrets.randbits(32) if initial_seq is None else initial_seq % 2**32
        self.timestamp = (secrets.randbits(32) if initial_timestamp is None
                          else initial_timestamp % 2**32)
        self._sending = False  # the previous frame was sent (a new talkspurt sets FLAG_START)
        self.packets_sent = 0
        self.bytes_sent = 0
        self.frames_captured = 0
        self.frames_encoded = 0
        self.encode_seconds = 0.0
        self._first_capture: float | None = None
        self._last_capture = 0.0

    def set_expected_loss(self, fraction: float) -> None:
        """The loss a receiver reported: Opus spends FEC bits for it (capped at 20 %)."""
        setter = getattr(self.codec, "set_expected_loss", None)
        if setter is not None:
            setter(min(max(fraction, 0.0), 1.0))

    def push(self, pcm: npt.NDArray[np.int16], now: float) -> bytes | None:
        """Encode one captured frame; the datagram to send, or None (silence not sent)."""
        speech = self.vad.push(pcm, now)
        self.frames_captured += 1
        if self._first_capture is None:
            self._first_capture = now
        self._last_capture = now
        ts = self.timestamp
        self.timestamp = (self.timestamp + self.frame_samples) % 2**32
        if self.mode == "vad" and not speech and not self._sending:
            return None  # silence, and the listener already knows the talkspurt ended
        t0 = time.perf_counter()
        payload = self.codec.encode(pcm)
        self.encode_seconds += time.perf_counter() - t0
        self.frames_encoded += 1
        # DTX silence (a packet of at most 2 bytes) and, in ``vad`` mode, silence are not sent;
        # but the first frame of it is, flagged non-speech, so the listener can tell the end of a
        # talkspurt from a loss and goes quiet instead of concealing.
        dtx = len(payload) <= DTX_PACKET_BYTES and self.codec_name == "opus"
        quiet = dtx or (self.mode == "vad" and not speech)
        if quiet and not self._sending:
            return None
        packet = VoicePacket(self.stream_id, self.seq, ts, payload, self.codec_name,
                             self.frame_ms, speech=speech and not quiet,
                             start=not self._sending,
                             # Flagged only when the FEC data is really there: the listener
                             # counts a frame rebuilt from it, and conceals otherwise.
                             fec=self.fec and (self._has_fec is None or self._has_fec(payload)))
        self.seq = (self.seq + 1) % 2**32
        self._sending = not quiet
        data = packet.encode()
        self.packets_sent += 1
        self.bytes_sent += len(data)
        return data

    def diagnostics(self) -> VoiceDiagnostics:
        span = self.frames_captured * self.frame_ms / 1000
        return VoiceDiagnostics(
            self.stream_id, "tx", packets_sent=self.packets_sent, bytes_sent=self.bytes_sent,
            vad_active=self.vad.active, speech_ratio=self.vad.speech_ratio,
            encode_ms=1e3 * self.encode_seconds / max(self.frames_encoded, 1),
            bitrate_bps=8 * self.bytes_sent / span if span else 0.0,
        )


class VoiceStream:
    """A remote speaker's stream: packets in (``push``), decoded frames out (``pop``)."""

    def __init__(self, stream_id: int, *, codec: str = "opus", frame_ms: int = 20,
                 sample_rate: int = 48_000, policy: DelayPolicy | str = "percentile",
                 **jitter_options: Any) -> None:
        self.stream_id = stream_id
        self.codec_name = codec
        self.decoder = make_codec(codec, sample_rate=sample_rate, frame_ms=frame_ms)
        self.frame_samples = self.decoder.frame_samples
        self.buffer = JitterBuffer(sample_rate=sample_rate, frame_ms=frame_ms, policy=policy,
                                   fec=codec == "opus", **jitter_options)
        self.decode_errors = 0
        self.mismatched = 0
        self.decode_seconds = 0.0
        self.frames_decoded = 0
        self.last_arrival = -float("inf")
        self._reported = (0, 0)  # (lost, expected) at the last report
        self._report_loss = 0.0

    def push(self, packet: VoicePacket, arrival: float) -> PushResult:
        self.last_arrival = max(self.last_arrival, arrival)
        if packet.codec != self.codec_name:
            self.mismatched += 1
            return PushResult.MISMATCH
        return self.buffer.push(packet, arrival)

    def next_play_time(self) -> float | None:
        return self.buffer.next_play_time()

    def pop(self, now: float) -> tuple[PlayoutFrame, npt.NDArray[np.int16]] | None:
        """The next frame due by ``now``, decoded (call until None)."""
        frame = self.buffer.pop(now)
        if frame is None:
            return None
        t0 = time.perf_counter()
        try:
            if frame.kind is PlayoutKind.NORMAL:
                pcm = self.decoder.decode(frame.payload)
            elif frame.kind is PlayoutKind.FEC and frame.payload is not None:
                pcm = self.decoder.decode_fec(frame.payload)
            else:
                pcm = self.decoder.decode(None)
        except VoiceDecodeError:  # a peer's garbage: conceal it, count it, carry on
            self.decode_errors += 1
            pcm = self.decoder.decode(None)
        self.decode_seconds += time.perf_counter() - t0
        self.frames_decoded += 1
        return frame, pcm

    @property
    def loss_rate(self) -> float:
        s = self.buffer.stats
        expected = s.good + s.lost + s.late
        return s.lost / expected if expected else 0.0

    def report_loss(self) -> float:
        """The loss since the previous call (RTCP's fraction lost, for the listener's report):
        the sender tunes FEC to the network as it is now, which :attr:`loss_rate` (the whole
        call's average) hides after a long clean stretch. An interval with no packets expected
        (a pause in speech) repeats the previous figure."""
        s = self.buffer.stats
        expected = s.good + s.lost + s.late
        lost0, expected0 = self._reported
        self._reported = (s.lost, expected)
        if expected > expected0:
            self._report_loss = min(max((s.lost - lost0) / (expected - expected0), 0.0), 1.0)
        return self._report_loss

    def diagnostics(self) -> VoiceDiagnostics:
        s = self.buffer.stats
        b = self.buffer
        return VoiceDiagnostics(
            self.stream_id, "rx", packets_received=s.received, packets_good=s.good,
            packets_late=s.late, packets_lost=s.lost, packets_duplicate=s.duplicate,
            packets_out_of_window=s.out_of_window,
            packets_mismatched=s.mismatched + self.mismatched, decode_errors=self.decode_errors,
            resyncs=s.resyncs, concealed_samples=s.concealed_frames * self.frame_samples,
            concealment_events=s.concealment_events, interruptions=s.interruptions,
            interruption_ms=1e3 * s.interruption_s, fec_recoveries=s.fec_recoveries,
            current_delay_ms=1e3 * b.current_delay, target_delay_ms=1e3 * b.target_delay,
            loss_rate=self.loss_rate, vad_active=b.talking,
            speech_ratio=s.speech_frames / s.played_frames if s.played_frames else 0.0,
            decode_ms=1e3 * self.decode_seconds / max(self.frames_decoded, 1),
        )
