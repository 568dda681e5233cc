"""Frame telemetry: timings per frame, stage and system with rolling averages, plus counters.

Besides the rolling window (for dashboards and the JSON snapshot), frame and stage times are
counted into cumulative histograms and system times into running totals, which is what a
Prometheus scrape needs (:mod:`theta_ecs.prometheus`).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import deque
from dataclasses import asdict, dataclass, field

#: Histogram bucket bounds (seconds) for frame and stage times: around the 90 Hz (11.1 ms),
#: 60 Hz (16.7 ms) and 30 Hz (33.3 ms) budgets.
FRAME_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.0111, 0.0167, 0.0333, 0.05, 0.1, 0.25, 1.0,
)


class Histogram:
    """Cumulative observation counts per upper bound (plus +Inf), their sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = FRAME_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs ending with (inf, count)."""
        out = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            running += n
            out.append((bound, running))
        return out


class RollingStat:
    """Last value and mean over a fixed window of samples."""

    __slots__ = ("_samples", "_sum", "last", "peak", "runs", "total")

    def __init__(self, window: int = 120) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self.last = 0.0
        self.peak = 0.0
        self.runs = 0  # every sample ever added, and their sum (not windowed)
        self.total = 0.0

    def add(self, value: float) -> None:
        if len(self._samples) == self._samples.maxlen:
            self._sum -= self._samples[0]
        self._samples.append(value)
        self._sum += value
        self.last = value
        self.peak = max(self.peak, value)
        self.runs += 1
        self.total += value

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
        self.frame_histogram = Histogram()
        self.stage_histograms: dict[str, Histogram] = {}
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
            self.stage_histograms[name] = Histogram()
        stat.add(seconds)
        self.stage_histograms[name].observe(seconds)

    def record_system(self, name: str, seconds: float) -> None:
        stat = self.systems.get(name)
        if stat is None:
            stat = self.systems[name] = RollingStat(self.window)
        stat.add(seconds)

    def record_frame(self, seconds: float) -> None:
        self.frames += 1
        self.frame_time.add(seconds)
        self.frame_histogram.observe(seconds)

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
