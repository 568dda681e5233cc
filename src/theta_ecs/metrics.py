"""Every exported metric declared in one registry: name, type, unit, labels, meaning, and where
its value is read from.

Why one registry: the Prometheus exporter (:mod:`theta_ecs.prometheus`) exports exactly what is
declared here, and a test checks ``docs/metrics.md`` against it, so names cannot drift between
code, scrape configs and the reference. Prometheus conventions are enforced at declaration:
counters end in ``_total``, base units (seconds, bytes) appear in the name, durations are in
seconds (a millisecond source is declared with ``scale=1e-3``).

Each package declares its metrics in one module, listed under the ``theta.metrics`` entry-point
group (the core's is :mod:`theta_ecs.core_metrics`)::

    from theta_ecs.metrics import REGISTRY
    REGISTRY.counter("theta_voice_late_packets_total", "packets", "Packets that came after "
                     "their playout time.", source="voice.jitter", key="late", labels=("peer",))

A value is read from a *source*: ``world`` (frame, stage and system timings, entity counts),
``telemetry.counters`` / ``telemetry.gauges`` (the keys of a :class:`~.telemetry.Telemetry`), or
any object an engine hands to the exporter under that source name (a mapping read by key, or
an object read by attribute, e.g. a ``ReplicatorStats``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from importlib.metadata import entry_points

from .errors import ThetaError

ENTRY_POINT_GROUP = "theta.metrics"
#: Units that Prometheus names spell out; any other unit (entities, packets) is a count.
BASE_UNITS = ("seconds", "bytes", "ratio")
#: Source keys that collect every key of the source nobody declared (exported, never lost).
UNDECLARED = "*"
_NAME = re.compile(r"^theta_[a-z0-9_]+$")
_SMALL_TIME_UNITS = re.compile(r"_(ms|us|ns|millis|micros|milliseconds|microseconds)(_|$)")


class MetricDeclarationError(ThetaError, ValueError):
    """A metric declaration that breaks the naming rules or clashes with another one."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"metric {name!r}: {reason}")
        self.name = name
        self.reason = reason


class MetricsExportUnavailableError(ThetaError, ImportError):
    """The exporter's library (prometheus-client, the ``theta[metrics]`` extra) is missing."""


class MetricKind(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"


@dataclass(frozen=True)
class Metric:
    """One exported metric. ``scale`` converts the source's value to the metric's unit."""

    name: str
    kind: MetricKind
    unit: str
    help: str
    source: str
    key: str
    labels: tuple[str, ...] = ()
    scale: float = 1.0

    def doc_row(self) -> str:
        """This metric's row in docs/metrics.md."""
        labels = ", ".join(f"`{label}`" for label in self.labels) or "—"
        return f"| `{self.name}` | {self.kind.value} | {self.unit} | {labels} | {self.help} |"


class MetricRegistry:
    """Declared metrics by name; also indexed by (source, key) so a value maps to one metric."""

    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}
        self._by_source: dict[str, dict[str, Metric]] = {}

    def declare(self, metric: Metric) -> Metric:
        _check_name(metric)
        existing = self._by_name.get(metric.name)
        if existing is not None:
            if existing == metric:  # a module imported twice declares the same thing again
                return existing
            raise MetricDeclarationError(metric.name, "declared twice, differently")
        other = self._by_source.get(metric.source, {}).get(metric.key)
        if other is not None:
            raise MetricDeclarationError(
                metric.name, f"{metric.source}[{metric.key!r}] is already exported as "
                             f"{other.name!r}")
        self._by_name[metric.name] = metric
        self._by_source.setdefault(metric.source, {})[metric.key] = metric
        return metric

    def _make(self, kind: MetricKind, name: str, unit: str, help: str, source: str, key: str,
              labels: tuple[str, ...], scale: float) -> Metric:
        return self.declare(Metric(name, kind, unit, help, source, key, labels, scale))

    def counter(self, name: str, unit: str, help: str, *, source: str, key: str,
                labels: tuple[str, ...] = (), scale: float = 1.0) -> Metric:
        return self._make(MetricKind.COUNTER, name, unit, help, source, key, labels, scale)

    def gauge(self, name: str, unit: str, help: str, *, source: str, key: str,
              labels: tuple[str, ...] = (), scale: float = 1.0) -> Metric:
        return self._make(MetricKind.GAUGE, name, unit, help, source, key, labels, scale)

    def histogram(self, name: str, unit: str, help: str, *, source: str, key: str,
                  labels: tuple[str, ...] = (), scale: float = 1.0) -> Metric:
        return self._make(MetricKind.HISTOGRAM, name, unit, help, source, key, labels, scale)

    def summary(self, name: str, unit: str, help: str, *, source: str, key: str,
                labels: tuple[str, ...] = (), scale: float = 1.0) -> Metric:
        return self._make(MetricKind.SUMMARY, name, unit, help, source, key, labels, scale)

    def __iter__(self) -> Iterator[Metric]:
        return iter(sorted(self._by_name.values(), key=lambda m: m.name))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Metric | None:
        return self._by_name.get(name)

    def for_source(self, source: str) -> dict[str, Metric]:
        """The metrics read from ``source``, by key."""
        return dict(self._by_source.get(source, {}))

    def sources(self) -> list[str]:
        return sorted(self._by_source)


def _check_name(m: Metric) -> None:
    if not _NAME.match(m.name):
        raise MetricDeclarationError(m.name, "names are theta_ followed by [a-z0-9_]")
    if not m.help.strip():
        raise MetricDeclarationError(m.name, "says nothing about what it means")
    if _SMALL_TIME_UNITS.search(m.name):
        raise MetricDeclarationError(m.name, "durations are in seconds (declare a scale)")
    stem = m.name
    if m.kind is MetricKind.COUNTER:
        if not stem.endswith("_total"):
            raise MetricDeclarationError(m.name, "a counter's name ends in _total")
        stem = stem[: -len("_total")]
    elif stem.endswith("_total"):
        raise MetricDeclarationError(m.name, f"a {m.kind.value} must not end in _total")
    if m.unit in BASE_UNITS and not (stem.endswith(f"_{m.unit}") or f"_{m.unit}_" in stem):
        raise MetricDeclarationError(m.name, f"the unit {m.unit!r} belongs in the name")
    if m.kind in (MetricKind.HISTOGRAM, MetricKind.SUMMARY) and m.unit != "seconds":
        raise MetricDeclarationError(m.name, "histograms and summaries here are durations")
    for label in m.labels:
        if not re.match(r"^[a-z_][a-z0-9_]*$", label) or label.startswith("__"):
            raise MetricDeclarationError(m.name, f"bad label name {label!r}")


#: The process-wide registry every package declares into.
REGISTRY = MetricRegistry()


def load_declarations(registry: MetricRegistry = REGISTRY) -> MetricRegistry:
    """Import the core's declarations and every module listed under ``theta.metrics``."""
    importlib.import_module("theta_ecs.core_metrics")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(ep.value.split(":")[0])
    return registry


def missing_rows(documented: set[str], registry: MetricRegistry = REGISTRY) -> list[str]:
    """Rows to add to docs/metrics.md for the declared metrics it does not list."""
    return [m.doc_row() for m in registry if m.name not in documented]


if __name__ == "__main__":  # python -m theta_ecs.metrics: print the reference table
    # Through the package: run as __main__, this file's own REGISTRY is not the one declared into.
    from theta_ecs import metrics

    print("| name | type | unit | labels | meaning |\n| --- | --- | --- | --- | --- |")
    for metric in metrics.load_declarations():
        print(metric.doc_row())
