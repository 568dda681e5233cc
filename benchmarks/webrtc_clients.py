"""Mirroring clients in their own process, so that the server's process CPU is the server's
alone: ``python benchmarks/webrtc_clients.py TRANSPORT PORT FINGERPRINT SECONDS TOKEN...``."""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.webrtc_support import mirror

from theta_ecs import plugins
from theta_net.session import ClientCredentials


async def main(transport: str, port: int, fingerprint: str, seconds: float,
               tokens: list[str]) -> None:
    backend = plugins.create("theta.transports", transport)
    peers = []
    for token in tokens:
        peer = mirror(ClientCredentials.from_seed(os.urandom(32), token, "viewer"))
        carrier = await backend.connect("127.0.0.1", port, peer, fingerprint=fingerprint)
        peer.start(carrier)
        peers.append(peer)
    print("connected", flush=True)
    await asyncio.sleep(seconds)
    applied = [p.receiver.applied_sequence if p.receiver else -1 for p in peers]
    print("applied", *applied, flush=True)
    for peer in peers:
        peer.close()
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    os.environ.setdefault("THETA_ICE_HOST_ADDRESSES", "127.0.0.1")
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]),
                     sys.argv[5:]))
