"""Shared by the theta_net benchmarks: raw aioquic and session echo endpoints on 127.0.0.1, the
cubes server process (net_bench_server.py) and its bytes-on-the-wire measurement, and a UDP
relay that gives real QUIC the loopback model's path."""

from __future__ import annotations

import asyncio
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.packet import StatePacket, encode_packet
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net.carrier import Carrier, Channel
from theta_net.quic import ALPN, QuicTransport, make_self_signed
from theta_net.session import (
    Admission,
    ClientCredentials,
    Connected,
    Session,
    SessionConfig,
    StateReceived,
    TokenAuthority,
)

SCHEMA = ReplicationSchema(CubesScene.components)
AUTHORITY = TokenAuthority()
IDENTITY = make_self_signed("localhost")


def state_packet(size: int = 200, sequence: int = 1) -> bytes:
    """A compact state packet of about ``size`` bytes (what the session carries on STATE)."""
    return encode_packet(StatePacket(sequence, None, SCHEMA.wire_hash, b"\x5a" * (size - 12),
                                     False, 0))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 0.5) * 1e3, 4),
            "p99_ms": round(percentile(values, 0.99) * 1e3, 4),
            "mean_ms": round(statistics.fmean(values) * 1e3, 4), "n": len(values)}


# -- raw aioquic --------------------------------------------------------------------------------
class RawEcho(QuicConnectionProtocol):
    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.DatagramFrameReceived):
            self._quic.send_datagram_frame(event.data)
            self.transmit()


class RawClient(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiter: asyncio.Future[bytes] | None = None

    def quic_event_received(self, event: events.QuicEvent) -> None:
        waiter = self.waiter
        if isinstance(event, events.DatagramFrameReceived) and waiter and not waiter.done():
            waiter.set_result(event.data)

    async def ping(self, data: bytes) -> float:
        self.waiter = self._loop.create_future()
        t0 = time.perf_counter()
        self._quic.send_datagram_frame(data)
        self.transmit()
        await self.waiter
        return time.perf_counter() - t0


def raw_config(is_client: bool) -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=is_client, alpn_protocols=[ALPN],
                            max_datagram_frame_size=65536)
    if is_client:
        cfg.verify_mode = ssl.CERT_NONE
    else:
        cfg.certificate, cfg.private_key = IDENTITY.certificate, IDENTITY.private_key
    return cfg


async def raw_server() -> tuple[Any, int]:
    server = await serve("127.0.0.1", 0, configuration=raw_config(False), create_protocol=RawEcho)
    return server, server._transport.get_extra_info("sockname")[1]


async def raw_connect(port: int) -> tuple[RawClient, asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    quic = QuicConnection(configuration=raw_config(True))
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: RawClient(quic), remote_addr=("127.0.0.1", port))
    assert isinstance(protocol, RawClient)
    protocol.connect(("127.0.0.1", port))
    await protocol.wait_connected()
    return protocol, transport


# -- the session over the QUIC carrier ---------------------------------------------------------
class SessionEcho:
    """Server side: admits any token of AUTHORITY and echoes every state packet back."""

    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self.session = Session.server(SessionConfig(SCHEMA, max_datagram=1100),
                                      Admission(AUTHORITY))
        self.session.accept(time.monotonic())

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        now = time.monotonic()
        s = self.session
        s.receive(channel, payload, now)
        while (event := s.next_event()) is not None:
            if isinstance(event, StateReceived):
                s.send_state(event.packet, now)
        for ch, data in s.datagrams_to_send(now):
            self.carrier.send(ch, data)

    def carrier_closed(self, reason: str) -> None:
        pass


class SessionClient:
    def __init__(self) -> None:
        token = AUTHORITY.issue("editor", now=time.time(), fingerprint=IDENTITY.fingerprint)
        self.session = Session.client(SessionConfig(SCHEMA, max_datagram=1100),
                                      ClientCredentials.from_seed(bytes(32), token))
        self.carrier: Carrier | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiter: asyncio.Future[bytes] | None = None

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        s = self.session
        s.receive(channel, payload, time.monotonic())
        while (event := s.next_event()) is not None:
            if isinstance(event, Connected) and not self.connected.done():
                self.connected.set_result(None)
            elif isinstance(event, StateReceived) and self.waiter and not self.waiter.done():
                self.waiter.set_result(event.packet)

    def carrier_closed(self, reason: str) -> None:
        pass

    def flush(self) -> None:
        assert self.carrier is not None
        for ch, data in self.session.datagrams_to_send(time.monotonic()):
            self.carrier.send(ch, data)

    async def ping(self, packet: bytes) -> float:
        self.waiter = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        self.session.send_state(packet, time.monotonic())
        self.flush()
        await self.waiter
        return time.perf_counter() - t0


async def session_server() -> Any:
    return await QuicTransport(identity=IDENTITY).listen("127.0.0.1", 0, SessionEcho)


async def session_connect(port: int) -> SessionClient:
    client = SessionClient()
    client.carrier = await QuicTransport().connect("127.0.0.1", port, client,
                                                   fingerprint=IDENTITY.fingerprint_hex)
    client.session.connect(time.monotonic())
    client.flush()
    await client.connected
    return client


