"""Command-log workloads (single-threaded), with the signature libraries as peers.

- append: local commands integrated into the log (raw type, and the editor's set_transform)
- flush: sealing a frame's entries into one signed batch (batches of 1 and of 17)
- receive: remote entries through the whole receive path (decode, Ed25519 check, guards,
  integration), one entry per signed batch ("single") and per batches of 16 and 64
- ed25519_verify: the signature check alone, theta's verifier against ``cryptography`` (and
  PyNaCl/libsodium when installed) on the same batches
- pipeline: the per-frame cost at 1,000 commands/s and 60 frames/s, sender and receiver worlds,
  memory store and SQLite (WAL, synchronous FULL)

Target: verification keeps up with 10,000 entries/s, one entry at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..commandlog import (
    CommandLog,
    CommandPipeline,
    CommandType,
    Editor,
    GuardConfig,
    MemoryCommandStore,
    Role,
    Roster,
    Scope,
    Signer,
    SqliteCommandStore,
)
from ..commandlog.entry import SignedBatch, decode_batch, decode_packet
from ..interfaces import CommandStore
from ..world import World
from .workload import Round, Target, Workload, as_dict, run_all

UNLIMITED = GuardConfig(rate=1e12, burst=1e12, local_rate=1e12, local_burst=1e12)
NOOP = CommandType("bench.op", Role.EDITOR, lambda e: None)
PAYLOAD = bytes(42)
TARGETS = (Target("receive_single", max_ns=100_000.0),)  # 10,000 entries/s


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


def _packets(n: int, per_batch: int) -> list[bytes]:
    a, _, roster = _keys()
    log = _log(a, roster)
    packets: list[bytes] = []
    for i in range(n):
        log.append("bench.op", Scope(i % 100 + 1, 7), PAYLOAD)
        if (i + 1) % per_batch == 0:
            packets.extend(log.flush())
    packets.extend(log.flush())
    return packets


def _batches(n: int) -> list[SignedBatch]:
    return [decode_batch(b) for p in _packets(n, 1) for b in decode_packet(p).batches]


def append_workloads(n: int) -> list[Workload]:
    a, _, roster = _keys()

    def raw() -> Round:
        log = _log(a, roster)
        append = log.append
        return lambda: [append("bench.op", Scope(i % 100 + 1, 7), PAYLOAD) for i in range(n)]

    def editor() -> Round:
        ed = Editor(World(), _log(a, roster))
        nids = [ed.create_entity() for _ in range(100)]
        return lambda: [ed.set_transform(nids[i % 100], px=float(i)) for i in range(n)]

    def flush(batch: int) -> Callable[[], Round]:
        def prepare() -> Round:
            log = _log(a, roster)
            for i in range(batch):
                log.append("bench.op", Scope(i + 1, 7), PAYLOAD)
            return log.flush

        return prepare

    return [
        Workload("append", "theta", n, "entry", raw, fresh=True, rounds=5),
        Workload("append_editor_set_transform", "theta", n, "entry", editor, fresh=True,
                 rounds=5),
        Workload("flush_batch_of_1", "theta", 1, "entry", flush(1), fresh=True, rounds=200),
        Workload("flush_batch_of_17", "theta", 17, "entry", flush(17), fresh=True, rounds=200),
    ]


def receive_workloads(n: int) -> list[Workload]:
    _, b, roster = _keys()

    def receive(per_batch: int) -> Callable[[], Round]:
        packets = _packets(n, per_batch)

        def prepare() -> Round:
            log = _log(b, roster)
            receive_ = log.receive

            def run() -> None:
                for p in packets:
                    receive_(p)
                if len(log) != n:
                    raise AssertionError(f"integrated {len(log)} of {n} entries")

            return run

        return prepare

    return [
        Workload(f"receive_{name}", "theta", n, "entry", receive(per), fresh=True, rounds=3)
        for per, name in ((1, "single"), (16, "batch16"), (64, "batch64"))
    ]


def verify_workloads(n: int) -> list[Workload]:
    """The signature check alone on ``n`` one-entry batches: theta's verifier and the peers."""
    a, _, roster = _keys()

    def theta() -> Round:
        batches = _batches(n)
        verify = roster.verifier.verify

        def run() -> None:
            for x in batches:
                verify(x)

        return run

    def messages() -> list[tuple[bytes, bytes]]:
        from ..commandlog.signing import DOMAIN

        return [(x.signature, DOMAIN + x.signed_bytes) for x in _batches(n)]

    def cryptography_() -> Round:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(a.public_key)
        pairs = messages()

        def run() -> None:
            for sig, msg in pairs:
                key.verify(sig, msg)

        return run

    def pynacl() -> Round:
        import importlib

        key = importlib.import_module("nacl.signing").VerifyKey(a.public_key)
        pairs = messages()

        def run() -> None:
            for sig, msg in pairs:
                key.verify(msg, sig)

        return run

    out = [Workload("ed25519_verify", "cryptography", n, "entry", cryptography_, rounds=5)]
    if _have("nacl"):
        out.append(Workload("ed25519_verify", "pynacl", n, "entry", pynacl, rounds=5))
    out.append(Workload("ed25519_verify", "theta", n, "entry", theta, rounds=5))
    return out


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def pipeline_run(rate: int, fps: int, seconds: float, store: str) -> dict[str, float]:
    """One simulated run of the pipeline at ``rate`` commands/s; per-frame costs in ms."""
    a, b, roster = _keys()
    stores: list[CommandStore] = []
    with tempfile.TemporaryDirectory() as tmp:

        def make(signer: Signer, name: str) -> CommandPipeline:
            world = World()
            st: CommandStore = (MemoryCommandStore() if store == "memory"
                                else SqliteCommandStore(Path(tmp) / f"{name}.db"))
            stores.append(st)
            log = CommandLog(roster, signer, guards=UNLIMITED, store=st,
                             telemetry=world.telemetry)
            return CommandPipeline(world, log, inbox_budget_s=1.0)

        sender, receiver = make(a, "a"), make(b, "b")
        nids = [sender.editor.create_entity() for _ in range(100)]
        sender.world.step()
        for p in sender.outgoing():
            receiver.deliver(p)
        receiver.world.step()
        send_ms: list[float] = []
        recv_ms: list[float] = []
        issued = 0
        for f in range(int(seconds * fps)):
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
        if receiver.editor.digest() != sender.editor.digest():
            raise AssertionError("the receiving world diverged from the sender's")
        for st in stores:
            st.close()
    return {
        "commands": float(issued),
        "sender_frame_ms_mean": statistics.fmean(send_ms),
        "sender_frame_ms_p99": sorted(send_ms)[int(len(send_ms) * 0.99) - 1],
        "receiver_frame_ms_mean": statistics.fmean(recv_ms),
        "receiver_frame_ms_p99": sorted(recv_ms)[int(len(recv_ms) * 0.99) - 1],
    }


def pipeline_workloads(seconds: float) -> list[Workload]:
    fps = 60

    def prepare(store: str) -> Callable[[], Round]:
        return lambda: (lambda: pipeline_run(1000, fps, seconds, store))

    return [
        Workload(f"pipeline_{store}", "theta", int(seconds * fps), "frame", prepare(store),
                 fresh=True, rounds=3, note="1,000 commands/s at 60 frames/s, both worlds")
        for store in ("memory", "sqlite")
    ]


def all_workloads(n: int = 10_000, seconds: float = 2.0) -> list[Workload]:
    return (append_workloads(n) + receive_workloads(n) + verify_workloads(n)
            + pipeline_workloads(seconds))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="theta bench commandlog",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = ap.parse_args(argv)
    n, seconds = (2000, 0.5) if args.quick else (10_000, 2.0)
    log = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    results = run_all(all_workloads(n, seconds), 3, log)
    doc: dict[str, Any] = {"entries": n, **as_dict(results, TARGETS)}
    doc["entries_per_s"] = {g: 1e9 / results.ns_per_item(g, "theta")
                            for g in results.best if "theta" in results.best[g]}
    text = json.dumps(doc, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0 if all(doc["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
