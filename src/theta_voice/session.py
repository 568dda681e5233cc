"""A voice session for one participant (sans-I/O): our capture goes out, every remote speaker's
stream comes in and is mixed for us.

``capture(pcm, now)`` and ``receive(data, now)`` take input; ``datagrams_to_send(now)`` and
``pop(now)`` give output. Voice packets and listener reports are opaque bytes to the carrier:
:func:`pump` moves them over any :class:`theta_ecs.interfaces.Transport` (the loopback link in
tests; a QUIC datagram channel wherever a transport offers one). Peer faults are dropped and
counted in :attr:`VoiceSession.dropped`, never raised.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import numpy as np
import numpy.typing as npt

from .diagnostics import DiagnosticsExporter, DiagnosticsView, VoiceDiagnostics
from .errors import VoiceConfigError, VoicePacketError
from .mixer import VoiceMixer
from .packet import VoicePacket, VoiceReport, is_report
from .stream import VoiceSender, VoiceStream

__all__ = ["FORMAT_PROBATION", "VoiceSession", "pump"]

#: Packets in a row, all in one other codec or frame length, that replace a speaker's stream.
FORMAT_PROBATION = 3


class VoiceSession:
    """One participant: a sender for our microphone, a stream per remote speaker, one mix."""

    def __init__(self, stream_id: int, *, codec: str = "opus", frame_ms: int = 20,
                 max_streams: int = 32, report_interval: float = 1.0, stream_timeout: float = 30.0,
                 sender_options: dict[str, Any] | None = None,
                 stream_options: dict[str, Any] | None = None,
                 mixer: VoiceMixer | None = None) -> None:
        if max_streams < 1:
            raise VoiceConfigError("max_streams >= 1", setting="max_streams", expected=">= 1",
                                   actual=max_streams)
        self.sender = VoiceSender(stream_id, codec=codec, frame_ms=frame_ms,
                                  **(sender_options or {}))
        self.frame_ms = frame_ms
        self.max_streams = max_streams
        self.report_interval = report_interval
        self.stream_timeout = stream_timeout
        self.stream_options = dict(stream_options or {})
        self.streams: dict[int, VoiceStream] = {}
        self.mixer = mixer or VoiceMixer(frame_samples=self.sender.frame_samples)
        self.dropped: Counter[str] = Counter()
        self.reports_received = 0
        self._loss_reports: deque[tuple[float, float]] = deque(maxlen=256)  # (arrival, loss)
        self._outbox: list[bytes] = []
        self._mic = np.zeros(0, np.int16)  # captured samples short of a whole frame
        self._next_report = 0.0
        self._exporter = DiagnosticsExporter()
        self._dropped_exported: dict[str, int] = {}
        self._metrics: Any = None  # a MetricsExporter, once watch_metrics() is called
        self._views: dict[int, DiagnosticsView] = {}
        #: stream id -> (codec, frame_ms) of packets that do not fit the stream, and how many
        self._format_probation: dict[int, tuple[tuple[str, int], int]] = {}

    # -- sending --------------------------------------------------------------------------------
    def capture(self, pcm: npt.NDArray[np.int16], now: float) -> None:
        """One captured frame of our microphone."""
        data = self.sender.push(pcm, now)
        if data is not None:
            self._outbox.append(data)

    def capture_from(self, source: Any, now: float) -> int:
        """Read what an :class:`theta_ecs.interfaces.AudioSource` has captured and send it in
        whole frames (the remainder waits for the next call); returns frames captured. At most
        half a second is taken per call, so a stalled engine does not send a burst."""
        n = self.sender.frame_samples
        data = source.read(n * 25)
        mic = np.concatenate([self._mic, np.asarray(data, np.int16).reshape(-1)])
        frames = len(mic) // n
        for k in range(frames):
            # Frame k of this batch ended (frames - 1 - k) frames before now.
            self.capture(mic[k * n:(k + 1) * n], now - (frames - 1 - k) * n / 48_000)
        self._mic = mic[frames * n:].copy()
        return frames

    def play_to(self, sink: Any, now: float) -> npt.NDArray[np.int16]:
        """Mix the frame due now and hand it to an :class:`theta_ecs.interfaces.AudioSink`."""
        frame = self.pop(now)
        sink.play(frame)
        return frame

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Voice packets, and each second a report on every stream we hear."""
        if now >= self._next_report and self.streams:
            self._next_report = now + self.report_interval
            for stream in self.streams.values():
                s = stream.buffer.stats
                if s.good + s.lost + s.late == 0:
                    continue  # nothing played yet: a 0 % report would switch the sender's FEC off
                self._outbox.append(VoiceReport(
                    stream.stream_id, stream.report_loss(),
                    round(1e3 * stream.buffer.current_delay)).encode())
        out, self._outbox = self._outbox, []
        return out

    # -- receiving ------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float, source: int | None = None) -> None:
        """One datagram from the carrier's voice channel. ``source``: the stream the carrier
        verified as the sender (a relay that binds streams to sessions); a voice packet that
        claims another stream is dropped (``forged_stream``)."""
        try:
            if is_report(data):
                report = VoiceReport.decode(data)
                if report.stream_id == self.sender.stream_id:
                    self.reports_received += 1
                    self._feed_back_loss(report.loss, now)
                return
            packet = VoicePacket.decode(data)
        except VoicePacketError as exc:
            self.dropped[exc.reason] += 1
            return
        if source is not None and packet.stream_id != source:
            self.dropped["forged_stream"] += 1
            return
        if packet.stream_id == self.sender.stream_id:
            self.dropped["own_stream"] += 1  # an echo of our own voice
            return
        stream = self.streams.get(packet.stream_id)
        if stream is None:
            self._expire(now)
            if len(self.streams) >= self.max_streams:
                self.dropped["too_many_streams"] += 1
                return
            stream = self._new_stream(packet)
        else:
            stream = self._check_format(stream, packet)
        stream.push(packet, now)

    def _new_stream(self, packet: VoicePacket) -> VoiceStream:
        stream = self.streams[packet.stream_id] = VoiceStream(
            packet.stream_id, codec=packet.codec, frame_ms=packet.frame_ms,
            **self.stream_options)
        self._watch(stream)
        return stream

    def _check_format(self, stream: VoiceStream, packet: VoicePacket) -> VoiceStream:
        """The stream for ``packet``: ``stream`` while the packet fits its codec and frame
        length (or while a different one is on probation; the stream counts it mismatched), a new
        stream once ``FORMAT_PROBATION`` packets in a row agree on another format: the speaker
        restarted with other settings, or a forged first packet had set the wrong ones. The
        listener's mute and volume for the speaker stay."""
        sid = packet.stream_id
        fmt = (packet.codec, packet.frame_ms)
        if fmt == (stream.codec_name, stream.buffer.frame_ms):
            self._format_probation.pop(sid, None)
            return stream
        pending, count = self._format_probation.get(sid, (fmt, 0))
        count = count + 1 if pending == fmt else 1
        if count < FORMAT_PROBATION:
            self._format_probation[sid] = (fmt, count)
            return stream
        del self._format_probation[sid]
        self.dropped["format_change"] += 1
        self._unwatch(sid)
        return self._new_stream(packet)

    def _feed_back_loss(self, loss: float, now: float) -> None:
        """Tune our FEC to the worst loss any listener reported in the last two intervals:
        in a mesh every listener reports on our stream, and taking the latest report let a
        clean listener's switch FEC off for one that loses 10 %."""
        reports = self._loss_reports
        reports.append((now, loss))
        while reports and reports[0][0] < now - 2 * self.report_interval:
            reports.popleft()
        self.sender.set_expected_loss(max(value for _, value in reports))

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self.streams.items()
                    if s.buffer.idle and now - s.last_arrival > self.stream_timeout]:
            del self.streams[sid]
            self._format_probation.pop(sid, None)
            self.mixer.forget(sid)
            self._unwatch(sid)

    def _unwatch(self, sid: int) -> None:
        self._exporter.forget("rx", sid)
        view = self._views.pop(sid, None)
        if view is not None and self._metrics is not None:
            self._metrics.unwatch(view)

    def pop(self, now: float) -> npt.NDArray[np.int16]:
        """One mixed stereo frame for the listener: every stream's frames due by ``now``."""
        for sid, stream in self.streams.items():
            while (item := stream.pop(now)) is not None:
                self.mixer.push(sid, item[1], now)
        return self.mixer.pop(now)

    # -- diagnostics ----------------------------------------------------------------------------
    def diagnostics(self) -> list[VoiceDiagnostics]:
        return [self.sender.diagnostics(), *(s.diagnostics() for s in self.streams.values())]

    def export(self, telemetry: Any) -> None:
        """Every stream's diagnostics into a :class:`theta_ecs.telemetry.Telemetry`."""
        for diag in self.diagnostics():
            self._exporter.export(telemetry, diag)
        for reason, n in self.dropped.items():
            key = f"voice.dropped.{reason}"
            if n > self._dropped_exported.get(key, 0):
                telemetry.count(key, n - self._dropped_exported.get(key, 0))
                self._dropped_exported[key] = n


    def watch_metrics(self, exporter: Any) -> None:
        """Export every stream (ours and each remote speaker's, as they come and go) through a
        ``theta_ecs.prometheus.MetricsExporter``; the metrics are declared in
        :mod:`theta_voice.metrics`."""
        from . import metrics  # noqa: F401  (declares the voice metrics)

        self._metrics = exporter
        exporter.watch("voice", DiagnosticsView(self.sender.diagnostics),
                       stream=str(self.sender.stream_id), direction="tx")
        for stream in self.streams.values():
            self._watch(stream)

    def _watch(self, stream: VoiceStream) -> None:
        if self._metrics is None or stream.stream_id in self._views:
            return
        view = self._views[stream.stream_id] = DiagnosticsView(stream.diagnostics)
        self._metrics.watch("voice", view, stream=str(stream.stream_id), direction="rx")


def pump(transports: Any, session: VoiceSession, now: float) -> None:
    """Move one round of datagrams between ``session`` and one Transport, or a list of them (a
    mesh: every datagram goes to every peer). Unreliable sends. A transport that names each
    datagram's verified sender (a :class:`theta_ecs.interfaces.SourcedTransport`, such as a
    relay's voice channel) has it checked against the stream the packet claims. A single transport
    with a non-zero ``stream_id`` (the stream a relay binds us to, which may change when it
    reconnects) makes our sender speak under it."""
    links = list(transports) if isinstance(transports, (list, tuple)) else [transports]
    if len(links) == 1:
        bound = getattr(links[0], "stream_id", 0)
        if isinstance(bound, int) and bound and bound != session.sender.stream_id:
            session.sender.stream_id = bound
    out = session.datagrams_to_send(now)
    for link in links:
        for data in out:
            link.send(data)
    for link in links:
        receive_from = getattr(link, "receive_from", None)
        if receive_from is not None:
            for source, data in receive_from():
                session.receive(data, now, source)
        else:
            for data in link.receive():
                session.receive(data, now)