# -- an impaired path: a UDP relay that delays and drops ---------------------------------------
class UdpRelay:
    """Forwards UDP between clients and ``target`` on 127.0.0.1, delaying each datagram by
    ``delay`` seconds and dropping it with probability ``loss`` (each way, seeded): the path of
    the loopback model's bandwidth run (100 ms RTT, 1% loss), for real QUIC."""

    def __init__(self, target: int, delay: float, loss: float, seed: int = 0) -> None:
        import random

        self.target = ("127.0.0.1", target)
        self.delay, self.loss = delay, loss
        self.rng = random.Random(seed)
        self.port = 0
        self._front: asyncio.DatagramTransport | None = None
        self._backs: dict[Any, asyncio.DatagramTransport] = {}
        self._opening: set[asyncio.Future[None]] = set()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        relay = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                relay._to_server(data, addr)

        transport, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        self._front = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def _later(self, send: Any, data: bytes) -> None:
        if self.rng.random() >= self.loss:
            asyncio.get_running_loop().call_later(self.delay, send, data)

    def _to_server(self, data: bytes, client: Any) -> None:
        back = self._backs.get(client)
        if back is None:
            task = asyncio.ensure_future(self._open(client, data))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
            return
        self._later(lambda d: back.sendto(d, self.target), data)

    async def _open(self, client: Any, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                front = relay._front
                if front is not None:
                    relay._later(lambda d: front.sendto(d, client), data)

        if client not in self._backs:
            transport, _ = await loop.create_datagram_endpoint(Back,
                                                               local_addr=("127.0.0.1", 0))
            self._backs[client] = transport
        self._to_server(first, client)

    def close(self) -> None:
        if self._front is not None:
            self._front.close()
        for back in self._backs.values():
            back.close()


# -- the cubes server in its own process, and the bytes it puts on the wire ------------------------
class ServerWorker:
    """benchmarks/net_bench_server.py in a child process: its ``port`` and ``token``, its
    counters on demand (``stats``), ``pause``/``resume``, ``close``."""

    def __init__(self, rate: float = 60.0, *options: str) -> None:
        """``options``: more of net_bench_server.py's flags (``--entities``, ``--warmup``...)."""
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "net_bench_server.py"), "--rate",
             str(rate), *options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.port = int(self.expect("port")[1])
        self.token = self.expect("token")[1]

    def expect(self, key: str) -> list[str]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(key + " "):
                return line.split()
        raise RuntimeError(f"the server worker exited before {key!r}")

    def stats(self) -> dict[str, float]:
        self.send("stats")
        words = self.expect("stats")[1:]
        return {words[i]: float(words[i + 1]) for i in range(0, len(words), 2)}

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.send("quit")
        self.proc.wait(20)


async def worker_stats(worker: ServerWorker) -> dict[str, float]:
    return await asyncio.get_running_loop().run_in_executor(None, worker.stats)


async def cubes_wire_figures(worker: ServerWorker, relay: UdpRelay | None, seconds: float,
                             settle: float = 2.0) -> dict[str, Any]:
    """One client of the worker's cubes at 60 Hz over real QUIC (through ``relay`` when given)
    for ``seconds`` after its join and ``settle`` s: UDP payload bytes each way (QUIC framing
    included, IP/UDP headers not), the session's STATE bytes and the replicator's, as kbit/s."""
    from theta_net.client import Client
    from theta_net.scenes import schema_for

    port = await relay.start() if relay is not None else worker.port
    client = Client(schema_for("cubes"), "127.0.0.1", port, worker.token, rate=60.0,
                    reconnect=False, connect_timeout=20)
    task = asyncio.ensure_future(client.run())
    loop = asyncio.get_running_loop()
    try:
        while len(client.receiver.applied) != 901:
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)
        assert client.carrier is not None and client.session is not None
        cs, ss = client.carrier.stats, client.session.stats  # type: ignore[attr-defined]
        a = await worker_stats(worker)
        t0 = loop.time()
        d0, u0 = cs.udp_bytes_received, cs.udp_bytes_sent
        s0 = ss.bytes_received["STATE"]
        await asyncio.sleep(seconds)
        b = await worker_stats(worker)
        dt = loop.time() - t0
        return {
            "seconds": round(dt, 2), "ticks_per_s": round((b["ticks"] - a["ticks"]) / dt, 1),
            "wire_down_kbps": round((cs.udp_bytes_received - d0) * 8 / dt / 1e3, 1),
            "wire_up_kbps": round((cs.udp_bytes_sent - u0) * 8 / dt / 1e3, 1),
            "session_state_kbps": round((ss.bytes_received["STATE"] - s0) * 8 / dt / 1e3, 1),
            "replicator_kbps": round((b["state_bytes"] - a["state_bytes"]) * 8 / dt / 1e3, 1),
            "srtt_ms": round(client.session.rtt.srtt * 1e3, 3),
            "heartbeat_loss": round(client.session.loss.loss, 4),
        }
    finally:
        client.close()
        task.cancel()
        await asyncio.sleep(0.5)
        if relay is not None:
            relay.close()
