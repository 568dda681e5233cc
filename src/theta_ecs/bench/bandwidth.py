"""The nightly bandwidth benchmark: the scenes through the replicator over the loopback link.

``cubes``: Glenn Fiedler's 901 cubes at 60 snapshots/s over 100 ms RTT and 1% loss each way,
with each optimisation switched on in turn (uncompressed floats, quantized, quantized delta
against acked baselines, and the full pipeline with zstd and a trained dictionary). Every tick
the client's World is compared with the server's floats for the tick it shows; the run fails if
any value is off by more than its quantization error.

``crowd``: 10,000 wandering agents at 20 snapshots/s to 8 clients, each following one agent,
with and without interest management.

Reported: kbit/s (or bytes) per client, server encode and client decode time per tick, as a
table, a JSON file and a PNG. With a previous JSON, a bandwidth figure more than 5% worse is a
regression and the exit status is 1 (timings are reported, never gated: machines differ).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..backends.loopback import LinkModel, LoopbackLink
from ..component import Component, SmallestThree
from ..replication import (
    AreaOfInterest,
    InterestManager,
    Receiver,
    Replicator,
    ReplicatorConfig,
)
from ..replication.envelope import wrap
from ..serialization import (
    DictionaryRegistry,
    Prediction,
    ReplicationSchema,
    Snapshot,
    capture,
    encode_body,
    train_dictionary,
)
from ..world import World

REGRESSION = 0.05
CUBE_MODES = ("uncompressed", "quantized", "delta", "predicted", "full")
DEFAULT_JSON = Path("benchmarks/results/bandwidth.json")


class Scene(Protocol):
    """What the benchmark needs from a scene (CubesScene and CrowdScene provide it)."""

    world: World

    def step(self, dt: float) -> None: ...


def _link(seed: int) -> LinkModel:
    return LinkModel(latency_s=0.05, loss=0.01, seed=seed)


def aligned_columns(world: World, comp: Component, entities: npt.NDArray[np.uint64]) -> Any:
    """``comp``'s column for ``entities`` (all of which must have it), in that order."""
    ids: list[npt.NDArray[np.uint64]] = []
    cols: list[Any] = []
    for ents, (col,) in world.query(comp):
        ids.append(ents)
        cols.append(col)
    all_ids = np.concatenate(ids)
    all_cols = np.concatenate(cols)
    order = np.argsort(all_ids)
    pos = np.searchsorted(all_ids[order], entities)
    return all_cols[order[np.minimum(pos, len(order) - 1)]]


@dataclass
class ErrorCheck:
    """Per tick: the client's values against the server's true values for the same tick."""

    schema: ReplicationSchema
    bounds: dict[int, float] = field(default_factory=dict)
    truth: dict[int, dict[int, Any]] = field(default_factory=dict)
    ticks_checked: int = 0
    violations: int = 0
    worst_ratio: float = 0.0

    def __post_init__(self) -> None:
        for ci, codec in enumerate(self.schema.codecs):
            self.bounds[ci] = max(codec.error_bounds().values())

    def record(self, world: World, state: Snapshot) -> None:
        self.truth[state.tick] = {
            ci: np.asarray(aligned_columns(world, comp, state.entities), np.float64)
            for ci, comp in enumerate(self.schema.components)
        }
        for old in [t for t in self.truth if t < state.tick - 120]:
            del self.truth[old]

    def check(self, rcv: Receiver) -> None:
        truth = self.truth.get(rcv.applied_sequence)
        if truth is None or not len(rcv.applied):
            return
        self.ticks_checked += 1
        for ci, comp in enumerate(self.schema.components):
            got = np.asarray(aligned_columns(rcv.world, comp, rcv.local_ids), np.float64)
            want = truth[ci]
            if got.ndim == 2 and isinstance(self.schema.codecs[ci].groups[0].quantization,
                                            SmallestThree):
                sign = np.where(np.einsum("ij,ij->i", got, want) < 0, -1.0, 1.0)
                got = got * sign[:, None]
            err = float(np.max(np.abs(got - want))) if got.size else 0.0
            bound = self.bounds[ci]
            if err > bound:
                self.violations += 1
            if bound > 0:
                self.worst_ratio = max(self.worst_ratio, err / bound)


