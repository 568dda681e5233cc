"""VoiceDiagnostics: one stream's health as a plain, exportable snapshot.

Counters (``COUNTERS``) only grow and go into :class:`theta_ecs.telemetry.Telemetry` as counter
increments; the rest are gauges. ``packets_lost`` is a gauge because a packet counted lost when it
was concealed is re-counted late if it turns up afterwards (WebRTC's rule: lost = expected minus
received). Names in telemetry: ``voice.<rx|tx>.<stream id>.<field>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["COUNTERS", "GAUGES", "DiagnosticsExporter", "DiagnosticsView", "VoiceDiagnostics"]


@dataclass(frozen=True, slots=True)
class VoiceDiagnostics:
    """Per stream: receive side (``rx``: a remote speaker) or send side (``tx``: our capture)."""

    stream_id: int
    direction: str
    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    packets_good: int = 0
    packets_late: int = 0
    packets_lost: int = 0
    packets_duplicate: int = 0
    packets_out_of_window: int = 0
    packets_mismatched: int = 0
    decode_errors: int = 0
    resyncs: int = 0
    concealed_samples: int = 0
    concealment_events: int = 0
    interruptions: int = 0
    interruption_ms: float = 0.0
    fec_recoveries: int = 0
    current_delay_ms: float = 0.0
    target_delay_ms: float = 0.0
    loss_rate: float = 0.0
    vad_active: bool = False
    speech_ratio: float = 0.0
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    bitrate_bps: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COUNTERS = frozenset({
    "packets_sent", "bytes_sent", "packets_received", "packets_good", "packets_late",
    "packets_duplicate", "packets_out_of_window", "packets_mismatched", "decode_errors",
    "resyncs", "concealed_samples", "concealment_events", "interruptions", "fec_recoveries",
})
GAUGES = frozenset(f.name for f in fields(VoiceDiagnostics)) - COUNTERS - {
    "stream_id", "direction"}


class DiagnosticsExporter:
    """Feeds snapshots into a Telemetry: counters as increments since the last export."""

    def __init__(self, prefix: str = "voice") -> None:
        self.prefix = prefix
        self._last: dict[str, int] = {}

    def export(self, telemetry: Any, diagnostics: VoiceDiagnostics) -> None:
        base = f"{self.prefix}.{diagnostics.direction}.{diagnostics.stream_id}"
        for name in COUNTERS:
            key = f"{base}.{name}"
            value = int(getattr(diagnostics, name))
            delta = value - self._last.get(key, 0)
            if delta > 0:
                telemetry.count(key, delta)
            self._last[key] = value
        for name in GAUGES:
            telemetry.gauge(f"{base}.{name}", float(getattr(diagnostics, name)))

    def forget(self, direction: str, stream_id: int) -> None:
        """Drop what was exported of a stream that is gone or replaced: a new stream under its
        id counts from zero, and every one of its counts must reach telemetry (they were held
        back until they passed the old stream's totals), and a long session's churn of streams
        does not grow this map."""
        base = f"{self.prefix}.{direction}.{stream_id}."
        for key in [k for k in self._last if k.startswith(base)]:
            del self._last[key]


class DiagnosticsView(Mapping[str, float]):
    """A live, read-only mapping of one stream's numeric diagnostics: what
    ``theta_ecs.prometheus.MetricsExporter.watch("voice", view, stream=..., direction=...)``
    reads at each scrape (the declarations are in :mod:`theta_voice.metrics`)."""

    def __init__(self, read: Callable[[], VoiceDiagnostics]) -> None:
        self._read = read

    def _values(self) -> dict[str, float]:
        snap = self._read()
        return {name: float(getattr(snap, name)) for name in sorted(COUNTERS | GAUGES)}

    def __getitem__(self, key: str) -> float:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(COUNTERS | GAUGES))

    def __len__(self) -> int:
        return len(COUNTERS | GAUGES)

    def items(self) -> Any:
        return self._values().items()
