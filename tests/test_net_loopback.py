"""The same Server and Client over the core's loopback link model (no socket): 40 ms RTT,
jitter, 5% loss and reordering on the unreliable channel; they join, converge and share
commands."""

from __future__ import annotations

import asyncio

from theta_ecs.backends.loopback import LinkModel, LoopbackTransportFactory
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net import Client, Server
from theta_net.loopback import LoopbackBackend

SCHEMA = ReplicationSchema(CubesScene.components)


def test_server_and_clients_over_an_impaired_loopback_link() -> None:
    async def main() -> None:
        model = LinkModel(latency_s=0.02, jitter_s=0.005, loss=0.05, reorder=0.05, seed=7)
        backend = LoopbackBackend(LoopbackTransportFactory(model))
        scene = CubesScene(40, seed=2)
        server = Server(scene.world, SCHEMA, step=scene.step, rate=30.0, port=0,
                        transport=backend)
        await server.start()
        clients = [Client(SCHEMA, "127.0.0.1", server.port, server.issue_token(), rate=30,
                          transport="loopback") for _ in range(2)]
        futures = [asyncio.ensure_future(server.run())]
        futures += [asyncio.ensure_future(c.run()) for c in clients]
        loop = asyncio.get_running_loop()
        try:
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
        finally:
            for c in clients:
                c.close()
            server.close()
            for f in futures:
                f.cancel()
            await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(main(), 60))
