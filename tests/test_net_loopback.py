"""The same Server and Client over the core's loopback link model (no socket): 40 ms RTT,
jitter, 5% loss and reordering on the unreliable channel; they join, converge and share
commands."""

from __future__ import annotations

import asyncio

import numpy as np

from theta_ecs.backends.loopback import LinkModel, LoopbackTransportFactory
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net import Client, Server
from theta_net.loopback import LoopbackBackend

SCHEMA = ReplicationSchema(CubesScene.components)


def test_server_and_clients_over_an_impaired_loopback_link() -> None:
    def make():  # type: ignore[no-untyped-def]
        model = LinkModel(latency_s=0.02, jitter_s=0.005, loss=0.05, reorder=0.05, seed=7)
        backend = LoopbackBackend(LoopbackTransportFactory(model))
        scene = CubesScene(40, seed=2)
        return Server(scene.world, SCHEMA, step=scene.step, rate=30.0, port=0,
                      transport=backend), SCHEMA

    async def body(server, clients, loop) -> None:  # type: ignore[no-untyped-def]
        end = loop.time() + 20
        while not all(c.editor is not None and len(c.receiver.applied) == 40
                      for c in clients):
            assert loop.time() < end, "join over loopback"
            await asyncio.sleep(0.05)
        assert clients[0].editor is not None
        net_id = clients[0].editor.create_entity({"px": 4.0})
        server.paused = True
        while not (all(server.converged(c.receiver.applied) for c in clients)
                   and clients[1].editor is not None and clients[1].editor.alive(net_id)):
            assert loop.time() < end, "convergence over loopback"
            await asyncio.sleep(0.05)
        # The link model did impair the path, and the heartbeats measured it.
        session = clients[0].session
        assert session is not None
        while session.rtt.samples < 3:
            assert loop.time() < end, "heartbeats over loopback"
            await asyncio.sleep(0.05)
        assert 0.03 < session.rtt.srtt < 0.2

    run_with(make, body)


def run_with(scene_server, body) -> None:  # type: ignore[no-untyped-def]
    """Run ``body(server, clients, loop)`` with a ticking server and two clients over loopback."""

    async def main() -> None:
        server, schema = scene_server()
        await server.start()
        clients = [Client(schema, "127.0.0.1", server.port, server.issue_token(), rate=30,
                          transport="loopback") for _ in range(2)]
        futures = [asyncio.ensure_future(server.run())]
        futures += [asyncio.ensure_future(c.run()) for c in clients]
        try:
            await body(server, clients, asyncio.get_running_loop())
        finally:
            for c in clients:
                c.close()
            server.close()
            for f in futures:
                f.cancel()
            await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(main(), 60))


async def wait(loop: asyncio.AbstractEventLoop, cond, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, what
        await asyncio.sleep(0.02)


def test_a_client_whose_acks_stop_is_held_then_restarted_from_a_full_state() -> None:
    def make():  # type: ignore[no-untyped-def]
        scene = CubesScene(40, seed=4)
        return Server(scene.world, SCHEMA, step=scene.step, rate=60.0, port=0,
                      transport="loopback"), SCHEMA

    async def body(server, clients, loop) -> None:  # type: ignore[no-untyped-def]
        mute = clients[0]
        await wait(loop, lambda: all(len(c.receiver.applied) == 40 for c in clients), "joins")
        await wait(loop, lambda: all(i.replicator is not None and i.replicator.acked_sequence
                                     for i in server.clients.values()), "acks")
        # The muted client stops acknowledging (its acks are lost) for ~1.5 s.
        produce = mute.receiver.produce
        mute.receiver.produce = lambda now: []  # type: ignore[method-assign]
        skipped = server.stats.state_skipped
        await wait(loop, lambda: server.stats.resyncs >= 1, "a resync")
        assert server.stats.state_skipped > skipped  # the ack clock held its state back
        mute.receiver.produce = produce  # type: ignore[method-assign]
        server.paused = True
        await wait(loop, lambda: all(server.converged(c.receiver.applied) for c in clients),
                   "convergence after the resync")

    run_with(make, body)


def test_interest_management_limits_what_each_client_sees() -> None:
    from theta_ecs.replication import AreaOfInterest
    from theta_net.scenes import host

    def make():  # type: ignore[no-untyped-def]
        hosted = host("crowd", 400)
        return Server(hosted.world, hosted.schema, step=hosted.step, rate=20.0, port=0,
                      transport="loopback", interest=hosted.interest), hosted.schema

    async def body(server, clients, loop) -> None:  # type: ignore[no-untyped-def]
        await wait(loop, lambda: len(server.clients) == 2, "admission")
        near = min(server.clients.values(), key=lambda i: i.session.session_id)
        near.area = AreaOfInterest(np.zeros(3), 100.0)
        await wait(loop, lambda: all(len(c.receiver.applied) > 0 for c in clients), "joins")
        await asyncio.sleep(0.5)
        counts = sorted(len(c.receiver.applied) for c in clients)
        assert counts[1] == 400  # no area: the whole crowd
        assert 0 < counts[0] < 400  # an area of 100 m: a part of it

    run_with(make, body)
