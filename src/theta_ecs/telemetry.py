"""Frame telemetry: timings per frame, stage and system with rolling averages, plus counters."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field


class RollingStat:
    """Last value and mean over a fixed window of samples."""

    __slots__ = ("_samples", "_sum", "last", "peak")

    def __init__(self, window: int = 120) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self.last = 0.0
        self.peak = 0.0

    def add(self, value: float) -> None:
        if len(self._samples) == self._samples.maxlen:
            self._sum -= self._samples[0]
        self._samples.append(value)
        self._sum += value
        self.last = value
        self.peak = max(self.peak, value)

    @property
    def mean(self) -> float:
        return self._sum / len(self._samples) if self._samples else 0.0

    @property
    def count(self) -> int:
        return len(self._samples)


@dataclass(frozen=True)
class TimingSummary:
    last_ms: float
    mean_ms: float
    peak_ms: float


@dataclass(frozen=True)
class MetricsSnapshot:
    """An immutable copy of the telemetry at one moment, ready for dashboards or JSON."""

    frame: int
    tick: int
    entity_count: int
    archetype_count: int
    frame_time: TimingSummary
    stages: dict[str, TimingSummary] = field(default_factory=dict)
    systems: dict[str, TimingSummary] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class Telemetry:
    """Collects timings and counters; :meth:`snapshot` freezes them into a MetricsSnapshot."""

    def __init__(self, window: int = 120) -> None:
        self.window = window
        self.frames = 0
        self.frame_time = RollingStat(window)
        self.stages: dict[str, RollingStat] = {}
        self.systems: dict[str, RollingStat] = {}
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, float] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def record_stage(self, name: str, seconds: float) -> None:
        stat = self.stages.get(name)
        if stat is None:
            stat = self.stages[name] = RollingStat(self.window)
        stat.add(seconds)

    def record_system(self, name: str, seconds: float) -> None:
        stat = self.systems.get(name)
        if stat is None:
            stat = self.systems[name] = RollingStat(self.window)
        stat.add(seconds)

    def record_frame(self, seconds: float) -> None:
        self.frames += 1
        self.frame_time.add(seconds)

    @staticmethod
    def _summary(stat: RollingStat) -> TimingSummary:
        return TimingSummary(stat.last * 1e3, stat.mean * 1e3, stat.peak * 1e3)

    def snapshot(self, tick: int = 0, entity_count: int = 0, archetype_count: int = 0) -> (
        MetricsSnapshot
    ):
        return MetricsSnapshot(
            frame=self.frames,
            tick=tick,
            entity_count=entity_count,
            archetype_count=archetype_count,
            frame_time=self._summary(self.frame_time),
            stages={k: self._summary(v) for k, v in self.stages.items()},
            systems={k: self._summary(v) for k, v in self.systems.items()},
            counters=dict(self.counters),
            gauges=dict(self.gauges),
        )
