"""The core's ``loopback`` transport (an in-process link model: latency, jitter, loss,
duplication, reordering, bandwidth) as a carrier for :class:`Server` and :class:`Client`.

``theta_ecs.backends.loopback`` hands out connected transport pairs, polled for what has
arrived; this adapter gives them the listen/connect surface of the network transports, one
byte in front of each payload naming its channel (reliable payloads use the model's reliable
mode), and polls each end on the asyncio loop. Tests run the very Server and Client of the QUIC
path over it, deterministically impaired, with no socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from theta_ecs.backends.loopback import LoopbackTransport, LoopbackTransportFactory

from .carrier import Carrier, CarrierHandler, Channel
from .errors import ConnectError

__all__ = ["LoopbackBackend", "LoopbackCarrier"]

POLL_S = 0.001
_CHANNELS = {int(c): c for c in Channel}


class LoopbackCarrier:
    """One end of a loopback pair as a :class:`~theta_net.carrier.Carrier`."""

    def __init__(self, end: LoopbackTransport, max_datagram_size: int = 1151) -> None:
        self.end = end
        self.handler: CarrierHandler | None = None
        self.max_datagram_size = max_datagram_size
        self.closed = False
        self.bad_payloads = 0
        self._task: asyncio.Task[None] | None = None

    def send(self, channel: Channel, payload: bytes) -> bool:
        if self.closed or self.end.closed or self.end.peer_closed:
            return False
        if channel is not Channel.RELIABLE and len(payload) > self.max_datagram_size:
            return False
        self.end.send(bytes((int(channel),)) + payload, reliable=channel is Channel.RELIABLE)
        return True

    def unreliable_budget(self) -> int:
        """The model's bottleneck queue is its own pacing: no window to report."""
        return 1 << 30

    def close(self, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.end.close()
        self._finish(reason or "closed")

    def start(self, handler: CarrierHandler) -> None:
        self.handler = handler
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while not self.closed:
            for data in self.end.receive():
                channel = _CHANNELS.get(data[0]) if data else None
                if channel is None:
                    self.bad_payloads += 1
                elif self.handler is not None:
                    self.handler.carrier_received(channel, data[1:])
            if self.end.peer_closed and not self.closed:
                self.closed = True
                self._finish("the peer closed the connection")
                return
            await asyncio.sleep(POLL_S)

    def _finish(self, reason: str) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.carrier_closed(reason)


class _LoopbackListener:
    def __init__(self, backend: LoopbackBackend, address: tuple[str, int]) -> None:
        self.backend = backend
        self.address = address
        self.carriers: list[LoopbackCarrier] = []

    def close(self) -> None:
        LoopbackBackend._listeners.pop(self.address, None)
        for carrier in self.carriers:
            carrier.close("server shutting down")


class LoopbackBackend:
    """listen/connect over loopback pairs. Addresses are names shared by every backend of the
    process (a server and its clients may each resolve their own); a connection's pair comes
    from the listening backend's factory, so the server's link model applies."""

    name = "loopback"
    _listeners: dict[tuple[str, int], tuple[_LoopbackListener,
                                            Callable[[Carrier], CarrierHandler]]] = {}
    _ports = 40_000

    def __init__(self, factory: LoopbackTransportFactory | None = None, **model: Any) -> None:
        self.factory = factory if factory is not None else LoopbackTransportFactory(**model)

    async def listen(
        self, host: str, port: int, accept: Callable[[Carrier], CarrierHandler]
    ) -> _LoopbackListener:
        if port == 0:
            LoopbackBackend._ports += 1
            port = LoopbackBackend._ports
        listener = _LoopbackListener(self, (host, port))
        self._listeners[(host, port)] = (listener, accept)
        return listener

    async def connect(
        self, host: str, port: int, handler: CarrierHandler, *, fingerprint: str = ""
    ) -> LoopbackCarrier:
        entry = self._listeners.get((host, port))
        if entry is None:
            raise ConnectError(f"no loopback listener at {host}:{port}")
        listener, accept = entry
        client_end, server_end = listener.backend.factory.connect_pair()
        server = LoopbackCarrier(server_end)
        listener.carriers.append(server)
        server.start(accept(server))
        client = LoopbackCarrier(client_end)
        client.start(handler)
        return client
