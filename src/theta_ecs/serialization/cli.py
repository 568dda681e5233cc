"""``theta dict record|train`` and the ``theta bench bandwidth`` entry point.

The core CLI (``theta_ecs.cli``) calls :func:`register` with its subparsers and dispatches
``theta bench bandwidth ...`` to :func:`run_bandwidth`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .compression import (
    DictionaryRegistry,
    dictionary_id,
    read_recording,
    train_dictionary,
    write_recording,
)
from .errors import DecodeError


def _scene_bodies(scene: str, seconds: float, seed: int) -> list[bytes]:
    """Delta bodies of a scene run, each against the state ~110 ms earlier (a 100 ms RTT ack)."""
    from ..scenes.components import CubeLinearVelocity, CubePosition
    from .schema import Prediction, ReplicationSchema
    from .snapshot import Snapshot, capture, encode_body

    sim: Any
    if scene == "cubes":
        from ..scenes.cubes import CubesScene

        sim = CubesScene(seed=seed)
        rate = CubesScene.rate_hz
        schema = ReplicationSchema(
            sim.components, prediction=Prediction(CubePosition, CubeLinearVelocity, 1.0 / rate)
        )
    else:
        from ..scenes.crowd import CrowdScene

        sim = CrowdScene(seed=seed)
        rate = CrowdScene.rate_hz
        schema = ReplicationSchema(sim.components)
    lag = max(1, round(0.11 * rate))
    history: list[Snapshot] = []
    bodies = []
    for i in range(int(seconds * rate)):
        sim.step(1.0 / rate)
        cur = capture(sim.world, schema)
        history.append(cur)
        bodies.append(encode_body(schema, cur, history[-1 - lag] if i >= lag else None))
        del history[: -lag - 1]
    return bodies


def _cmd_record(args: argparse.Namespace) -> int:
    bodies = _scene_bodies(args.scene, args.seconds, args.seed)
    n = write_recording(args.out, bodies)
    print(f"recorded {n} packet bodies ({sum(map(len, bodies))} bytes) to {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    try:
        if args.input:
            samples = [b for path in args.input for b in read_recording(path)]
        else:
            samples = _scene_bodies(args.scene, args.seconds, args.seed)
    except (OSError, DecodeError) as exc:
        print(f"theta dict train: {exc}", file=sys.stderr)
        return 2
    if len(samples) < 16:
        print(f"theta dict train: {len(samples)} samples are too few", file=sys.stderr)
        return 2
    held_out = samples[::10]
    training = [s for i, s in enumerate(samples) if i % 10]
    data = train_dictionary(training, size=args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    reg = DictionaryRegistry()
    did = reg.add(data)
    raw = sum(len(s) for s in held_out)
    plain = sum(len(reg.compress(s)) for s in held_out)
    with_dict = sum(len(reg.compress(s, did)) for s in held_out)
    print(f"dictionary {dictionary_id(data):#010x}: {len(data)} bytes from {len(training)} samples "
          f"-> {args.out}")
    print(f"held-out {len(held_out)} bodies: {raw} B raw, {plain} B zstd, {with_dict} B zstd+dict")
    return 0


def register(sub: Any) -> None:
    """Add ``dict`` (``record``, ``train``) to the ``theta`` command."""
    d = sub.add_parser("dict", help="zstd dictionaries for replication packets")
    dsub = d.add_subparsers(dest="dict_command", required=True)

    rec = dsub.add_parser("record", help="record delta packet bodies of a benchmark scene")
    rec.add_argument("--scene", choices=["cubes", "crowd"], default="cubes")
    rec.add_argument("--seconds", type=float, default=20.0)
    rec.add_argument("--seed", type=int, default=1000)
    rec.add_argument("--out", type=Path, required=True)
    rec.set_defaults(func=_cmd_record)

    tr = dsub.add_parser("train", help="train a dictionary from recordings (or a scene run)")
    tr.add_argument("--input", type=Path, nargs="*", default=[], help="recordings (dict record)")
    tr.add_argument("--scene", choices=["cubes", "crowd"], default="cubes",
                    help="record this scene when no --input is given")
    tr.add_argument("--seconds", type=float, default=20.0)
    tr.add_argument("--seed", type=int, default=1000)
    tr.add_argument("--size", type=int, default=8192, help="dictionary size in bytes")
    tr.add_argument("--out", type=Path, required=True)
    tr.set_defaults(func=_cmd_train)


def run_bandwidth(argv: Sequence[str]) -> int:
    """``theta bench bandwidth [options]``."""
    from ..bench.bandwidth import main

    return main(list(argv))