@dataclass
class Peer:
    rep: Replicator
    rcv: Receiver
    down: LoopbackLink
    up: LoopbackLink
    area: AreaOfInterest | None = None
    follow: int = -1
    down_bytes: int = 0
    up_bytes: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    envelope: ReplicationSchema | None = None  # also count the bytes as FlatBuffers envelopes
    envelope_bytes: int = 0


def _exchange(peer: Peer, state: Snapshot, now: float, visible: Any = None) -> None:
    for p in peer.up.receive(now):
        peer.rep.receive(p, now)
    t0 = time.perf_counter()
    out = peer.rep.produce(state, now, visible)
    peer.encode_s += time.perf_counter() - t0
    for p in out:
        peer.down_bytes += len(p)
        peer.down.send(p, now)
        if peer.envelope is not None:
            env = wrap(p, peer.envelope, now)
            peer.envelope_bytes += len(env) if env is not None else len(p)
    arrived = peer.down.receive(now)
    t0 = time.perf_counter()
    for p in arrived:
        peer.rcv.receive(p, now)
    peer.decode_s += time.perf_counter() - t0
    for p in peer.rcv.produce(now):
        peer.up_bytes += len(p)
        peer.up.send(p, now)


def train_scene_dictionary(
    make_scene: Callable[[int], Scene], schema: ReplicationSchema, rate: float, seconds: float,
    seed: int, size: int = 8192,
) -> tuple[bytes, int]:
    """Record delta bodies (baseline ~7 ticks back, as over 100 ms RTT) from a run with another
    seed, and train a zstd dictionary on them. Returns (dictionary, samples)."""
    scene = make_scene(seed)
    history: list[Snapshot] = []
    bodies = []
    lag = max(1, round(0.11 * rate))
    for i in range(int(seconds * rate)):
        scene.step(1.0 / rate)
        cur = capture(scene.world, schema)
        history.append(cur)
        bodies.append(encode_body(schema, cur, history[-1 - lag] if i >= lag else None))
        if len(history) > lag + 1:
            history.pop(0)
    return train_dictionary(bodies, size=size), len(bodies)


