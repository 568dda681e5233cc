"""Metric declarations, docs/metrics.md and the Prometheus export, checked against each other and
against real scrapes: a stepped world, a command log fed junk, a replicator and its receiver."""

from __future__ import annotations

import ast
import dataclasses
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from theta_ecs import Component, World
from theta_ecs.commandlog import CommandLog, Role, Roster, Signer
from theta_ecs.metrics import (
    REGISTRY,
    Metric,
    MetricDeclarationError,
    MetricKind,
    MetricRegistry,
    load_declarations,
)
from theta_ecs.prometheus import MetricsExporter, serve
from theta_ecs.replication import Receiver, Replicator, ReplicatorStats
from theta_ecs.replication.receiver import ReceiverStats
from theta_ecs.serialization import ReplicationSchema, capture

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\|\s*`(theta_[a-z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|\s*$")

Pos = Component("metrics_test.Pos", np.dtype((np.float32, 3)), fields=("x", "y", "z"))


def _documented() -> dict[str, tuple[str, str, tuple[str, ...], str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            name, kind, unit, labels, meaning = (g.strip() for g in m.groups())
            label_names = tuple(x.strip(" `") for x in labels.split(",") if x.strip(" `—"))
            rows[name] = (kind, unit, label_names, meaning)
    return rows


def test_the_reference_lists_exactly_the_declared_metrics() -> None:
    declared = load_declarations()
    documented = _documented()
    missing = [m.doc_row() for m in declared if m.name not in documented]
    stale = sorted(set(documented) - {m.name for m in declared})
    assert not missing, "docs/metrics.md lacks these rows:\n" + "\n".join(missing)
    assert not stale, f"docs/metrics.md lists metrics nobody declares: {stale}"
    for m in declared:
        kind, unit, labels, meaning = documented[m.name]
        assert (kind, unit, labels) == (m.kind.value, m.unit, m.labels), (
            f"{m.name}: documented as {kind}/{unit}/{labels}, declared {m.doc_row()}")
        assert meaning, f"{m.name} has no meaning in docs/metrics.md"


def _telemetry_keys_in_code() -> dict[str, set[str]]:
    """Literal keys passed to ``<telemetry>.count(...)`` / ``.gauge(...)`` anywhere in src/."""
    found: dict[str, set[str]] = {"count": set(), "gauge": set()}
    for path in (ROOT / "src").rglob("*.py"):
        if "_generated" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in found and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and "tel" in ast.unparse(node.func.value)):
                found[node.func.attr].add(node.args[0].value)
    return found


def test_every_telemetry_key_the_code_counts_is_declared() -> None:
    declared = load_declarations()
    keys = _telemetry_keys_in_code()
    assert len(keys["count"]) > 20  # the scan finds the counters it is meant to find
    counters = set(declared.for_source("telemetry.counters"))
    gauges = set(declared.for_source("telemetry.gauges"))
    assert not keys["count"] - counters, (
        f"telemetry counters without a declaration in a theta.metrics module: "
        f"{sorted(keys['count'] - counters)}")
    assert not keys["gauge"] - gauges, (
        f"telemetry gauges without a declaration: {sorted(keys['gauge'] - gauges)}")


@pytest.mark.parametrize(("source", "stats"), [("replicator", ReplicatorStats),
                                               ("receiver", ReceiverStats)])
def test_every_stats_field_is_declared_and_every_declaration_exists(
        source: str, stats: type) -> None:
    fields = {f.name for f in dataclasses.fields(stats)}
    declared = set(load_declarations().for_source(source))
    undeclared = sorted(fields - declared)
    assert not undeclared, f"{stats.__name__} fields without a declaration: {undeclared}"
    assert not declared - fields, f"declared but not in {stats.__name__}: {declared - fields}"


@pytest.mark.parametrize(("name", "kind", "unit", "reason"), [
    ("theta_drops", MetricKind.COUNTER, "packets", "ends in _total"),
    ("theta_depth_total", MetricKind.GAUGE, "packets", "must not end in _total"),
    ("theta_frame_ms", MetricKind.GAUGE, "seconds", "durations are in seconds"),
    ("theta_sent_total", MetricKind.COUNTER, "bytes", "unit 'bytes' belongs in the name"),
    ("Theta_x_total", MetricKind.COUNTER, "packets", "names are theta_"),
    ("theta_sizes_bytes", MetricKind.HISTOGRAM, "bytes", "histograms and summaries"),
])
def test_declarations_that_break_the_conventions_are_refused(
        name: str, kind: MetricKind, unit: str, reason: str) -> None:
    with pytest.raises(MetricDeclarationError, match=reason) as info:
        MetricRegistry().declare(Metric(name, kind, unit, "meaning", source="s", key="k"))
    assert info.value.name == name


def test_two_metrics_cannot_read_the_same_value_and_redeclaring_is_idempotent() -> None:
    reg = MetricRegistry()
    first = reg.counter("theta_a_total", "packets", "a", source="s", key="k")
    assert reg.counter("theta_a_total", "packets", "a", source="s", key="k") is first
    with pytest.raises(MetricDeclarationError, match="already exported as 'theta_a_total'"):
        reg.counter("theta_b_total", "packets", "b", source="s", key="k")
    with pytest.raises(MetricDeclarationError, match="declared twice"):
        reg.counter("theta_a_total", "packets", "other meaning", source="s", key="k2")


def _scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _replicated_pair() -> tuple[Replicator, Receiver]:
    server = World()
    server.spawn_batch({Pos: np.arange(300, dtype=np.float32).reshape(100, 3)})
    schema = ReplicationSchema([Pos])
    rep, rcv = Replicator(schema), Receiver(schema)
    for tick in range(3):
        server.step()
        for packet in rep.produce(capture(server, schema), tick / 60):
            rcv.receive(packet, tick / 60)
        for ack in rcv.produce(tick / 60):
            rep.receive(ack, tick / 60)
    assert rcv.stats.applied > 0 and rep.stats.acks_received > 0
    return rep, rcv


def test_a_server_is_scraped_over_http_with_real_values() -> None:
    world = World()
    world.spawn_batch({Pos: np.zeros((10, 3), np.float32)})
    world.add_system(lambda ctx: None, name="idle")
    for _ in range(5):
        world.step()
    signer = Signer.from_seed(b"\x05" * 32)
    roster = Roster()
    roster.add(signer.public_key, Role.EDITOR)
    log = CommandLog(roster, signer, telemetry=world.telemetry)
    log.receive(b"\x00not a command-log packet")
    world.telemetry.gauge("command_frame_ms", 5.0)
    world.telemetry.count("brand_new_counter", 3)
    rep, rcv = _replicated_pair()

    exporter = MetricsExporter()
    exporter.watch_world(world)
    exporter.watch("replicator", rep.stats, peer="client-1")
    exporter.watch("receiver", rcv.stats, peer="server")
    with serve(exporter, port=0) as server:
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as response:
            text = response.read().decode()
    got = _scrape(text)

    assert got[("theta_frames_total", ())] == 5
    assert got[("theta_frame_duration_seconds_count", ())] == 5
    assert got[("theta_frame_duration_seconds_bucket", (("le", "+Inf"),))] == 5
    assert got[("theta_frame_duration_seconds_sum", ())] > 0
    assert got[("theta_system_duration_seconds_count", (("system", "idle"),))] == 5
    assert got[("theta_stage_duration_seconds_count", (("stage", "simulation"),))] == 5
    assert got[("theta_entities", ())] == 10
    assert got[("theta_commandlog_malformed_packets_total", ())] == 1
    assert got[("theta_commandlog_frame_duration_seconds", ())] == pytest.approx(0.005)
    assert got[("theta_undeclared_events_total", (("key", "brand_new_counter"),))] == 3
    peer = (("peer", "client-1"),)
    assert got[("theta_replicator_sent_bytes_total", peer)] == rep.stats.bytes_sent > 0
    assert got[("theta_replicator_received_acks_total", peer)] == rep.stats.acks_received
    assert got[("theta_receiver_applied_states_total", (("peer", "server"),))] == (
        rcv.stats.applied)
    # every exported family is a declared metric
    names = {fam.name for fam in text_string_to_metric_families(text)}
    declared = {re.sub(r"_total$", "", m.name) for m in REGISTRY}
    assert names <= declared


def test_render_and_unwatch() -> None:
    rep, _ = _replicated_pair()
    exporter = MetricsExporter()
    exporter.watch("replicator", rep.stats, peer="a")
    assert b'theta_replicator_sent_packets_total{peer="a"}' in exporter.render()
    exporter.unwatch(rep.stats)
    assert b"theta_replicator_sent_packets_total{" not in exporter.render()


def test_watching_wrongly_is_refused_with_the_reason() -> None:
    rep, _ = _replicated_pair()
    exporter = MetricsExporter()
    with pytest.raises(MetricDeclarationError, match=r"expects labels \['peer'\]"):
        exporter.watch("replicator", rep.stats)
    with pytest.raises(MetricDeclarationError, match="no metric is declared"):
        exporter.watch("no.such.source", rep.stats, peer="a")
    exporter.watch("replicator", rep.stats, peer="a")
    with pytest.raises(MetricDeclarationError, match="series would clash"):
        exporter.watch("replicator", ReplicatorStats(), peer="a")
    world = World()
    exporter.watch_world(world)
    with pytest.raises(MetricDeclarationError, match="series would clash"):
        exporter.watch_world(World())



def test_histogram_buckets_count_values_up_to_and_including_each_bound() -> None:
    from theta_ecs.telemetry import Histogram

    hist = Histogram((0.001, 0.01))
    for value in (0.0005, 0.001, 0.002, 0.01, 0.5):
        hist.observe(value)
    assert hist.cumulative() == [(0.001, 2), (0.01, 4), (float("inf"), 5)]
    assert hist.sum == pytest.approx(0.5135)


def test_a_record_of_counters_is_exported_with_one_reason_label_per_field() -> None:
    stats = ReceiverStats()
    stats.chunk_drops.expired = 3
    stats.chunk_drops.evicted = 2
    exporter = MetricsExporter()
    exporter.watch("receiver", stats, peer="s")
    text = exporter.render().decode()
    assert 'theta_receiver_chunk_drops_total{peer="s",reason="expired"} 3.0' in text
    assert 'theta_receiver_chunk_drops_total{peer="s",reason="evicted"} 2.0' in text
    assert 'theta_receiver_chunk_drops_total{peer="s",reason="duplicate"} 0.0' in text
