"""The theta session over WebRTC on 127.0.0.1: handshake, state, acks, commands, heartbeats;
and ``auto`` falling back to WebRTC when QUIC does not answer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("aiortc")

from theta_ecs import plugins
from theta_ecs.errors import BackendUnavailableError
from theta_net.errors import ConnectError
from theta_net.session import RefusalCode
from theta_net.webrtc.auto import AutoTransport
from theta_net.webrtc.carrier import WebRtcCarrier
from theta_net.webrtc.transport import WebRtcTransport

from .webrtc_support import (
    AUTHORITY,
    CubesHost,
    SessionPeer,
    client_credentials,
    converged,
    mirror,
    page_config,
)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_ICE_HOST_ADDRESSES", "127.0.0.1")
    monkeypatch.delenv("THETA_SIGNALING_URL", raising=False)
    monkeypatch.delenv("THETA_SIGNALING_BIND", raising=False)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def hosted(body: Callable[[CubesHost, int], Awaitable[None]]) -> None:
    async def main() -> None:
        host = CubesHost(n=120)
        server = WebRtcTransport(tokens=AUTHORITY, page_config=page_config)
        listener = await server.listen("127.0.0.1", 0, host.accept)
        host.start()
        try:
            await body(host, listener.address[1])
        finally:
            await host.stop()
            await listener.aclose()

    asyncio.run(main())


def test_a_client_joins_converges_and_edits_over_webrtc() -> None:
    async def body(host: CubesHost, port: int) -> None:
        client = mirror()
        carrier = await WebRtcTransport().connect("127.0.0.1", port, client)
        assert isinstance(carrier, WebRtcCarrier)
        client.start(carrier)
        await until(lambda: client.log.connected is not None)
        assert client.log.connected is not None and client.log.connected.role == "editor"
        await until(lambda: converged(host, client) and len(client.log.rtts) >= 2)
        server_peer = host.peers[0]
        assert server_peer.log.connected is not None
        assert server_peer.replicator is not None
        assert server_peer.replicator.stats.acks_received > 0
        assert server_peer.log.rtts and 0 < server_peer.session.rtt.srtt < 0.5
        client.session.send_commands(b"edit: move cube 7", SessionPeer.now())
        client.pump()
        await until(lambda: server_peer.log.commands == [b"edit: move cube 7"])
        # the session's per-channel counters see WebRTC's traffic like QUIC's
        stats = server_peer.session.stats
        assert stats.bytes_sent["STATE"] > 0 and stats.messages_received["RELIABLE"] >= 2
        client.close()
        await until(lambda: server_peer.log.disconnected is not None)

    hosted(body)


def test_a_forged_token_is_refused_at_signaling_and_a_wrong_role_in_the_session() -> None:
    async def body(host: CubesHost, port: int) -> None:
        forged = client_credentials()
        other = type(AUTHORITY).from_seed(bytes(32)).issue("editor", now=time.time())
        with pytest.raises(ConnectError) as info:
            await WebRtcTransport(token=other).connect("127.0.0.1", port, mirror(forged))
        assert "403" in str(info.value)
        # a viewer's token claiming admin passes signaling and is refused by the session
        creds = client_credentials("viewer")
        creds = type(creds)(creds.key, creds.token, "admin")
        client = mirror(creds)
        carrier = await WebRtcTransport().connect("127.0.0.1", port, client)
        client.start(carrier)
        await until(lambda: client.log.refused is not None)
        assert client.log.refused is not None and client.log.refused.code is RefusalCode.ROLE
        assert "viewer" in client.log.refused.reason and "admin" in client.log.refused.reason
        client.close()

    hosted(body)


class _NoAnswer:
    """What a client meets when the QUIC port is closed or filtered: real UDP datagrams sent to
    a port where nothing answers. Used only when the ``quic`` backend is not installed."""

    name = "quic"

    async def connect(self, host: str, port: int, handler: Any, *, fingerprint: str = "",
                      timeout: float = 5.0) -> Any:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                           remote_addr=(host, port))
        try:
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                transport.sendto(b"\xc0" + bytes(1199))  # a QUIC Initial-sized probe
                await asyncio.sleep(0.2)
        finally:
            transport.close()
        raise ConnectError(f"no QUIC handshake with {host}:{port} in {timeout:g} s")


def _quic_backend() -> Any:
    try:
        return plugins.create("theta.transports", "quic")
    except BackendUnavailableError:
        return _NoAnswer()


def test_auto_falls_back_to_webrtc_when_the_quic_port_is_closed() -> None:
    async def body(host: CubesHost, port: int) -> None:
        # the signaling service holds TCP `port`; nothing listens on UDP `port` (QUIC closed)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", port))  # proves the UDP port is free, then frees it
        probe.close()
        client = mirror()
        auto = AutoTransport(primary=_quic_backend(), fallback=WebRtcTransport(),
                             fallback_after=0.6)
        began = time.perf_counter()
        carrier = await auto.connect("127.0.0.1", port, client)
        elapsed = time.perf_counter() - began
        client.start(carrier)
        assert auto.choice is not None and client.choice is auto.choice
        assert auto.choice.transport == "webrtc"
        assert "did not answer within 0.6 s" in auto.choice.reason
        assert 0.6 <= auto.choice.elapsed_s <= elapsed < 0.6 + 5.0
        await until(lambda: converged(host, client))
        client.session.send_commands(b"edit over the fallback", SessionPeer.now())
        client.pump()
        await until(lambda: host.peers[0].log.commands == [b"edit over the fallback"])
        client.close()

    hosted(body)


def test_auto_reports_a_primary_that_cannot_connect_at_once() -> None:
    class Broken:
        name = "quic"

        async def connect(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectError("cannot resolve nowhere.invalid")

    async def body(host: CubesHost, port: int) -> None:
        client = mirror()
        auto = AutoTransport(primary=Broken(), fallback=WebRtcTransport(), fallback_after=2)
        carrier = await auto.connect("127.0.0.1", port, client)
        assert auto.choice is not None and auto.choice.transport == "webrtc"
        assert auto.choice.reason.startswith("quic failed: ConnectError: cannot resolve")
        assert auto.choice.elapsed_s < 2
        carrier.close()

    hosted(body)


def test_fallback_time_is_configurable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_FALLBACK_AFTER", "0.8")
    assert AutoTransport().fallback_after == 0.8
    monkeypatch.delenv("THETA_FALLBACK_AFTER")
    assert AutoTransport().fallback_after <= 2.0
    for bad in ("soon", "0", "99"):
        monkeypatch.setenv("THETA_FALLBACK_AFTER", bad)
        with pytest.raises(ConnectError):
            AutoTransport()
