"""Voice over real QUIC on 127.0.0.1: mouth-to-ear delay through encoder → QUIC → the server's
relay → QUIC → jitter buffer → decoder, beside the loopback-link model's figure measured in the
same run; and the server's CPU per relayed speaker.

Mouth-to-ear of a frame, as ``theta_voice.simulate`` counts it: its scheduled playout time minus
the capture time of its first sample (so 20 ms of framing), plus Opus's 6.5 ms lookahead and the
mean encode and decode CPU per frame. Device buffers (capture and playback blocks) are excluded.
Over QUIC the clock is real: the speaker captures a frame every 20 ms and the listener polls its
voice channel every 5 ms (at most 5 ms of polling lag on an arrival is inside the figure; the
event-driven loopback model has none).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import numpy as np
import pytest

from net_support import ServerWorker  # benchmarks/ is on sys.path (conftest)
from theta_ecs.backends.loopback import LinkModel
from theta_ecs.scenes.cubes import CubesScene
from theta_net.client import Client
from theta_net.scenes import schema_for
from theta_net.server import Server
from theta_voice.corpus import speech_clip
from theta_voice.jitter import PlayoutKind
from theta_voice.quality import pesq_wb
from theta_voice.session import VoiceSession, pump
from theta_voice.simulate import run_link
from theta_voice.stream import VoiceSender

pytest.importorskip("pesq", reason="PESQ needs the pesq package (dev extra)")

SCHEMA = schema_for("cubes")  # the server worker's
FRAME = 960
POLL_S = 0.005
PHASE_S = float(os.environ.get("THETA_BENCH_SECONDS", "5"))
SUMMARY: dict[str, str] = {}


async def _until(cond: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def _quic_call(speech: np.ndarray) -> dict[str, Any]:
    """One speaker, one listener, the server in this process; real time."""
    scene = CubesScene(8, seed=1)
    server = Server(scene.world, SCHEMA, step=scene.step, port=0, rate=30.0)
    await server.start()
    tasks = [asyncio.ensure_future(server.run())]
    clients = [Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("editor"), rate=30)
               for _ in range(2)]
    tasks += [asyncio.ensure_future(c.run()) for c in clients]
    try:
        await _until(lambda: all(c.connected and c.voice.stream_id for c in clients))
        a, b = clients
        va, vb = VoiceSession(a.voice.stream_id), VoiceSession(b.voice.stream_id)
        loop = asyncio.get_running_loop()
        frames = speech[: len(speech) // FRAME * FRAME].reshape(-1, FRAME)
        captured: dict[int, float] = {}  # timestamp -> capture time of the frame's first sample
        out = np.zeros(len(speech) + 48_000 * 2, np.int16)
        m2e: list[float] = []
        t0 = loop.time()
        per_frame = round(0.02 / POLL_S)
        end = len(frames) * per_frame + round(0.6 / POLL_S)
        origin: float | None = None
        for k in range(end):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * POLL_S - loop.time()))
            now = loop.time()
            if k % per_frame == per_frame - 1 and k // per_frame < len(frames):
                captured[va.sender.timestamp] = now - 0.02
                va.capture(frames[k // per_frame], now)
            pump(a.voice, va, now)
            pump(b.voice, vb, now)
            stream = vb.streams.get(va.sender.stream_id)
            while stream is not None and (item := stream.pop(now)) is not None:
                frame, pcm = item
                if origin is None:
                    origin = frame.play_time
                start = round((frame.play_time - origin) * 48_000)
                if start >= 0 and start + len(pcm) <= len(out):
                    out[start: start + len(pcm)] = pcm
                if frame.kind is PlayoutKind.NORMAL and frame.timestamp in captured:
                    m2e.append(frame.play_time - captured[frame.timestamp])
        stream = vb.streams[va.sender.stream_id]
        n = len(frames)
        cpu = (va.sender.encode_seconds + stream.decode_seconds) / n
        lookahead = getattr(getattr(va.sender.codec, "encoder", None), "lookahead_samples", 0)
        delays = np.asarray(m2e) + lookahead / 48_000 + cpu
        rx = stream.diagnostics()
        # The output starts with the first frame played (the first captured: no loss here).
        heard = out[: len(speech)]
        return {"m2e": delays, "rx": rx, "heard": heard,
                "srtt_ms": b.metrics()["rtt_ms"], "relay": server.voice.metrics()}
    finally:
        for c in clients:
            c.close()
        server.close()
        for t in tasks:
            t.cancel()


def test_mouth_to_ear_over_quic_beside_the_loopback_link(benchmark: Any) -> None:
    speech = speech_clip(sentences=3, seed=4).clean
    result: dict[str, Any] = {}

    def once() -> None:
        result.update(asyncio.run(_quic_call(speech)))

    benchmark.pedantic(once, rounds=1, iterations=1)
    link = run_link(speech, LinkModel())  # the loopback-link model, clean, in the same run
    quic_ms, link_ms = result["m2e"] * 1e3, link.mouth_to_ear_s * 1e3
    rx = result["rx"]
    info = {
        "quic_mouth_to_ear_ms_p50": round(float(np.percentile(quic_ms, 50)), 1),
        "quic_mouth_to_ear_ms_p95": round(float(np.percentile(quic_ms, 95)), 1),
        "loopback_link_mouth_to_ear_ms_p50": round(float(np.percentile(link_ms, 50)), 1),
        "loopback_link_mouth_to_ear_ms_p95": round(float(np.percentile(link_ms, 95)), 1),
        "quic_pesq_wb": round(pesq_wb(speech, result["heard"]), 3),
        "loopback_link_pesq_wb": round(pesq_wb(speech, link.aligned(len(speech))), 3),
        "quic_buffer_target_ms": round(rx.target_delay_ms, 1),
        "quic_lost": rx.packets_lost, "quic_late": rx.packets_late,
        "quic_interruptions": rx.interruptions, "session_srtt_ms": result["srtt_ms"],
        "relayed": result["relay"]["relayed"],
        "note": "device buffers excluded; both include 20 ms framing, 6.5 ms Opus lookahead, "
                "jitter buffer and encode/decode CPU; QUIC adds the real path through the "
                "server's relay and up to 5 ms of listener polling",
    }
    info["quic_over_loopback_link_p50"] = round(
        info["quic_mouth_to_ear_ms_p50"] / info["loopback_link_mouth_to_ear_ms_p50"], 3)
    benchmark.extra_info.update(info)
    SUMMARY["mouth-to-ear"] = (
        f"QUIC+relay p50 {info['quic_mouth_to_ear_ms_p50']} ms p95 "
        f"{info['quic_mouth_to_ear_ms_p95']} ms (PESQ-WB {info['quic_pesq_wb']}); loopback link "
        f"p50 {info['loopback_link_mouth_to_ear_ms_p50']} ms p95 "
        f"{info['loopback_link_mouth_to_ear_ms_p95']} ms (PESQ-WB {info['loopback_link_pesq_wb']})")
    print("\n" + SUMMARY["mouth-to-ear"])


async def _cpu_per_speaker(worker: ServerWorker, clients_n: int,
                           speakers_list: tuple[int, ...]) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    clients = [Client(SCHEMA, "127.0.0.1", worker.port, worker.token, rate=30)
               for _ in range(clients_n)]
    tasks = [asyncio.ensure_future(c.run()) for c in clients]
    try:
        await _until(lambda: all(c.connected and c.voice.stream_id for c in clients), 30)
        speech = speech_clip(sentences=2, seed=6).clean
        frames = speech[: len(speech) // FRAME * FRAME].reshape(-1, FRAME)
        # Real Opus packets, encoded beforehand under each speaker's stream (the clip loops).
        packets = []
        for c in clients:
            sender = VoiceSender(c.voice.stream_id)
            packets.append([p for k, f in enumerate(frames)
                            if (p := sender.push(f, k * 0.02)) is not None])
        rows = []
        for speakers in speakers_list:
            before = await loop.run_in_executor(None, worker.stats)
            got0 = [c.world.telemetry.counters.get("net.voice.delivered", 0) for c in clients]
            t0 = loop.time()
            k = 0
            while loop.time() - t0 < PHASE_S:
                k += 1
                await asyncio.sleep(max(0.0, t0 + k * 0.02 - loop.time()))
                for i in range(speakers):
                    clients[i].voice.send(packets[i][k % len(packets[i])])
                for c in clients:
                    c.voice.receive()
            after = await loop.run_in_executor(None, worker.stats)
            got = sum(c.world.telemetry.counters.get("net.voice.delivered", 0) - g
                      for c, g in zip(clients, got0))
            wall = after["wall"] - before["wall"]
            rows.append({"speakers": speakers, "cpu_s": after["cpu"] - before["cpu"],
                         "wall_s": wall, "delivered": got})
        return rows
    finally:
        for c in clients:
            c.close()
        for t in tasks:
            t.cancel()


def test_server_cpu_per_relayed_speaker(benchmark: Any) -> None:
    """Four clients connected to a server process (60 Hz, 8 replicated cubes); a phase with no
    one talking, then one, then two speakers each relayed to the three others."""
    worker = ServerWorker(60.0, "--entities", "8", "--warmup", "5", "--frames", "10")
    rows: list[dict[str, Any]] = []
    try:
        def once() -> None:
            rows.extend(asyncio.run(_cpu_per_speaker(worker, 4, (0, 1, 2))))

        benchmark.pedantic(once, rounds=1, iterations=1)
    finally:
        worker.close()
    idle = rows[0]["cpu_s"] / rows[0]["wall_s"]
    info: dict[str, Any] = {"idle_server_cpu_share": round(idle, 4), "phase_s": PHASE_S}
    for row in rows[1:]:
        s = row["speakers"]
        extra = row["cpu_s"] / row["wall_s"] - idle
        info[f"speakers_{s}_cpu_share_per_speaker"] = round(extra / s, 4)
        info[f"speakers_{s}_us_per_relayed_datagram"] = round(
            extra * row["wall_s"] / max(row["delivered"], 1) * 1e6, 1)
        info[f"speakers_{s}_delivered"] = row["delivered"]
    benchmark.extra_info.update(info)
    parts = []
    for row in rows[1:]:
        s = row["speakers"]
        share = info[f"speakers_{s}_cpu_share_per_speaker"]
        per = info[f"speakers_{s}_us_per_relayed_datagram"]
        parts.append(f"{100 * share:.2f}% with {s} talking ({per} µs per relayed datagram)")
    SUMMARY["server CPU"] = (f"idle {100 * idle:.2f}% of a core; per relayed speaker "
                             f"(to 3 listeners): " + ", ".join(parts))
    print("\n" + SUMMARY["server CPU"])
    assert all(r["delivered"] > 0 for r in rows[1:])