def run_cubes(
    seconds: float = 10.0,
    n: int = 901,
    seed: int = 0,
    warmup: float = 5.0,
    modes: Sequence[str] = CUBE_MODES,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Each mode on the same deterministic scene: ``warmup`` simulated seconds for the dropped
    cubes to settle (not measured), then the client joins and ``seconds`` are measured."""
    from ..scenes.components import CubeLinearVelocity, CubePosition
    from ..scenes.cubes import CubesScene

    rate = CubesScene.rate_hz

    def make(s: int) -> Scene:
        scene = CubesScene(n, seed=s)
        for _ in range(int(warmup * rate)):
            scene.step(1.0 / rate)
        return scene

    prediction = Prediction(CubePosition, CubeLinearVelocity, 1.0 / rate)

    results: dict[str, Any] = {}
    dict_info: dict[str, Any] = {}
    for mode in modes:
        quant_schema = ReplicationSchema(
            CubesScene.components,
            quantize=mode != "uncompressed",
            prediction=prediction if mode in ("predicted", "full") else None,
        )
        registry = DictionaryRegistry()
        config = ReplicatorConfig(delta=False, compress=False)
        if mode in ("delta", "predicted"):
            config = ReplicatorConfig(delta=True, compress=False)
        elif mode == "full":
            t0 = time.perf_counter()
            data, samples = train_scene_dictionary(make, quant_schema, rate, seconds, seed + 1000)
            did = registry.add(data)
            dict_info = {"bytes": len(data), "samples": samples, "id": did,
                         "train_s": round(time.perf_counter() - t0, 2)}
            config = ReplicatorConfig(delta=True, compress=True, dictionary_id=did)
        scene = make(seed)
        peer = Peer(
            Replicator(quant_schema, config, dictionaries=registry),
            Receiver(quant_schema, dictionaries=registry),
            LoopbackLink(_link(seed * 2 + 1)),
            LoopbackLink(_link(seed * 2 + 2)),
        )
        if mode == "full":
            peer.envelope = quant_schema
        check = ErrorCheck(quant_schema)
        ticks = int(seconds * rate)
        now = 0.0
        capture_s = 0.0
        per_tick = []
        for _ in range(ticks):
            scene.step(1.0 / rate)
            now += 1.0 / rate
            t0 = time.perf_counter()
            state = capture(scene.world, quant_schema)
            capture_s += time.perf_counter() - t0
            check.record(scene.world, state)
            before = peer.down_bytes
            _exchange(peer, state, now)
            per_tick.append(peer.down_bytes - before)
            check.check(peer.rcv)
        kbps = peer.down_bytes * 8 / seconds / 1000.0
        results[mode] = {
            "kbps": round(kbps, 2),
            "bytes_per_tick": round(peer.down_bytes / ticks, 1),
            "max_tick_bytes": int(max(per_tick)),
            "ack_kbps": round(peer.up_bytes * 8 / seconds / 1000.0, 2),
            "packets": peer.rep.stats.packets_sent,
            "encode_ms": round(peer.encode_s / ticks * 1e3, 3),
            "decode_ms": round(peer.decode_s / ticks * 1e3, 3),
            "capture_ms": round(capture_s / ticks * 1e3, 3),
            "ticks_checked": check.ticks_checked,
            "error_violations": check.violations,
            "worst_error_ratio": round(check.worst_ratio, 3),
            "client_applied": peer.rcv.stats.applied,
        }
        if peer.envelope is not None:
            results[mode]["in_envelope_kbps"] = round(peer.envelope_bytes * 8 / seconds / 1e3, 2)
        r = results[mode]
        log(f"  cubes {mode:>12}: {r['kbps']:10.1f} kbit/s  encode {r['encode_ms']:.3f} ms"
            f"  decode {r['decode_ms']:.3f} ms  checked {r['ticks_checked']} ticks,"
            f" {r['error_violations']} over the error bound")
    return {
        "n": n, "rate_hz": rate, "seconds": seconds, "warmup_s": warmup, "rtt_ms": 100,
        "loss": 0.01,
        "paper_uncompressed_kbps": round(n * 321 * rate / 1000.0, 1),
        "target_kbps": 256, "stretch_kbps": 128, "dictionary": dict_info, "modes": results,
    }


CROWD_MODES = ("without_interest", "with_interest")


def run_crowd(seconds: float = 20.0, n: int = 10_000, clients: int = 8, radius: float = 100.0,
              seed: int = 0, log: Callable[[str], None] = print,
              modes: Sequence[str] = CROWD_MODES) -> dict[str, Any]:
    from ..scenes.components import CrowdPosition, CrowdVelocity
    from ..scenes.crowd import CrowdScene

    rate = CrowdScene.rate_hz
    schema = ReplicationSchema(
        CrowdScene.components, prediction=Prediction(CrowdPosition, CrowdVelocity, 1.0 / rate)
    )
    results: dict[str, Any] = {}
    for label in modes:
        use_interest = label == "with_interest"
        scene = CrowdScene(n, seed=seed)
        registry = DictionaryRegistry()
        config = ReplicatorConfig(delta=True, compress=True)
        rng = np.random.default_rng(seed)
        follow = rng.choice(n, size=clients, replace=False)
        peers = [
            Peer(
                Replicator(schema, config, dictionaries=registry),
                Receiver(schema, dictionaries=registry),
                LoopbackLink(_link(1000 + 2 * i)),
                LoopbackLink(_link(1001 + 2 * i)),
                AreaOfInterest(np.zeros(3), radius) if use_interest else None,
                int(follow[i]),
            )
            for i in range(clients)
        ]
        interest = InterestManager(schema, CrowdPosition, cell_size=radius / 2)
        ticks = int(seconds * rate)
        now = 0.0
        visible_counts = []
        for _ in range(ticks):
            scene.step(1.0 / rate)
            now += 1.0 / rate
            state = capture(scene.world, schema)
            if use_interest:
                interest.update(state)
            for peer in peers:
                visible = None
                if peer.area is not None:
                    peer.area.center = np.asarray(scene.pos[peer.follow], np.float64)
                    visible = interest.visible(peer.area, peer.rep.last_state.entities)
                    visible_counts.append(int(visible.sum()))
                _exchange(peer, state, now, visible)
        per_client = [p.down_bytes / seconds for p in peers]
        results[label] = {
            "bytes_per_s_per_client": round(float(np.mean(per_client)), 1),
            "kbps_per_client": round(float(np.mean(per_client)) * 8 / 1000, 2),
            "bytes_per_tick_per_client": round(float(np.mean(per_client)) / rate, 1),
            "encode_ms_per_client_tick": round(
                float(np.mean([p.encode_s for p in peers])) / ticks * 1e3, 3),
            "decode_ms_per_client_tick": round(
                float(np.mean([p.decode_s for p in peers])) / ticks * 1e3, 3),
            "entities_per_client": round(float(np.mean(visible_counts)), 1)
            if visible_counts else n,
        }
        r = results[label]
        log(f"  crowd {label:>17}: {r['bytes_per_s_per_client']:12.0f} B/s per client"
            f"  ({r['entities_per_client']} entities)  encode {r['encode_ms_per_client_tick']:.3f}"
            f" ms  decode {r['decode_ms_per_client_tick']:.3f} ms")
    out = {"n": n, "clients": clients, "rate_hz": rate, "seconds": seconds, "radius_m": radius,
           "modes": results}
    return with_interest_saving(out)


def with_interest_saving(crowd: dict[str, Any]) -> dict[str, Any]:
    """Add how many times fewer bytes interest management sends, when both modes ran."""
    modes = crowd["modes"]
    if all(m in modes for m in CROWD_MODES):
        ratio = (modes["without_interest"]["bytes_per_s_per_client"]
                 / max(modes["with_interest"]["bytes_per_s_per_client"], 1e-9))
        crowd["interest_saving"] = round(ratio, 1)
    return crowd


@dataclass
class EncodeCase:
    """A crowd's delta against the state two ticks back: what a server encodes per client."""

    scene: Any
    schema: ReplicationSchema
    codec: Any
    base: Snapshot
    cur: Snapshot
    packet: bytes

    def encode(self) -> bytes:
        out: bytes = self.codec.encode(self.cur, self.cur.tick, self.base, self.base.tick,
                                       compress=True)
        return out

    def decode(self) -> object:
        return self.codec.decode_bytes(self.packet, self.base)

    def capture(self) -> Snapshot:
        return capture(self.scene.world, self.schema)


def encode_case(n: int = 10_000, seed: int = 0) -> EncodeCase:
    from ..scenes.components import CrowdPosition, CrowdVelocity
    from ..scenes.crowd import CrowdScene
    from ..serialization import StateCodec

    scene = CrowdScene(n, seed=seed)
    schema = ReplicationSchema(
        CrowdScene.components,
        prediction=Prediction(CrowdPosition, CrowdVelocity, 1.0 / CrowdScene.rate_hz),
    )
    codec = StateCodec(schema)
    states = []
    for _ in range(3):
        scene.step(1.0 / CrowdScene.rate_hz)
        states.append(capture(scene.world, schema))
    base, cur = states[0], states[2]
    packet = codec.encode(cur, cur.tick, base, base.tick, compress=True)
    return EncodeCase(scene, schema, codec, base, cur, packet)


def run_encode_timing(n: int = 10_000, repeats: int = 50, seed: int = 0) -> dict[str, Any]:
    """The 2 ms target: a 10,000-entity crowd delta (baseline 2 ticks back) + zstd."""
    case = encode_case(n, seed)
    scene, schema, codec, base, cur, packet = (case.scene, case.schema, case.codec, case.base,
                                               case.cur, case.packet)

    def timed(fn: Callable[[], object]) -> list[float]:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    # Each step alone (a tight loop), then the three interleaved as a server tick would run them
    # (allocator churn from capture and decode then shows in the encode time).
    enc = timed(lambda: codec.encode(cur, cur.tick, base, base.tick, compress=True))
    dec = timed(lambda: codec.decode_bytes(packet, base))
    cap = timed(lambda: capture(scene.world, schema))
    mixed: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        codec.encode(cur, cur.tick, base, base.tick, compress=True)
        mixed.append(time.perf_counter() - t0)
        codec.decode_bytes(packet, base)
        capture(scene.world, schema)
    changed = int(np.sum(~np.all(cur.values == base.values, axis=1)))
    return {
        "entities": n, "changed": changed, "packet_bytes": len(packet),
        "encode_ms_median": round(float(np.median(enc)) * 1e3, 3),
        "decode_ms_median": round(float(np.median(dec)) * 1e3, 3),
        "capture_ms_median": round(float(np.median(cap)) * 1e3, 3),
        "encode_ms_min": round(float(np.min(enc)) * 1e3, 3),
        "encode_ms_median_interleaved": round(float(np.median(mixed)) * 1e3, 3),
        "target_ms": 2.0,
    }


# -- reporting -------------------------------------------------------------------------------
def gated_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Bandwidth figures (lower is better) that a regression is judged on."""
    out: dict[str, float] = {}
    for mode, r in result.get("cubes", {}).get("modes", {}).items():
        out[f"cubes.{mode}.kbps"] = float(r["kbps"])
    for mode, r in result.get("crowd", {}).get("modes", {}).items():
        out[f"crowd.{mode}.bytes_per_s_per_client"] = float(r["bytes_per_s_per_client"])
    return out


def compare(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Regressions over 5% on comparable runs (same scene parameters)."""
    regressions = []
    prev, cur = gated_metrics(previous), gated_metrics(current)
    for key, value in cur.items():
        scene = key.split(".")[0]
        same = all(previous.get(scene, {}).get(k) == current.get(scene, {}).get(k)
                   for k in ("n", "seconds", "rate_hz"))
        old = prev.get(key)
        if old is None or not same or old <= 0:
            continue
        if value > old * (1 + REGRESSION):
            regressions.append(f"{key}: {old:.1f} -> {value:.1f} (+{(value / old - 1) * 100:.1f}%)")
    return regressions


def table(result: dict[str, Any]) -> str:
    lines = []
    cubes = result.get("cubes")
    if cubes:
        lines.append(f"cubes: {cubes['n']} cubes, {cubes['rate_hz']:.0f} Hz, 100 ms RTT, 1% loss "
                     f"(paper uncompressed: {cubes['paper_uncompressed_kbps']:.0f} kbit/s)")
        lines.append(f"{'mode':>14} {'kbit/s':>10} {'B/tick':>8} {'ack kbit/s':>10} "
                     f"{'enc ms':>7} {'dec ms':>7} {'err/bound':>9} {'violations':>10}")
        for mode, r in cubes["modes"].items():
            lines.append(f"{mode:>14} {r['kbps']:10.1f} {r['bytes_per_tick']:8.1f} "
                         f"{r['ack_kbps']:10.2f} {r['encode_ms']:7.3f} {r['decode_ms']:7.3f} "
                         f"{r['worst_error_ratio']:9.3f} {r['error_violations']:10d}")
    crowd = result.get("crowd")
    if crowd:
        lines.append(f"crowd: {crowd['n']} agents, {crowd['clients']} clients, "
                     f"{crowd['rate_hz']:.0f} Hz, interest radius {crowd['radius_m']:.0f} m")
        lines.append(f"{'mode':>17} {'B/s/client':>11} {'kbit/s':>8} {'entities':>9} "
                     f"{'enc ms':>7} {'dec ms':>7}")
        for mode, r in crowd["modes"].items():
            lines.append(f"{mode:>17} {r['bytes_per_s_per_client']:11.0f} "
                         f"{r['kbps_per_client']:8.1f} {r['entities_per_client']:>9} "
                         f"{r['encode_ms_per_client_tick']:7.3f} "
                         f"{r['decode_ms_per_client_tick']:7.3f}")
    timing = result.get("timing")
    if timing:
        lines.append(
            f"10k-entity delta+zstd: encode {timing['encode_ms_median']:.3f} ms (min "
            f"{timing['encode_ms_min']:.3f}, interleaved "
            f"{timing['encode_ms_median_interleaved']:.3f}), decode "
            f"{timing['decode_ms_median']:.3f} ms, capture {timing['capture_ms_median']:.3f} ms "
            f"({timing['changed']} changed, {timing['packet_bytes']} B)"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cubes = result.get("cubes")
    ax = axes[0]
    if cubes:
        modes = list(cubes["modes"])
        vals = [cubes["modes"][m]["kbps"] for m in modes]
        colors = ["#999", "#6a9fd4", "#3b7dc4", "#2a66a8", "#1c4f8a"]
        bars = ax.bar(modes, vals, color=colors[: len(modes)])
        ax.set_yscale("log")
        ax.axhline(cubes["target_kbps"], color="tab:red", ls="--", label="target 256 kbit/s")
        ax.axhline(cubes["stretch_kbps"], color="tab:orange", ls=":", label="stretch 128 kbit/s")
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v * 1.1, f"{v:.0f}", ha="center", fontsize=8)
        ax.set_ylabel("kbit/s per client")
        ax.set_title(f"cubes: {cubes['n']} @ {cubes['rate_hz']:.0f} Hz, 100 ms RTT, 1% loss")
        ax.legend(fontsize=8)
    crowd = result.get("crowd")
    ax = axes[1]
    if crowd:
        modes = list(crowd["modes"])
        vals = [crowd["modes"][m]["kbps_per_client"] for m in modes]
        bars = ax.bar([m.replace("_", " ") for m in modes], vals, color=["#999", "#2e8b57"])
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v * 1.02, f"{v:.0f}", ha="center", fontsize=8)
        ax.set_ylabel("kbit/s per client")
        ax.set_title(f"crowd: {crowd['n']} agents, {crowd['clients']} clients @ "
                     f"{crowd['rate_hz']:.0f} Hz")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def new_result() -> dict[str, Any]:
    """The head of a bandwidth JSON; ``cubes``, ``crowd`` and ``timing`` are added by the runs."""
    return {
        "version": 1,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def finish(result: dict[str, Any], previous: dict[str, Any] | None, out: Path,
           png: Path | None = None) -> list[str]:
    """Judge a run (client state within the quantization error; no bandwidth regression over
    5% against ``previous``), write its JSON and PNG, and return the failures."""
    failures = []
    for mode, r in result.get("cubes", {}).get("modes", {}).items():
        if r["error_violations"]:
            failures.append(f"cubes {mode}: client state outside the quantization error "
                            f"on {r['error_violations']} checks")
    if previous is not None:
        regressions = compare(previous, result)
        result["regressions"] = regressions
        failures.extend(f"regression {r}" for r in regressions)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    plot(result, png or out.with_suffix(".png"))
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="theta bench bandwidth", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--scene", choices=["cubes", "crowd", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=None,
                        help="simulated seconds per run (default: cubes 10, crowd 20)")
    parser.add_argument("--out", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--png", type=Path, default=None, help="default: --out with .png")
    parser.add_argument("--compare", type=Path, default=None,
                        help="previous JSON (default: --out as it was before this run)")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv) if argv is not None else None)

    previous: dict[str, Any] | None = None
    prev_path = args.compare or args.out
    if not args.no_compare and prev_path.exists():
        previous = json.loads(prev_path.read_text())

    result = new_result()
    if args.scene in ("cubes", "all"):
        print("cubes ...", flush=True)
        result["cubes"] = run_cubes(args.seconds or 10.0, seed=args.seed)
    if args.scene in ("crowd", "all"):
        print("crowd ...", flush=True)
        result["crowd"] = run_crowd(args.seconds or 20.0, seed=args.seed)
        result["timing"] = run_encode_timing(seed=args.seed)
    print(table(result))
    failures = finish(result, previous, args.out, args.png)
    print(f"wrote {args.out} and {args.png or args.out.with_suffix('.png')}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

