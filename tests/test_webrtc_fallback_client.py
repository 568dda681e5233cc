"""``Client(transport="auto")`` against a server whose QUIC port is closed: the client falls
back to WebRTC, joins, converges bit for bit and edits, through theta_net's own Server and
Client. A server on ``auto`` serves both: QUIC clients and WebRTC clients side by side."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("aiortc")
pytest.importorskip("theta_net.server", reason="theta_net.server/client come with issue 8")

from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net.cli import TABLE_HEAD, table_row
from theta_net.client import Client
from theta_net.server import Server
from theta_net.webrtc.auto import AutoTransport
from theta_net.webrtc.transport import WebRtcTransport

from . import aio_support
from .aio_support import run

SCHEMA = ReplicationSchema(CubesScene.components)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_ICE_HOST_ADDRESSES", "127.0.0.1")
    monkeypatch.delenv("THETA_SIGNALING_URL", raising=False)
    monkeypatch.delenv("THETA_SIGNALING_BIND", raising=False)


until = partial(aio_support.until, timeout=10.0)


def test_auto_client_falls_back_to_webrtc_joins_converges_and_edits() -> None:
    async def main() -> None:
        scene = CubesScene(48, seed=3)
        # the server offers WebRTC only: its QUIC port (UDP) is closed
        server = Server(scene.world, SCHEMA, step=scene.step, port=0, rate=30.0,
                        transport=WebRtcTransport())
        await server.start()
        ticking = asyncio.ensure_future(server.run())
        auto = AutoTransport(fallback_after=1.0)
        client = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("editor"),
                         rate=30, transport=auto)
        task = asyncio.ensure_future(client.run())
        try:
            await until(lambda: client.editor is not None, what="admitted over the fallback")
            assert auto.choice is not None and auto.choice.transport == "webrtc"
            assert "quic did not answer within 1 s" in auto.choice.reason
            assert client.connected_event and client.connected_event.role == "editor"
            # the choice and its reason reach the client, its telemetry and the live table
            assert client.transport_choice is auto.choice and auto.choice.fell_back
            tel = client.world.telemetry
            assert tel.gauges["net.transport.webrtc"] == 1.0
            assert tel.gauges["net.transport.quic"] == 0.0
            assert tel.gauges["net.transport_choice_ms"] >= 1000.0
            assert tel.counters["net.fallback.timeout"] == 1
            assert "net.fallback.failed" not in tel.counters
            m = client.metrics()
            assert m["transport"] == "webrtc" and m["via"] == "webrtc:timeout"
            assert m["transport_reason"] == auto.choice.reason
            row = table_row(1.0, "self", m)
            assert row.split()[-1] == "webrtc:timeout" and TABLE_HEAD.split()[-1] == "via"
            await until(lambda: len(client.receiver.applied) == 48, what="the join")
            server.paused = True
            await until(lambda: server.converged(client.receiver.applied), what="convergence")
            server.paused = False
            assert client.editor is not None
            net_id = client.editor.create_entity({"px": 2.5})
            await until(lambda: server.pipeline.editor.alive(net_id), what="the edit")
            assert server.pipeline.editor.transform(net_id)["px"] == 2.5
        finally:
            client.close()
            server.close()
            ticking.cancel()
            task.cancel()
            await asyncio.sleep(0.1)

    run(main)


def test_a_server_on_auto_serves_quic_and_webrtc_clients_side_by_side() -> None:
    async def main() -> None:
        scene = CubesScene(48, seed=3)
        server = Server(scene.world, SCHEMA, step=scene.step, port=0, rate=30.0,
                        transport=AutoTransport())
        await server.start()
        ticking = asyncio.ensure_future(server.run())
        quic = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("viewer"), rate=30,
                      transport=AutoTransport())
        webrtc = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("viewer"), rate=30,
                        transport="webrtc")
        tasks = [asyncio.ensure_future(c.run()) for c in (quic, webrtc)]
        try:
            await until(lambda: all(len(c.receiver.applied) == 48 for c in (quic, webrtc)),
                        what="both joined")
            choice = quic._transport_arg.choice  # type: ignore[union-attr]
            assert choice is not None and choice.transport == "quic"
            assert quic.transport_choice is choice and not choice.fell_back
            assert quic.metrics()["via"] == "quic"
            assert quic.world.telemetry.gauges["net.transport.quic"] == 1.0
            assert not any(k.startswith("net.fallback") for k in quic.world.telemetry.counters)
            # a transport named outright is reported as configured
            assert webrtc.transport_choice is not None
            assert (webrtc.transport_choice.transport, webrtc.transport_choice.reason) == (
                "webrtc", "configured")
            assert webrtc.world.telemetry.gauges["net.transport.webrtc"] == 1.0
            server.paused = True
            await until(lambda: all(server.converged(c.receiver.applied)
                                    for c in (quic, webrtc)), what="convergence")
        finally:
            for c in (quic, webrtc):
                c.close()
            server.close()
            ticking.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.sleep(0.1)

    run(main)


def test_a_server_on_auto_keeps_its_certificate_in_its_state_directory(tmp_path: Path) -> None:
    """As over plain QUIC: tokens pin the certificate, so a restart must not make a new one."""
    from theta_net.quic import ServerIdentity

    async def main() -> list[str]:
        prints = []
        for _ in range(2):
            scene = CubesScene(4, seed=3)
            server = Server(scene.world, SCHEMA, step=scene.step, port=0, state_dir=tmp_path,
                            transport=AutoTransport(signaling_bind=("127.0.0.1", 0)))
            await server.start()
            prints.append(server.fingerprint)
            server.close()
            await asyncio.sleep(0.1)
        return prints

    first, second = asyncio.run(main())
    assert first == second == ServerIdentity.load(tmp_path / "tls").fingerprint.hex()
