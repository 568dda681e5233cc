"""Bad input and faults on real sockets on 127.0.0.1: each is dropped and counted, the other
clients see no effect, memory stays bounded, and the server neither crashes nor hangs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net.carrier import Channel
from theta_net.client import Client
from theta_net.quic import QuicTransport
from theta_net.server import Server
from theta_net.session import SessionConfig

from . import aio_support
from .aio_support import until

SCHEMA = ReplicationSchema(CubesScene.components)


run = partial(aio_support.run, timeout=90)


class Recorder:
    """A bare carrier handler for rogue clients."""

    def __init__(self) -> None:
        self.received: list[tuple[Channel, bytes]] = []
        self.closed = ""

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        self.received.append((channel, payload))

    def carrier_closed(self, reason: str) -> None:
        self.closed = reason or "closed"


async def healthy_setup(**transport: object) -> tuple[Server, Client, list[asyncio.Future[None]]]:
    scene = CubesScene(32, seed=5)
    server = Server(
        scene.world, SCHEMA, step=scene.step, port=0, rate=30.0,
        session_config=SessionConfig(SCHEMA, timeout=1.5, handshake_timeout=0.6),
        transport=QuicTransport(**transport),  # type: ignore[arg-type]
    )
    await server.start()
    good = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token(), rate=30)
    futures = [asyncio.ensure_future(server.run()), asyncio.ensure_future(good.run())]
    await until(lambda: len(good.receiver.applied) == 32 and good.editor is not None,
                what="the healthy client's join")
    return server, good, futures


async def still_healthy(server: Server, good: Client) -> None:
    """The healthy client keeps converging and its commands still go through."""
    assert good.connected and good.editor is not None
    net_id = good.editor.create_entity({"px": 3.0})
    await until(lambda: server.pipeline.editor.alive(net_id), what="the healthy command")
    server.paused = True
    await until(lambda: server.converged(good.receiver.applied), what="convergence")
    server.paused = False


def teardown(server: Server, clients: list[Client], futures: list[asyncio.Future[None]]) -> None:
    for c in clients:
        c.close()
    server.close()
    for f in futures:
        f.cancel()


def test_garbage_truncated_and_oversized_input_is_dropped_and_counted() -> None:
    async def main() -> None:
        server, good, futures = await healthy_setup(max_message=4096)
        try:
            # 1. UDP datagrams that are not QUIC at all.
            raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(200):
                raw.sendto(os.urandom(1 + i * 7 % 1400), ("127.0.0.1", server.port))
            raw.close()
            await until(lambda: server.faults()["not_quic"] >= 100, what="garbage counted")
            # 2. A QUIC client that completes TLS and then sends junk and truncated frames.
            rogue = Recorder()
            transport = QuicTransport()
            carrier = await transport.connect("127.0.0.1", server.port, rogue,  # type: ignore[arg-type]
                                              fingerprint=server.fingerprint)
            for i in range(50):
                carrier.send(Channel.STATE, os.urandom(10 + i * 13 % 900))
                carrier.send(Channel.VOICE, os.urandom(5 + i))
                carrier.send(Channel.RELIABLE, os.urandom(3 + i * 31 % 300))
            carrier.send(Channel.RELIABLE, b"THNW" * 3)  # truncated envelope
            await until(lambda: sum(server.faults()[k] for k in ("malformed", "unexpected",
                                                                  "after_close")) >= 60,
                        what="junk counted")
            # 3. An oversized reliable frame: a length prefix over max_message closes the link.
            rogue2 = Recorder()
            carrier2 = await transport.connect("127.0.0.1", server.port, rogue2,  # type: ignore[arg-type]
                                               fingerprint=server.fingerprint)
            sid = carrier2._quic.get_next_available_stream_id()
            carrier2._quic.send_stream_data(sid, struct.pack("<I", 1 << 30) + b"x" * 100)
            carrier2.flush()
            await until(lambda: server.faults()["oversize_frames"] == 1, what="oversize frame")
            await until(lambda: bool(rogue2.closed), what="the rogue's connection closed")
            await still_healthy(server, good)
            assert server.clients and len(server.clients) == 1
        finally:
            teardown(server, [good], futures)

    run(main)


def test_handshake_flood_and_silent_connections_are_refused_and_bounded() -> None:
    async def main() -> None:
        server, good, futures = await healthy_setup(max_connections=12)
        try:
            transport = QuicTransport(connect_timeout=2.0)

            async def attempt() -> object:
                return await transport.connect("127.0.0.1", server.port, Recorder(),  # type: ignore[arg-type]
                                               fingerprint=server.fingerprint)

            results = await asyncio.gather(*(attempt() for _ in range(40)),
                                           return_exceptions=True)
            silent = [r for r in results if not isinstance(r, BaseException)]
            faults = server.faults()
            # At most 12 connections at once (the healthy one among them): the rest refused, or
            # evicted by a newcomer while their TLS handshake was still under way.
            turned_away = faults["connections_refused"] + faults["half_open_evicted"]
            assert turned_away > 0
            assert turned_away + len(silent) >= 40
            # The ones admitted to TLS never send a hello: refused after handshake_timeout.
            # (A client may see its handshake complete a moment before the server does, and be
            # evicted by a newcomer in that moment: the server closes those at once.)
            await until(lambda: all(c.closed for c in silent),  # type: ignore[attr-defined]
                        what="silent connections closed")
            evicted = server.faults()["half_open_evicted"]
            assert server.stats.refused.get("handshake_timeout", 0) >= len(silent) - evicted
            await until(lambda: not server._pending, what="pending handshakes released")
            assert len(server.listener.carriers) <= 12  # type: ignore[union-attr]
            await still_healthy(server, good)
        finally:
            teardown(server, [good], futures)

    run(main)


def test_a_client_that_never_reads_and_one_that_vanishes_mid_join() -> None:
    async def main() -> None:
        server, good, futures = await healthy_setup(max_send_buffer=32 * 1024)
        try:
            # A client that stops reading its socket right after joining.
            stalled = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token(), rate=30,
                             reconnect=False)
            await stalled.connect()
            assert stalled.carrier is not None
            stalled.carrier.protocol._transport.pause_reading()  # type: ignore[attr-defined,union-attr]
            # A client that vanishes mid-join: its socket closes with no goodbye.
            vanishing = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token(), rate=30,
                               reconnect=False)
            await vanishing.connect()
            assert vanishing.carrier is not None
            vanishing.carrier.protocol._transport.abort()  # type: ignore[attr-defined,union-attr]
            await until(lambda: len(server.clients) == 3, what="three admitted")
            # The healthy client keeps issuing commands, relayed to the stalled one too.
            assert good.editor is not None
            for i in range(40):
                good.editor.create_entity({"px": float(i)})
                await asyncio.sleep(0.01)
            # Both are dropped (timeout or unread stream) and the server keeps memory bounded.
            await until(lambda: len(server.clients) == 1, timeout=10, what="both dropped")
            assert server.stats.disconnected >= 2
            for carrier in server.listener.carriers:  # type: ignore[union-attr]
                assert carrier._send_buffered() <= 32 * 1024  # type: ignore[attr-defined]
            await still_healthy(server, good)
            stalled.close()
        finally:
            teardown(server, [good], futures)

    run(main)


def test_killed_server_restarts_and_no_acknowledged_command_is_lost(tmp_path: Path) -> None:
    """SIGKILL the `theta serve` process; restart it from its state directory; the client
    reconnects with its identity and every command the server had stored is still there."""

    def start(port: str = "0") -> tuple[subprocess.Popen[str], dict[str, str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "theta_ecs.cli", "serve", "--entities", "32", "--port", port,
             "--state-dir", str(tmp_path), "--timeout", "1.5", "--rate", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        info: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.search(r"on quic://[\d.]+:(\d+)", line):
                info["port"] = m.group(1)
            if m := re.search(r"restored (\d+) command", line):
                info["restored"] = m.group(1)
            if m := re.search(r"join token \(editor, 1 h\): (\S+)", line):
                info["token"] = m.group(1)
                return proc, info
        raise AssertionError("theta serve printed no token")

    def log_count(proc: subprocess.Popen[str]) -> int:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.search(r" log (\d+)$", line.strip()):
                return int(m.group(1))
        raise AssertionError("theta serve stopped printing")

    async def main() -> None:
        proc, info = start()
        schema = __import__("theta_net.scenes", fromlist=["schema_for"]).schema_for("cubes")
        client = Client(schema, "127.0.0.1", int(info["port"]), info["token"], rate=30,
                        reconnect_delay=0.2, connect_timeout=1.0)
        task = asyncio.ensure_future(client.run())
        proc2: subprocess.Popen[str] | None = None
        try:
            await until(lambda: client.editor is not None, what="admission")
            assert client.editor is not None
            for i in range(6):
                client.editor.create_entity({"px": float(i)})
            loop = asyncio.get_running_loop()
            stored = 0
            while stored < 12:  # six creates with a transform each: twelve entries
                stored = await loop.run_in_executor(None, log_count, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await until(lambda: not client.connected, timeout=6, what="loss detection")
            late = client.editor.create_entity({"px": 42.0})
            # Restart on the same port (the client knows it) from the same state directory.
            proc2, info2 = await loop.run_in_executor(None, start, info["port"])
            assert int(info2["restored"]) >= stored
            await until(lambda: client.stats.connects >= 2 and client.connected, timeout=15,
                        what="reconnection")
            t0 = time.monotonic()
            count = 0
            while count < stored + 2 and time.monotonic() - t0 < 15:
                count = await loop.run_in_executor(None, log_count, proc2)
            assert count >= stored + 2, (count, stored)  # the late command arrived too
            assert client.log is not None and late in {e.scope.entity for e in client.log.ordered()}
        finally:
            client.close()
            task.cancel()
            for p in (proc, proc2):
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(10)

    def start_on(port: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
        nonlocal_args = ["--port", port]
        proc = subprocess.Popen(
            [sys.executable, "-m", "theta_ecs.cli", "serve", "--entities", "32", *nonlocal_args,
             "--state-dir", str(tmp_path), "--timeout", "1.5", "--rate", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        info: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.search(r"restored (\d+) command", line):
                info["restored"] = m.group(1)
            if "join token" in line:
                return proc, info
        raise AssertionError("the restarted theta serve printed no token")

    run(main)
