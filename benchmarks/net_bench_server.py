"""The server process of the scaling and wire benchmarks (not a test module).

Hosts the cubes scene's replicated state at ``--rate`` Hz over QUIC on 127.0.0.1. The scene's
rigid-body step costs more than a 60 Hz frame on a small shared machine, so its frames are
simulated once at start-up (after the cubes have landed and the ball set off) and played back and
forth: the server still captures, diffs, encodes and sends real cubes motion every tick, and the
simulation's own cost stays out of the replication figures. Prints ``port``/``token`` lines, then
answers ``stats`` and ``digest`` on stdin with one line each, and takes ``pause``,
``resume`` and ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import numpy as np

from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.snapshot import capture
from theta_ecs.world import World
from theta_net.cli import state_digest
from theta_net.scenes import schema_for
from theta_net.server import Server


def record(n: int, warmup: int, frames: int) -> list[list[np.ndarray]]:
    """``frames`` frames of the cubes scene after ``warmup``, as the replicated (quantized)
    columns of each component in schema order."""
    scene = CubesScene(n, seed=0)
    schema = schema_for("cubes")
    for _ in range(warmup):
        scene.step()
    out = []
    for _ in range(frames):
        scene.step()
        snap = capture(scene.world, schema)
        out.append([
            schema.codecs[ci].from_lanes(
                np.ascontiguousarray(snap.values[:, schema.lane_slices[ci]]))
            for ci in range(len(schema.components))
        ])
    return out


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--entities", type=int, default=901)
    p.add_argument("--rate", type=float, default=60.0)
    p.add_argument("--warmup", type=int, default=180)
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args()
    t0 = time.perf_counter()
    frames = record(args.entities, args.warmup, args.frames)
    print(f"recorded {len(frames)} frames in {time.perf_counter() - t0:.1f} s", flush=True)
    schema = schema_for("cubes")
    comps = list(schema.components)
    world = World()
    world.register(*comps)
    ids = world.spawn_batch(dict(zip(comps, frames[0])))
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))  # back and forth
    state = {"i": 0}

    def replay(dt: float) -> None:
        state["i"] += 1
        cols = frames[order[state["i"] % len(order)]]
        for comp, col in zip(comps, cols):
            world.insert_batch(ids, comp, col)
        world.step(dt)

    server = Server(world, schema, step=replay, rate=args.rate, port=0, max_clients=256)
    await server.start()
    print(f"port {server.port}", flush=True)
    print(f"token {server.issue_token('editor', ttl=3600)}", flush=True)
    loop = asyncio.get_running_loop()
    ticking = asyncio.ensure_future(server.run())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def report() -> None:
        m = server.metrics()
        cache = server.encode_cache
        print(f"stats cpu {time.process_time():.6f} wall {loop.time():.6f} "
              f"ticks {server.stats.ticks} clients {m['clients']} "
              f"tick_s {server.stats.tick_seconds:.6f} state_bytes {m['state_bytes']} "
              f"encodes {cache.encodes} shared {cache.shared} between {cache.shared_between} "
              f"encode_s {cache.encode_seconds:.6f} skipped {m['state_skipped']} "
              f"dropped {m['state_dropped']} resyncs {m['resyncs']}", flush=True)

    while True:
        raw = await reader.readline()
        line = raw.decode().strip()
        if not raw or line == "quit":
            break
        if line == "pause":
            server.paused = True
        elif line == "resume":
            server.paused = False
        elif line == "stats":
            report()
        elif line == "digest" and server.last_state is not None:
            print(f"digest {state_digest(server.last_state)}", flush=True)
    ticking.cancel()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
