"""Test and benchmark support: the session driven over a real carrier, a cubes host and a
mirroring client (asyncio glue around the sans-I/O Session, Replicator and Receiver).

Deliberately small: it is what a server and a client do per carrier (feed what arrives, pump
what the session has to send, serve its timer, replicate at a fixed rate), so the WebRTC tests
exercise the same Session the QUIC transport carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from theta_ecs.replication import Receiver, Replicator, ReplicatorConfig
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_ecs.serialization.snapshot import capture
from theta_ecs.wire.envelope import PROTOCOL_VERSION
from theta_net.carrier import Carrier, Channel
from theta_net.session import (
    Admission,
    ClientCredentials,
    CommandsReceived,
    Connected,
    Disconnected,
    HeartbeatMeasured,
    Refused,
    Session,
    SessionConfig,
    StateReceived,
    TokenAuthority,
)

SCHEMA = ReplicationSchema(CubesScene.components)
MANIFEST_HASH = 0x5EED_0F_CB
AUTHORITY = TokenAuthority.from_seed(bytes(range(1, 33)))


def session_config(**changes: Any) -> SessionConfig:
    base = SessionConfig(SCHEMA, manifest_hash=MANIFEST_HASH, max_datagram=1160,
                         heartbeat_interval=0.1)
    return replace(base, **changes)


def issue(role: str = "editor", ttl: float = 600.0) -> str:
    return AUTHORITY.issue(role, now=time.time(), ttl=ttl)


def client_credentials(role: str = "editor") -> ClientCredentials:
    return ClientCredentials.from_seed(os.urandom(32), issue(role), role)


def page_config() -> dict[str, Any]:
    """What the browser page needs to speak the session (the host's hashes)."""
    return {"schema_hash": str(SCHEMA.hash), "manifest_hash": str(MANIFEST_HASH),
            "protocol_version": PROTOCOL_VERSION}


@dataclass
class PeerLog:
    connected: Connected | None = None
    refused: Refused | None = None
    disconnected: Disconnected | None = None
    rtts: list[float] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)
    states: int = 0


class SessionPeer:
    """A :class:`CarrierHandler` driving one Session over one carrier."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.carrier: Carrier | None = None
        self.log = PeerLog()
        self.replicator: Replicator | None = None  # host side
        self.receiver: Receiver | None = None  # client side
        self.join_token = session.credentials.token if session.credentials else ""
        self._timer: asyncio.TimerHandle | None = None
        self.choice: Any = None

    def transport_chosen(self, choice: Any) -> None:
        self.choice = choice

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def start(self, carrier: Carrier) -> None:
        self.carrier = carrier
        if carrier.max_datagram_size < self.session.config.max_datagram:
            # what the carrier takes bounds what the session offers (as Server/Client do)
            cfg = replace(self.session.config, max_datagram=carrier.max_datagram_size)
            old = self.session
            self.session = Session(cfg, is_client=old.is_client, credentials=old.credentials,
                                   admission=old.admission)
        if self.session.is_client:
            self.session.connect(self.now())
        else:
            self.session.accept(self.now())
        self.pump()

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        self.session.receive(channel, payload, self.now())
        self.pump()

    def carrier_closed(self, reason: str) -> None:
        if not self.session.closed:
            self.session.close(self.now(), f"carrier closed: {reason}")
            self.pump()

    def pump(self) -> None:
        now = self.now()
        while (event := self.session.next_event()) is not None:
            self._on_event(event, now)
        if self.carrier is not None:
            for channel, data in self.session.datagrams_to_send(now):
                self.carrier.send(channel, data)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.session.get_timer()
        if when is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, when - self.now())
            self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.session.handle_timer(self.now())
        self.pump()

    def _on_event(self, event: Any, now: float) -> None:
        log = self.log
        if isinstance(event, Connected):
            log.connected = event
            if not self.session.is_client:
                compress = "zstd" in event.negotiated.features
                self.replicator = Replicator(SCHEMA, ReplicatorConfig(
                    compress=compress, packet_budget=event.negotiated.max_datagram - 96))
        elif isinstance(event, Refused):
            log.refused = event
        elif isinstance(event, Disconnected):
            log.disconnected = event
            if self._timer is not None:
                self._timer.cancel()
        elif isinstance(event, HeartbeatMeasured):
            log.rtts.append(event.rtt)
        elif isinstance(event, CommandsReceived):
            log.commands.append(event.packet)
        elif isinstance(event, StateReceived):
            log.states += 1
            if self.replicator is not None:
                self.replicator.receive(event.packet, now)
            elif self.receiver is not None:
                self.receiver.receive(event.packet, now)
                for ack in self.receiver.produce(now):
                    self.session.send_state(ack, now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.session.closed:
            self.session.close(self.now(), "done")
            if self.carrier is not None:
                for channel, data in self.session.datagrams_to_send(self.now()):
                    self.carrier.send(channel, data)
        if self.carrier is not None:
            self.carrier.close("done")


class CubesHost:
    """A server: the cubes scene stepped at ``rate`` Hz, replicated to every connected peer."""

    def __init__(self, n: int = 200, rate: float = 60.0, seed: int = 1) -> None:
        self.scene = CubesScene(n=n, seed=seed)
        self.rate = rate
        self.tick = 0
        self.peers: list[SessionPeer] = []
        self.admission = Admission(AUTHORITY)
        self.config = session_config()
        self._task: asyncio.Task[None] | None = None
        self.bytes_sent = 0
        self.tick_seconds: list[float] = []

    def accept(self, carrier: Carrier) -> SessionPeer:
        peer = SessionPeer(Session.server(self.config, self.admission))
        self.peers.append(peer)
        peer.start(carrier)
        return peer

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        period = 1.0 / self.rate
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += period
            began = time.process_time()
            self.step()
            self.tick_seconds.append(time.process_time() - began)
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def step(self) -> None:
        self.scene.step(1.0 / self.rate)
        self.tick += 1
        state = None
        now = SessionPeer.now()
        for peer in self.peers:
            if peer.replicator is None or not peer.session.connected:
                continue
            if state is None:
                state = capture(self.scene.world, SCHEMA, self.tick)
            # the replicator's budget follows the path (as theta_net's Server does it)
            room = peer.carrier.unreliable_budget() if peer.carrier is not None else 0
            budget = None if room >= 1 << 16 else max(room - 256, 256)
            if budget != peer.replicator.config.bandwidth_budget:
                peer.replicator.config = replace(peer.replicator.config, bandwidth_budget=budget)
            for packet in peer.replicator.produce(state, now):
                try:
                    peer.session.send_state(packet, now)
                except Exception:
                    break
            peer.pump()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for peer in self.peers:
            peer.close()


def mirror(credentials: ClientCredentials | None = None) -> SessionPeer:
    """A client that applies the host's state to its own World and acknowledges it."""
    peer = SessionPeer(Session.client(session_config(), credentials or client_credentials()))
    peer.receiver = Receiver(SCHEMA)
    return peer


def converged(host: CubesHost, client: SessionPeer) -> bool:
    """The client's applied state equals a state the host sent (entities and quantized values)."""
    assert client.receiver is not None
    applied = client.receiver.applied
    if client.receiver.applied_sequence < 0:
        return False
    peer = next((p for p in host.peers if p.replicator is not None), None)
    if peer is None or peer.replicator is None:
        return False
    sent = peer.replicator._history.get(client.receiver.applied_sequence)
    if sent is None:
        return False
    return (len(applied) == len(sent.state)
            and bool(np.array_equal(applied.entities, sent.state.entities))
            and bool(np.array_equal(applied.values, sent.state.values)))
