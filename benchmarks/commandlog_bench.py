"""Command-log throughput: ``python benchmarks/commandlog_bench.py [--json] [--out FILE]``.

Measures, on one core (single-threaded):
- appends/s: local commands integrated into the log (raw type, and editor set_transform);
- sign: cost of sealing a frame's entries into a signed batch;
- verifies/s: remote entries through the whole receive path (decode, Ed25519 check, guards,
  integration), one entry per signed batch ("single") and per batches of 16 and 64;
- the per-frame cost of the pipeline at 1,000 commands/s and 60 frames/s, on the sending and the
  receiving world, with the memory store and with SQLite (WAL, synchronous FULL and NORMAL).
Target: verification keeps up with 10,000 entries/s.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from theta_ecs import World
from theta_ecs.commandlog import (
    CommandLog,
    CommandPipeline,
    CommandType,
    GuardConfig,
    MemoryCommandStore,
    Role,
    Roster,
    Scope,
    Signer,
    SqliteCommandStore,
)
from theta_ecs.commandlog.entry import decode_batch, decode_packet
from theta_ecs.interfaces import CommandStore

UNLIMITED = GuardConfig(rate=1e12, burst=1e12, local_rate=1e12, local_burst=1e12)
NOOP = CommandType("bench.op", Role.EDITOR, lambda e: None)


def _keys() -> tuple[Signer, Signer, Roster]:
    a, b = Signer.from_seed(b"\x01" * 32), Signer.from_seed(b"\x02" * 32)
    roster = Roster()
    roster.add(a.public_key, Role.EDITOR)
    roster.add(b.public_key, Role.EDITOR)
    return a, b, roster


def _log(signer: Signer | None, roster: Roster, store: CommandStore | None = None) -> CommandLog:
    log = CommandLog(roster, signer, guards=UNLIMITED, store=store)
    log.register(NOOP)
    return log


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def bench_appends(n: int, repeats: int) -> dict[str, float]:
    a, _, roster = _keys()
    payload = bytes(42)

    def raw() -> float:
        log = _log(a, roster)
        return _timed(lambda: [log.append("bench.op", Scope(i % 100 + 1, 7), payload)
                               for i in range(n)])

    def editor() -> float:
        from theta_ecs.commandlog import Editor

        world = World()
        log = _log(a, roster)
        ed = Editor(world, log)
        nids = [ed.create_entity() for _ in range(100)]
        return _timed(lambda: [ed.set_transform(nids[i % 100], px=float(i)) for i in range(n)])

    def sign(batch: int) -> float:
        log = _log(a, roster)
        total = 0.0
        for _ in range(n // batch):
            for i in range(batch):
                log.append("bench.op", Scope(i + 1, 7), payload)
            t0 = time.perf_counter()
            log.flush()
            total += time.perf_counter() - t0
        return total / (n // batch)

    return {
        "appends_per_s": n / _median(raw, repeats),
        "editor_set_transform_per_s": n / _median(editor, repeats),
        "flush_ms_batch_of_1": _median(lambda: sign(1), repeats) * 1e3,
        "flush_ms_batch_of_17": _median(lambda: sign(17), repeats) * 1e3,
        "sealed_entries_per_s_batch_of_17": 17 / _median(lambda: sign(17), repeats),
    }


def _packets(n: int, per_batch: int) -> list[bytes]:
    a, _, roster = _keys()
    log = _log(a, roster)
    packets: list[bytes] = []
    for i in range(n):
        log.append("bench.op", Scope(i % 100 + 1, 7), bytes(42))
        if (i + 1) % per_batch == 0:
            packets.extend(log.flush())
    packets.extend(log.flush())
    return packets


def bench_verify(n: int, repeats: int) -> dict[str, float]:
    out: dict[str, float] = {}
    _, b, roster = _keys()
    for per_batch, name in ((1, "single"), (16, "batch16"), (64, "batch64")):
        packets = _packets(n, per_batch)

        def receive(packets: list[bytes] = packets) -> float:
            log = _log(b, roster)
            t = _timed(lambda: [log.receive(p) for p in packets])
            assert len(log) == n, len(log)
            return t

        out[f"verifies_per_s_{name}"] = n / _median(receive, repeats)
    # the signature check alone (no decoding, guards or integration)
    batches = [decode_batch(decode_packet(p).batches[0]) for p in _packets(n, 1)]

    def verify_all() -> None:
        for x in batches:
            roster.verifier.verify(x)

    out["ed25519_verify_only_per_s"] = n / _median(lambda: _timed(verify_all), repeats)
    return out


def bench_pipeline(rate: int, fps: int, seconds: float, store: str) -> dict[str, float]:
    a, b, roster = _keys()
    tmp = tempfile.TemporaryDirectory()

    def make_store(name: str) -> CommandStore:
        if store == "memory":
            return MemoryCommandStore()
        return SqliteCommandStore(Path(tmp.name) / f"{name}.db", sync=store.split("-")[1])

    def make(signer: Signer, name: str) -> CommandPipeline:
        world = World()
        log = CommandLog(roster, signer, guards=UNLIMITED, store=make_store(name),
                         telemetry=world.telemetry)
        return CommandPipeline(world, log, inbox_budget_s=1.0)

    sender, receiver = make(a, "a"), make(b, "b")
    nids = [sender.editor.create_entity() for _ in range(100)]
    sender.world.step()
    for p in sender.outgoing():
        receiver.deliver(p)
    receiver.world.step()
    frames = int(seconds * fps)
    send_ms: list[float] = []
    recv_ms: list[float] = []
    issued = 0
    for f in range(frames):
        due = round((f + 1) * rate / fps) - round(f * rate / fps)
        t0 = time.perf_counter()
        for _ in range(due):
            sender.editor.set_transform(nids[issued % 100], px=float(issued), py=1.0)
            issued += 1
        sender.world.step()
        send_ms.append((time.perf_counter() - t0) * 1e3)
        for p in sender.outgoing():
            receiver.deliver(p)
        t0 = time.perf_counter()
        receiver.world.step()
        recv_ms.append((time.perf_counter() - t0) * 1e3)
    assert receiver.editor.digest() == sender.editor.digest()
    tmp.cleanup()
    return {
        "commands": float(issued),
        "sender_frame_ms_mean": statistics.fmean(send_ms),
        "sender_frame_ms_p99": sorted(send_ms)[int(len(send_ms) * 0.99) - 1],
        "receiver_frame_ms_mean": statistics.fmean(recv_ms),
        "receiver_frame_ms_p99": sorted(recv_ms)[int(len(recv_ms) * 0.99) - 1],
        "receiver_verify_us_per_entry": receiver.world.telemetry.gauges.get(
            "command_verify_us_per_entry", 0.0
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = ap.parse_args(argv)
    n = 2000 if args.quick else 10000
    repeats = 1 if args.quick else 3
    seconds = 0.5 if args.quick else 2.0
    result: dict[str, object] = {
        "benchmark": "commandlog",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "entries": n,
        "appends": bench_appends(n, repeats),
        "verify": bench_verify(n, repeats),
        "pipeline_1000_per_s_60fps": {
            store: bench_pipeline(1000, 60, seconds, store)
            for store in ("memory", "sqlite-FULL", "sqlite-NORMAL")
        },
    }
    verify = result["verify"]
    assert isinstance(verify, dict)
    result["meets_10k_verifies_per_s"] = {
        k: v >= 10_000 for k, v in verify.items() if k.startswith("verifies_per_s")
    }
    text = json.dumps(result, indent=None if args.json else 2, sort_keys=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
