"""Hostile peers beyond the basic faults (tests/test_net_faults.py), on real sockets on
127.0.0.1: each attack is bounded and counted, and the healthy client sees no effect."""

from __future__ import annotations

import asyncio
import socket
import time

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from theta_ecs.commandlog.entry import encode_batches_packet
from theta_ecs.serialization.packet import AckPacket, encode_packet
from theta_net.client import Client
from theta_net.quic import QuicTransport
from theta_net.quic.transport import ALPN

from .test_net_faults import SCHEMA, Recorder, healthy_setup, run, still_healthy, teardown, until


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


def test_garbage_and_another_authors_batches_are_not_relayed_to_other_clients() -> None:
    """The server relays a client's batches to every other client before its log checks them:
    only batches that decode and are the sender's own are relayed (no amplification)."""

    async def main() -> None:
        server, good, futures = await healthy_setup()
        mallory = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("viewer"), rate=30)
        futures.append(asyncio.ensure_future(mallory.run()))
        try:
            await until(lambda: mallory.editor is not None and len(server.clients) == 2,
                        what="the second client's join")
            sent: list[bytes] = []
            session = good.session
            assert session is not None
            original = session.send_commands
            session.send_commands = lambda p, now: sent.append(p) or original(p, now)  # type: ignore[method-assign]
            relayed, got = server.stats.commands_relayed, mallory.stats.commands_received
            await still_healthy(server, good)  # the good client sends a batch of its own
            assert sent
            await until(lambda: mallory.stats.commands_received > got, what="the honest relay")
            assert server.stats.commands_relayed > relayed
            relayed, got = server.stats.commands_relayed, good.stats.commands_received
            m_session = mallory.session
            assert m_session is not None
            for packet in [encode_batches_packet([bytes(60_000)])] * 20 + sent:
                m_session.send_commands(packet, mallory.now())
            mallory._flush()
            await until(lambda: server.stats.relay_refused == 20 + len(sent),
                        what="the refused relays counted")
            assert server.world.telemetry.counters["net.relay_refused"] == 20 + len(sent)
            assert server.stats.commands_relayed == relayed
            assert good.stats.commands_received == got
            assert mallory.connected
            await still_healthy(server, good)
        finally:
            teardown(server, [good, mallory], futures)

    run(main)


def test_a_burst_of_initial_packets_cannot_lock_clients_out() -> None:
    """Each QUIC Initial with a fresh connection id opens a connection: 40 datagrams from one
    socket filled a 12-connection server for the whole idle timeout (15 s). The oldest
    half-open connection now makes room for a newcomer."""

    async def main() -> None:
        server, good, futures = await healthy_setup(max_connections=12)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(40):
                quic = QuicConnection(configuration=QuicConfiguration(
                    is_client=True, alpn_protocols=[ALPN]))
                quic.connect(("127.0.0.1", server.port), now=time.time())
                for data, _addr in quic.datagrams_to_send(now=time.time()):
                    raw.sendto(data, ("127.0.0.1", server.port))
            await until(lambda: server.faults()["half_open_evicted"] >= 40 - 11,
                        what="half-open connections evicted")
            assert len(server.listener.carriers) <= 12  # type: ignore[union-attr]
            carrier = await QuicTransport(connect_timeout=2.0).connect(
                "127.0.0.1", server.port, Recorder(), fingerprint=server.fingerprint)  # type: ignore[arg-type]
            assert not carrier.closed
            carrier.close()
            await still_healthy(server, good)
        finally:
            raw.close()
            teardown(server, [good], futures)

    run(main)


def test_garbage_state_packets_and_forged_acks_are_counted_in_server_faults() -> None:
    """Compact state packets pass the session unchecked (the replicator checks them): their
    drops were counted only inside each client's replicator, invisible in Server.faults() and
    lost when the client left."""

    async def main() -> None:
        server, good, futures = await healthy_setup()
        mallory = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("viewer"), rate=30)
        futures.append(asyncio.ensure_future(mallory.run()))
        try:
            await until(lambda: len(server.clients) == 2, what="the second client's join")
            session = mallory.session
            assert session is not None
            for i in range(30):
                session.send_state(b"\xb7" + bytes([i]) * (3 + i), mallory.now())
            session.send_state(encode_packet(AckPacket(10**9, 0)), mallory.now())
            mallory._flush()
            await until(lambda: server.faults()["state_malformed"] >= 25
                        and server.faults()["forged_acks"] >= 1, what="state faults counted")
            counted = server.faults()["state_malformed"]
            mallory.close()
            await until(lambda: len(server.clients) == 1, what="the rogue's departure")
            assert server.faults()["state_malformed"] >= counted  # kept after it left
            await still_healthy(server, good)
        finally:
            teardown(server, [good, mallory], futures)

    run(main)


def test_tls_handshakes_never_followed_by_a_hello_cannot_lock_clients_out() -> None:
    """Connections that finish TLS and send no hello held their slots for the handshake
    timeout: a few hundred handshakes a second kept a full server refusing every client."""

    async def main() -> None:
        server, good, futures = await healthy_setup(max_connections=4)
        transport = QuicTransport(connect_timeout=2.0)
        try:
            silent = [await transport.connect("127.0.0.1", server.port, Recorder(),  # type: ignore[arg-type]
                                              fingerprint=server.fingerprint) for _ in range(3)]
            assert len(server._pending) == 3
            newcomer = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token(), rate=30)
            await newcomer.connect(timeout=2.0)  # refused as "server full" before
            assert newcomer.connected and server.faults()["half_open_evicted"] == 1
            await until(lambda: silent[0].closed, what="the oldest silent one closed")
            assert not silent[1].closed and not silent[2].closed
            newcomer.close()
            await still_healthy(server, good)
        finally:
            teardown(server, [good], futures)

    run(main)
