"""Hostile peers beyond the basic faults (tests/test_net_faults.py), on real sockets on
127.0.0.1: each attack is bounded and counted, and the healthy client sees no effect."""

from __future__ import annotations

import asyncio

from theta_net.quic import QuicTransport

from .test_net_faults import Recorder, healthy_setup, run, still_healthy, teardown, until


def test_a_peer_opening_streams_it_was_not_granted_is_closed_and_counted() -> None:
    """Each stream may buffer ~1 MiB of out-of-order data from one tiny packet (a byte at the
    end of its window): the server grants the one reliable stream only."""

    async def main() -> None:
        server, good, futures = await healthy_setup()
        try:
            rogue = Recorder()
            carrier = await QuicTransport().connect("127.0.0.1", server.port, rogue,  # type: ignore[arg-type]
                                                    fingerprint=server.fingerprint)
            quic = carrier._quic
            assert quic._remote_max_streams_bidi == 1  # what the server granted
            quic._remote_max_streams_bidi = 1000  # a hostile peer ignores it
            window = (1 << 20) - 1
            for _ in range(8):
                sid = quic.get_next_available_stream_id()
                quic.send_stream_data(sid, bytes(window))
                quic._streams[sid].sender._pending.subtract(0, window - 1)  # only the last byte
                carrier.flush()
                await asyncio.sleep(0.01)
                good_carriers = {info.carrier for info in server.clients.values()}
                held = sum(len(stream.receiver._buffer) for c in server.listener.carriers  # type: ignore[union-attr]
                           if c not in good_carriers for stream in c._quic._streams.values())
                assert held <= 1 << 20
            await until(lambda: server.faults()["bad_streams"] >= 1, what="bad stream counted")
            await until(lambda: bool(rogue.closed), what="the rogue's connection closed")
            await still_healthy(server, good)
        finally:
            teardown(server, [good], futures)

    run(main)
