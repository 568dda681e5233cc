"""Server and clients over real QUIC on 127.0.0.1: joins, convergence, the command log with
verified identities and roles, refusals, pinned certificates, reconnection after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from theta_ecs.commandlog import PermissionDeniedError, Role
from theta_ecs.scenes.crowd import CrowdScene
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net.client import Client
from theta_net.errors import FingerprintMismatchError, RefusedError
from theta_net.quic import QuicTransport
from theta_net.server import Server

from .aio_support import run, until

SCHEMA = ReplicationSchema(CubesScene.components)


def cubes_server(**kw: object) -> tuple[Server, CubesScene]:
    scene = CubesScene(48, seed=3)
    return Server(scene.world, SCHEMA, step=scene.step, port=0, rate=30.0, **kw), scene  # type: ignore[arg-type]


def test_two_clients_join_converge_and_share_commands_with_verified_roles() -> None:
    async def main() -> None:
        server, _ = cubes_server()
        await server.start()
        ticking = asyncio.ensure_future(server.run())
        editor = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("editor"), rate=30)
        viewer = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token("viewer"), rate=30)
        tasks = [asyncio.ensure_future(c.run()) for c in (editor, viewer)]
        try:
            await until(lambda: editor.editor is not None and viewer.editor is not None,
                        what="both clients admitted with a roster")
            assert editor.connected_event and editor.connected_event.role == "editor"
            assert server.roster.role_of(editor.signer.author) is Role.EDITOR
            assert server.roster.role_of(viewer.signer.author) is Role.VIEWER
            await until(lambda: len(editor.receiver.applied) == 48, what="the join")
            # Convergence: with the simulation paused, both mirrors equal the server bit for bit.
            server.paused = True
            await until(lambda: all(server.converged(c.receiver.applied) for c in (editor, viewer)),
                        what="convergence")
            server.paused = False
            # A command from the editor reaches the server and the viewer, under its author.
            assert editor.editor is not None and viewer.editor is not None
            net_id = editor.editor.create_entity({"px": 2.5})
            await until(lambda: viewer.editor is not None and viewer.editor.alive(net_id),
                        what="the command at the viewer")
            assert server.pipeline.editor.transform(net_id)["px"] == 2.5
            entry = next(e for e in server.log.ordered() if e.scope.entity == net_id)
            assert entry.author == editor.signer.author
            # The viewer's token role is the role its log enforces: locally it cannot create ...
            with pytest.raises(PermissionDeniedError):
                viewer.editor.create_entity({"px": 1.0})
            # ... and a viewer that lies to its own roster is refused by the server's log.
            assert viewer.log is not None
            viewer.roster.add(viewer.signer.public_key, Role.EDITOR)
            forged = viewer.editor.create_entity({"px": 9.0})
            await until(lambda: server.world.telemetry.counters.get("permission_rejections", 0)
                        > 0, what="the server refusing the viewer's command")
            assert not server.pipeline.editor.alive(forged)
            assert server.metrics()["clients"] == 2
            await until(lambda: server.world.telemetry.gauges.get("net.clients") == 2.0,
                        what="the server's telemetry gauges")
        finally:
            for c in (editor, viewer):
                c.close()
            server.close()
            ticking.cancel()
            for t in tasks:
                t.cancel()

    run(main)


def test_refusals_over_quic_name_both_sides() -> None:
    async def main() -> None:
        server, _ = cubes_server()
        await server.start()
        ticking = asyncio.ensure_future(server.run())
        try:
            other = ReplicationSchema(CrowdScene.components)
            wrong = Client(other, "127.0.0.1", server.port, server.issue_token(), reconnect=False)
            with pytest.raises(RefusedError) as info:
                await wrong.connect()
            assert f"0x{SCHEMA.hash:016x} here" in str(info.value)
            assert f"0x{other.hash:016x} there" in str(info.value)
            expired = server.authority.issue(  # type: ignore[attr-defined]
                "editor", now=server.admission.wall_clock() - 100, ttl=10,
                fingerprint=bytes.fromhex(server.fingerprint))
            late = Client(SCHEMA, "127.0.0.1", server.port, expired, reconnect=False)
            with pytest.raises(RefusedError, match="expired"):
                await late.connect()
            pinned = Client(SCHEMA, "127.0.0.1", server.port, server.issue_token(),
                            fingerprint="00" * 32, reconnect=False)
            with pytest.raises(FingerprintMismatchError):
                await pinned.connect()
            await until(lambda: server.stats.refused.get("schema_hash") == 1
                        and server.stats.refused.get("token_expired") == 1)
            assert not server.clients
        finally:
            server.close()
            ticking.cancel()

    run(main)


def test_restarted_server_keeps_identity_and_loses_no_acknowledged_command(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        server, _ = cubes_server(state_dir=tmp_path)
        listener = await server.start()
        port, fingerprint = server.port, server.fingerprint
        token = server.issue_token("editor")
        ticking = asyncio.ensure_future(server.run())
        client = Client(SCHEMA, "127.0.0.1", port, token, rate=30, reconnect_delay=0.2)
        task = asyncio.ensure_future(client.run())
        try:
            await until(lambda: client.editor is not None, what="admission")
            assert client.editor is not None
            ids = [client.editor.create_entity({"px": float(i)}) for i in range(5)]
            await until(lambda: all(server.pipeline.editor.alive(i) for i in ids),
                        what="acknowledgement")
            acknowledged = {e.id for e in server.log.ordered()}
            # Kill the server (no goodbye: the transport just goes away) ...
            ticking.cancel()
            listener.close()
            server.log.store.close()  # type: ignore[union-attr]
            await until(lambda: not client.connected, what="loss detection")
            # ... issue while it is down ...
            late = client.editor.create_entity({"px": 99.0})
            # ... and restart it on the same port from the same state directory.
            server2, _ = cubes_server(state_dir=tmp_path, transport=QuicTransport())
            server2.port = port
            await server2.start()
            assert server2.fingerprint == fingerprint  # the pinned certificate survived
            assert server2.restored >= len(acknowledged) - 1
            ticking = asyncio.ensure_future(server2.run())
            await until(lambda: client.connected and client.stats.connects == 2,
                        timeout=10, what="reconnection")
            assert client.connected_event and client.connected_event.author == client.signer.author
            await until(lambda: acknowledged <= {e.id for e in server2.log.ordered()},
                        what="acknowledged entries after the restart")
            await until(lambda: server2.pipeline.editor.alive(late), what="the late command")
            await until(lambda: len(client.receiver.applied) == 48, what="a fresh mirror")
            server2.close()
        finally:
            client.close()
            ticking.cancel()
            task.cancel()

    run(main)


def test_timed_out_and_abandoned_connects_leave_no_unretrieved_error_or_open_socket() -> None:
    """A QUIC connect that times out (nothing answers), one its caller abandons (an outer
    timeout cancels it: the Client's own connect timeout), and handshakes cut short against a
    real server: asyncio's exception handler and its logger hear nothing ("Future exception was
    never retrieved"), and every UDP socket is closed, even after the loop has ended."""
    import gc
    import logging
    import socket
    import warnings

    heard: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(record.getMessage())

    class Quiet:
        def carrier_received(self, channel: object, payload: bytes) -> None: ...
        def carrier_closed(self, reason: str) -> None: ...

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # datagrams go in, nothing answers (a filtered QUIC port)
    port = silent.getsockname()[1]

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, ctx: heard.append(str(ctx.get("message"))))
        from theta_net.errors import ConnectError

        with pytest.raises(ConnectError, match="no QUIC handshake"):
            await QuicTransport().connect("127.0.0.1", port, Quiet(), timeout=0.3)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                QuicTransport().connect("127.0.0.1", port, Quiet(), timeout=5.0), 0.3)
        client = Client(SCHEMA, "127.0.0.1", port, "", transport="quic", connect_timeout=0.3)
        with pytest.raises(ConnectError, match="no connection"):
            await client.connect()
        server = QuicTransport()
        listener = await server.listen("127.0.0.1", 0, lambda carrier: Quiet())
        for _ in range(5):  # cut short at any point of the handshake
            with pytest.raises(ConnectError):
                await QuicTransport().connect("127.0.0.1", listener.address[1], Quiet(),
                                              timeout=0.0005)
        listener.close()
        # the last of these ends the loop at once: done-callbacks scheduled now never run

    gc.collect()  # what earlier tests left is not this test's
    log = logging.getLogger("asyncio")
    catch = Catch()
    log.addHandler(catch)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            run(main)
            gc.collect()
        silent.close()
    finally:
        log.removeHandler(catch)
    assert not [m for m in heard if "never retrieved" in m or "exception" in m.lower()], heard
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


