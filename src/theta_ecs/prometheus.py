"""The declared metrics in the Prometheus text format, for a server's scraper.

An engine makes one :class:`MetricsExporter`, hands it what it runs (its ``World``, a
``Replicator``/``Receiver`` per peer, any object a backend declared a source for), and either
serves it over HTTP on a port of its choosing (:func:`serve`) or renders the text into its own
endpoint (:meth:`MetricsExporter.render`)::

    exporter = MetricsExporter()
    exporter.watch_world(world)
    exporter.watch("replicator", replicator.stats, peer="client-7")
    server = serve(exporter, port=9464)          # GET http://127.0.0.1:9464/metrics
    ...
    server.close()

Values are read at scrape time, without stopping the frame loop: each value is as it was at some
moment during the scrape. Needs the ``theta[metrics]`` extra (prometheus-client).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .metrics import (
    UNDECLARED,
    Metric,
    MetricDeclarationError,
    MetricKind,
    MetricRegistry,
    MetricsExportUnavailableError,
    load_declarations,
)
from .telemetry import Histogram, RollingStat, Telemetry

try:
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise MetricsExportUnavailableError(
        "the Prometheus exporter needs prometheus-client: pip install 'theta[metrics]'"
    ) from exc

if TYPE_CHECKING:
    from .world import World

Value = float | Histogram | RollingStat
Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily | SummaryMetricFamily
#: Sources read from a Telemetry rather than from a watched object's attributes.
_TELEMETRY_SOURCES = frozenset({"telemetry.counters", "telemetry.gauges"})
#: The label a metric declares last when its value is a record of counters (drops by reason):
#: the exporter fills it with each field's name.
BREAKDOWN_LABEL = "reason"


@dataclass(frozen=True)
class _Watched:
    source: str
    read: Callable[[], Any]
    labels: tuple[tuple[str, str], ...]
    owner: object


class MetricsExporter(Collector):
    """A prometheus_client collector over the watched objects and the declared metrics."""

    def __init__(self, declarations: MetricRegistry | None = None) -> None:
        self.declarations = declarations if declarations is not None else load_declarations()
        self._watched: list[_Watched] = []
        self._lock = threading.Lock()

    # -- what to export ---------------------------------------------------------------------------
    def watch_world(self, world: World) -> None:
        """Frame/stage/system timings and entity counts of ``world``, and its telemetry."""
        self._add("world", lambda: world, {}, world)
        self.watch_telemetry(world.telemetry, owner=world)

    def watch_telemetry(self, telemetry: Telemetry, owner: object | None = None) -> None:
        """The counters and gauges of a Telemetry (a World's, or a standalone log's)."""
        self._add("telemetry.counters", lambda: telemetry.counters, {}, owner or telemetry)
        self._add("telemetry.gauges", lambda: telemetry.gauges, {}, owner or telemetry)

    def watch(self, source: str, obj: object, **labels: str) -> None:
        """Export ``obj`` (a mapping read by key, or an object read by attribute, such as a
        ``ReplicatorStats``) as the metrics declared for ``source``, with these label values."""
        if source in _TELEMETRY_SOURCES or source == "world":
            raise MetricDeclarationError(source, "use watch_world or watch_telemetry")
        declared = self.declarations.for_source(source)
        if not declared:
            raise MetricDeclarationError(source, "no metric is declared for this source")
        expected = {label for m in declared.values() for label in m.labels} - {BREAKDOWN_LABEL}
        if set(labels) != expected:
            raise MetricDeclarationError(
                source, f"expects labels {sorted(expected)}, got {sorted(labels)}")
        self._add(source, lambda: obj, labels, obj)

    def unwatch(self, owner: object) -> None:
        """Stop exporting ``owner`` (a world, telemetry or watched object: a peer that left)."""
        with self._lock:
            self._watched = [w for w in self._watched if w.owner is not owner]

    def _add(self, source: str, read: Callable[[], Any], labels: Mapping[str, str],
             owner: object) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            if any(w.source == source and w.labels == key for w in self._watched):
                raise MetricDeclarationError(
                    source, f"already watched with labels {dict(key)}: series would clash")
            self._watched.append(_Watched(source, read, key, owner))

    # -- the collector protocol -------------------------------------------------------------------
    def describe(self) -> Iterable[Any]:
        return ()  # names are checked by the declarations; no collect() at registration

    def collect(self) -> Iterator[Family]:
        with self._lock:
            watched = list(self._watched)
        families: dict[str, Family] = {}
        undeclared: dict[str, dict[str, float]] = {}
        for w in watched:
            obj = w.read()
            if w.source == "world":
                self._world(obj, families)
                continue
            labels = dict(w.labels)
            declared = self.declarations.for_source(w.source)
            for key, value in _values(obj):
                metric = declared.get(key)
                if metric is not None and _is_record(value):
                    # A record of counters (e.g. drops by reason): one sample per field.
                    base = [labels[label] for label in metric.labels if label != BREAKDOWN_LABEL]
                    for part, count in _values(value):
                        _sample(families, metric, [*base, part], count)
                elif metric is not None:
                    _sample(families, metric, [labels[label] for label in metric.labels], value)
                elif isinstance(value, (int, float)):
                    fallback = "telemetry.gauges" if w.source == "telemetry.gauges" else (
                        "telemetry.counters")
                    name = key if w.source in _TELEMETRY_SOURCES else f"{w.source}.{key}"
                    slot = undeclared.setdefault(fallback, {})
                    slot[name] = slot.get(name, 0.0) + float(value)
        for source, values in undeclared.items():
            metric = self.declarations.for_source(source).get(UNDECLARED)
            if metric is None:
                continue
            for key, value in sorted(values.items()):
                _sample(families, metric, [key], value)
        yield from families.values()

    def _world(self, world: World, families: dict[str, Family]) -> None:
        tel = world.telemetry
        declared = self.declarations.for_source("world")

        def emit(key: str, labels: list[str], value: Value) -> None:
            metric = declared.get(key)
            if metric is not None:
                _sample(families, metric, labels, value)

        emit("frame", [], tel.frame_histogram)
        for stage, hist in list(tel.stage_histograms.items()):
            emit("stage", [stage], hist)
        for system, stat in list(tel.systems.items()):
            emit("system", [system], stat)
        emit("frames", [], float(tel.frames))
        emit("tick", [], float(world.tick))
        emit("entities", [], float(world.entity_count))
        emit("archetypes", [], float(len(world.archetypes)))

    def render(self) -> bytes:
        """The current values in the Prometheus text format (for an engine's own endpoint)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return bytes(generate_latest(registry))


def _values(obj: object) -> Iterator[tuple[str, Any]]:
    """Values of a mapping by key, or of an object by dataclass field or attribute: numbers,
    and Histogram / RollingStat objects for histogram and summary metrics."""
    if isinstance(obj, Mapping):
        items: Iterable[tuple[str, Any]] = list(obj.items())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    else:
        items = [(k, v) for k, v in vars(obj).items() if not k.startswith("_")]
    for key, value in items:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number or isinstance(value, (Histogram, RollingStat)) or _is_record(value):
            yield str(key), value


def _is_record(value: object) -> bool:
    """A dataclass instance of counters nested in a stats object (read field by field)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _sample(families: dict[str, Family], m: Metric, labels: list[str], value: Value) -> None:
    """Add one labelled value to ``m``'s family; a value of the wrong shape for the metric's
    type (a number for a histogram) is skipped rather than exported wrong."""
    fam = _family(families, m)
    if isinstance(fam, HistogramMetricFamily):
        if isinstance(value, Histogram):
            fam.add_metric(labels, [(_le(b), n) for b, n in value.cumulative()],
                           value.sum * m.scale)
    elif isinstance(fam, SummaryMetricFamily):
        if isinstance(value, RollingStat):
            fam.add_metric(labels, value.runs, value.total * m.scale)
    elif isinstance(value, (int, float)):
        fam.add_metric(labels, float(value) * m.scale)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _family(families: dict[str, Family], m: Metric) -> Family:
    fam = families.get(m.name)
    if fam is not None:
        return fam
    labels = list(m.labels)
    made: Family
    if m.kind is MetricKind.COUNTER:
        made = CounterMetricFamily(m.name, m.help, labels=labels)
    elif m.kind is MetricKind.GAUGE:
        made = GaugeMetricFamily(m.name, m.help, labels=labels)
    elif m.kind is MetricKind.HISTOGRAM:
        made = HistogramMetricFamily(m.name, m.help, labels=labels)
    else:
        made = SummaryMetricFamily(m.name, m.help, labels=labels)
    families[m.name] = made
    return made


class MetricsServer:
    """prometheus_client's HTTP server thread serving one exporter; ``close()`` stops it."""

    def __init__(self, exporter: MetricsExporter, port: int, addr: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(exporter)
        self._server, self._thread = start_http_server(port, addr, registry=self.registry)

    @property
    def port(self) -> int:
        """The bound port (the one chosen, or the one the OS gave for port 0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(exporter: MetricsExporter, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``exporter`` at ``http://addr:port/metrics`` from a daemon thread (port 0: any
    free port, see :attr:`MetricsServer.port`). Bind 0.0.0.0 only where scrapers need it."""
    return MetricsServer(exporter, port, addr)
