"""Handshake time and state-datagram RTT over real QUIC on 127.0.0.1: through the theta session
against raw aioquic measured in the same run (the peer). Target: the session adds <= 0.2 ms p50.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_net_rtt.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from net_support import (
    raw_connect,
    raw_server,
    session_connect,
    session_server,
    state_packet,
    summary_ms,
)

PINGS = 1500
BLOCK = 50


def test_state_rtt_session_vs_raw_aioquic(benchmark: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        raw_srv, raw_port = loop.run_until_complete(raw_server())
        listener = loop.run_until_complete(session_server())
        raw, raw_transport = loop.run_until_complete(raw_connect(raw_port))
        client = loop.run_until_complete(session_connect(listener.address[1]))
        packet = state_packet(200)
        raw_payload = b"\x00" + b"\x5a" * 199  # the same 200 bytes, as a raw datagram
        raw_rtts: list[float] = []
        session_rtts: list[float] = []

        async def measure() -> None:
            for _ in range(20):  # warm both paths
                await raw.ping(raw_payload)
                await client.ping(packet)
            # Interleaved blocks: both paths see the same machine load.
            for _ in range(PINGS // BLOCK):
                for _ in range(BLOCK):
                    raw_rtts.append(await raw.ping(raw_payload))
                for _ in range(BLOCK):
                    session_rtts.append(await client.ping(packet))

        loop.run_until_complete(measure())
        benchmark.pedantic(lambda: loop.run_until_complete(client.ping(packet)), rounds=300,
                           warmup_rounds=10)
        raw_s, ses_s = summary_ms(raw_rtts), summary_ms(session_rtts)
        added = ses_s["p50_ms"] - raw_s["p50_ms"]
        benchmark.extra_info.update({
            "payload_bytes": 200, "raw_aioquic": raw_s, "session": ses_s,
            "session_adds_p50_ms": round(added, 4),
            "session_adds_p99_ms": round(ses_s["p99_ms"] - raw_s["p99_ms"], 4),
            "ratio_p50": round(ses_s["p50_ms"] / raw_s["p50_ms"], 3),
            "target_adds_p50_ms": 0.2, "meets_target": added <= 0.2,
        })
        print(f"\nraw aioquic echo: {raw_s}\nsession echo:     {ses_s}\nsession adds "
              f"{added:.3f} ms p50")
        raw.close()
        raw_transport.close()
        raw_srv.close()
        listener.close()
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()


def test_handshake_session_vs_raw_aioquic(benchmark: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        raw_srv, raw_port = loop.run_until_complete(raw_server())
        listener = loop.run_until_complete(session_server())
        raw_times: list[float] = []
        session_times: list[float] = []

        async def raw_once() -> None:
            t0 = time.perf_counter()
            protocol, transport = await raw_connect(raw_port)
            raw_times.append(time.perf_counter() - t0)
            protocol.close()
            transport.close()

        async def session_once() -> None:
            t0 = time.perf_counter()
            client = await session_connect(listener.address[1])
            session_times.append(time.perf_counter() - t0)
            assert client.carrier is not None
            client.carrier.close()

        for _ in range(3):  # warm both
            loop.run_until_complete(raw_once())
            loop.run_until_complete(session_once())
        raw_times.clear()
        session_times.clear()
        for _ in range(30):  # interleaved: both see the same machine load
            loop.run_until_complete(raw_once())
            loop.run_until_complete(session_once())
        benchmark.pedantic(lambda: loop.run_until_complete(session_once()), rounds=10)
        raw_s, ses_s = summary_ms(raw_times), summary_ms(session_times[:30])
        benchmark.extra_info.update({
            "raw_aioquic_handshake": raw_s, "quic_and_session_handshake": ses_s,
            "ratio_p50": round(ses_s["p50_ms"] / raw_s["p50_ms"], 3),
        })
        print(f"\nraw aioquic handshake {raw_s}\nQUIC + session handshake {ses_s}")
        raw_srv.close()
        listener.close()
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