def test_a_client_sends_its_area_of_interest_and_the_server_bounds_it() -> None:
    """The crowd over real QUIC: a client that sets an area of interest receives only the agents
    inside it while another receives the whole crowd; clearing it brings the whole crowd back.
    Hostile areas (a radius over the bound, a centre far out, a NaN patched into the bytes) are
    refused and counted, and leave the client's area as it was."""
    import struct

    import numpy as np

    from theta_ecs.wire import envelope as wire
    from theta_net.carrier import Channel
    from theta_net.interest import InterestRefusedError, area_from
    from theta_net.scenes import host
    from theta_net.session.session import INTEREST_AREA

    n = 400
    hosted = host("crowd", n)
    server = Server(hosted.world, hosted.schema, step=hosted.step, port=0, rate=30.0,
                    interest=hosted.interest)

    def inside(radius: float) -> int:
        assert hosted.interest is not None
        return len(hosted.interest.grid.query(np.zeros(3), radius))

    async def main() -> None:
        await server.start()
        ticking = asyncio.ensure_future(server.run())
        whole = Client(hosted.schema, "127.0.0.1", server.port, server.issue_token("viewer"),
                       rate=30)
        near = Client(hosted.schema, "127.0.0.1", server.port, server.issue_token("viewer"),
                      rate=30)
        near.set_interest((0.0, 0.0, 0.0), 150.0)  # before connecting: sent once admitted
        with pytest.raises(InterestRefusedError) as bad:
            near.set_interest((float("nan"), 0.0, 0.0), 10.0)
        assert bad.value.reason == "center"
        with pytest.raises(InterestRefusedError):
            near.set_interest((0.0, 0.0, 0.0), -1.0)
        assert near.interest == ((0.0, 0.0, 0.0), 150.0)  # a refused call changes nothing
        tasks = [asyncio.ensure_future(c.run()) for c in (whole, near)]
        try:
            await until(lambda: len(whole.receiver.applied) == n, what="the whole crowd")
            assert near.session is not None and near.session.negotiated is not None
            assert INTEREST_AREA in near.session.negotiated.features
            await until(lambda: server.stats.interest_updates == 1, what="the area applied")
            await until(lambda: 0 < len(near.receiver.applied) <= inside(150.0 * 1.1),
                        what="only the agents near the centre")
            few = len(near.receiver.applied)
            assert few < n // 4 and len(whole.receiver.applied) == n
            print(f"area of interest r=150 m: {few} of {n} agents (the other client: {n})")
            # hostile areas, past the client's own checks: refused, counted, area unchanged
            session, now = near.session, near.now()
            session.send_interest((0.0, 0.0, 0.0), 1.0e6, now)  # radius over the bound
            session.send_interest((1.0e30, 0.0, 0.0), 10.0, now)  # centre far out
            raw = wire.encode_envelope(wire.Envelope(
                wire.Header(7, 0, schema_hash=0),
                wire.Interest(0.0, 0.0, 0.0, 12345.0)))
            at = raw.index(struct.pack("<f", 12345.0))
            nan = raw[:at] + struct.pack("<f", float("nan")) + raw[at + 4:]
            malformed = server.faults().get("malformed", 0)
            near._flush()
            assert near.carrier is not None
            near.carrier.send(Channel.RELIABLE, nan)
            await until(lambda: sum(server.stats.interest_refused.values()) == 2
                        and server.faults().get("malformed", 0) > malformed,
                        what="the hostile areas refused")
            assert server.stats.interest_refused == {"radius": 1, "center": 1}
            tel = hosted.world.telemetry.counters
            assert tel["net.interest_refused.radius"] == 1
            assert tel["net.interest_refused.center"] == 1
            assert server.stats.interest_updates == 1
            await asyncio.sleep(0.5)
            assert len(near.receiver.applied) <= inside(150.0 * 1.1)  # still the small area
            # cleared: the whole crowd again
            near.set_interest((0.0, 0.0, 0.0), 0.0)
            await until(lambda: len(near.receiver.applied) == n, what="the whole crowd again")
            assert server.stats.interest_updates == 2
        finally:
            for c in (whole, near):
                c.close()
            server.close()
            ticking.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.sleep(0.1)

    run(main)
    with pytest.raises(InterestRefusedError) as no_manager:  # e.g. the cubes scene
        area_from(None, (0.0, 0.0, 0.0), 10.0)
    assert no_manager.value.reason == "unsupported"
