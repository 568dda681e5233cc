"""The client: mirrors a server's World over any network transport.

It keeps one identity (an Ed25519 key: its command-log author) across connections: when the
connection is lost it reconnects with the same key and token, starts its mirror afresh (the
server sends a full state) and resynchronises the command log, so nothing acknowledged is lost.
Commands go through :attr:`Client.editor` once the server's roster has arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from theta_ecs.commandlog import (
    CommandLog,
    CommandPipeline,
    Editor,
    Role,
    Roster,
    Signer,
)
from theta_ecs.interfaces import CommandStore
from theta_ecs.replication import Receiver
from theta_ecs.serialization.errors import SchemaMismatchError, UnknownDictionaryError
from theta_ecs.serialization.schema import ReplicationSchema
from theta_ecs.world import World

from .carrier import Carrier, CarrierHandler, Channel, TransportBackend
from .choice import TransportChoice
from .errors import ConnectError, RefusedError
from .interest import check_sphere
from .session import (
    ClientCredentials,
    CommandsReceived,
    Connected,
    Disconnected,
    HeartbeatMeasured,
    Refused,
    RosterReceived,
    Session,
    SessionConfig,
    StateReceived,
    VoiceReceived,
)
from .session.session import INTEREST_AREA
from .session.tokens import peek
from .transports import resolve
from .voice import VOICE_CODECS, VoiceChannel

__all__ = ["TRANSPORT_GAUGES", "Client", "ClientStats"]

#: The transports a client reports in telemetry (``net.transport.<name>``: 1 for the one in use).
TRANSPORT_GAUGES = ("quic", "webrtc")


@dataclass
class ClientStats:
    connects: int = 0
    disconnects: int = 0
    state_packets: int = 0
    commands_received: int = 0
    refused: str = ""
    last_disconnect: str = ""
    rates: dict[str, float] = field(default_factory=dict)


class Client(CarrierHandler):
    """Mirrors the World of the server at ``host:port``; ``token`` is its join token."""

    def __init__(
        self,
        schema: ReplicationSchema,
        host: str,
        port: int,
        token: str,
        *,
        world: World | None = None,
        signer: Signer | None = None,
        role: str = "",
        fingerprint: str = "",
        transport: TransportBackend | str | None = None,
        session_config: SessionConfig | None = None,
        store: CommandStore | None = None,
        rate: float = 60.0,
        reconnect: bool = True,
        reconnect_delay: float = 0.5,
        connect_timeout: float = 5.0,
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        self.schema = schema
        self.host, self.port = host, port
        self.token = token
        self.world = world if world is not None else World()
        self.signer = signer if signer is not None else Signer()
        self.role = role
        claims = peek(token) if token else None
        self.fingerprint = fingerprint or (claims.fingerprint_hex if claims else "")
        self._transport_arg = transport
        self._transport_options = dict(transport_options or {})
        self.session_config = session_config or SessionConfig(schema, voice_codecs=VOICE_CODECS)
        self.store = store
        self.rate = rate
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.connect_timeout = connect_timeout
        self.receiver = Receiver(schema, self.world)
        self.roster = Roster()
        self.log: CommandLog | None = None
        self.editor: Editor | None = None
        self.pipeline: CommandPipeline | None = None
        self.session: Session | None = None
        self.carrier: Carrier | None = None
        self.connected_event: Connected | None = None
        self.stats = ClientStats()
        self.last_heartbeat: HeartbeatMeasured | None = None
        #: Voice on the session's VOICE channel, as a theta_ecs Transport (theta_net.voice).
        self.voice = VoiceChannel(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._lost = asyncio.Event()
        self._rate_mark: tuple[float, int, int] | None = None
        #: Which transport the connection took and why (``AutoTransport`` reports it through
        #: :meth:`transport_chosen`; a named transport is reported as configured).
        self.transport_choice: TransportChoice | None = None
        #: The area of interest asked for with :meth:`set_interest` (sent again on reconnect).
        self.interest: tuple[tuple[float, float, float], float] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    async def connect(self, timeout: float | None = None) -> Connected:
        """Open a connection and complete the handshake; RefusedError when refused."""
        timeout = self.connect_timeout if timeout is None else timeout
        self._loop = asyncio.get_running_loop()
        transport = resolve(self._transport_arg, **self._transport_options)
        creds = ClientCredentials.from_seed(self.signer.secret_seed(), self.token, self.role)
        self._lost = asyncio.Event()
        try:
            carrier = await asyncio.wait_for(
                transport.connect(self.host, self.port, self, fingerprint=self.fingerprint),
                timeout)
        except asyncio.TimeoutError:
            where = f"{self.host}:{self.port}"
            raise ConnectError(f"no connection to {where} in {timeout:g} s") from None
        if getattr(transport, "choice", None) is None:  # not AutoTransport: chosen by name
            self.transport_chosen(TransportChoice(
                str(getattr(transport, "name", type(transport).__name__)), "configured", 0.0))
        cfg = replace(self.session_config,
                      max_datagram=min(self.session_config.max_datagram,
                                       carrier.max_datagram_size))
        session = Session.client(cfg, creds)
        self.session, self.carrier = session, carrier
        self.connected_event = None
        session.connect(self.now())
        self._flush()
        deadline = self.now() + timeout
        while self.connected_event is None:
            if session.closed:
                carrier.close()
                if self.stats.refused:
                    raise RefusedError(0, self.stats.refused)
                raise ConnectError(f"session closed during the handshake: {session.close_reason}")
            if self.now() > deadline:
                carrier.close("handshake timed out")
                raise ConnectError(f"no handshake with {self.host}:{self.port} in {timeout:g} s")
            await asyncio.sleep(0.005)
        self.stats.connects += 1
        if self.interest is not None:
            self._send_interest()
        if self.stats.connects > 1:
            self._reset_mirror()
            if self.pipeline is not None:
                self.pipeline.request_sync()
        return self.connected_event

    def set_interest(self, center: Sequence[float], radius: float) -> None:
        """Ask the server to replicate only what lies within ``radius`` of ``center`` (radius 0:
        the whole scene again). Kept and sent again after a reconnection. InterestRefusedError
        for values no server takes (not finite, |coordinate| over 1e6 m, negative radius); the
        server may also refuse a radius over its own bound (counted there, area unchanged)."""
        self.interest = check_sphere(center, radius)
        if self.connected:
            self._send_interest()

    def _send_interest(self) -> None:
        session = self.session
        if session is None or self.interest is None:
            return
        if INTEREST_AREA not in (session.negotiated.features if session.negotiated else ()):
            self.world.telemetry.count("net.interest_unsupported")  # an older server
            return
        center, radius = self.interest
        session.send_interest(center, radius, self.now())
        self._flush()

    def _reset_mirror(self) -> None:
        """After a reconnection the server starts a fresh replicator: so does the mirror."""
        old = self.receiver
        if len(old.local_ids):
            self.world.despawn_batch(old.local_ids)
        self.receiver = Receiver(self.schema, self.world)

    def close(self) -> None:
        self._closing = True
        if self.session is not None and not self.session.closed:
            self.session.close(self.now(), "client closing")
            self._flush()
        if self.carrier is not None:
            self.carrier.close("client closing")

    @property
    def connected(self) -> bool:
        return self.session is not None and self.session.connected

    async def run(self, seconds: float | None = None,
                  on_tick: Callable[[Client], None] | None = None) -> None:
        """Tick at ``rate`` (reconnecting when the connection drops) until cancelled."""
        from .loop import fixed_rate

        loop = asyncio.get_running_loop()
        end = None if seconds is None else loop.time() + seconds
        while not self._closing and (end is None or loop.time() < end):
            if not self.connected:
                try:
                    await self.connect()
                except RefusedError:
                    raise
                except (ConnectError, OSError):
                    if not self.reconnect:
                        raise
                    await asyncio.sleep(self.reconnect_delay)
                    continue
            left = None if end is None else max(0.0, end - loop.time())
            task = asyncio.ensure_future(fixed_rate(
                self.tick, self.rate, seconds=left,
                after=(lambda: on_tick(self)) if on_tick else None))
            lost = asyncio.ensure_future(self._lost.wait())
            done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
            for t in (task, lost):
                if t not in done:
                    t.cancel()
            if task in done:
                break
            if not self.reconnect:
                break
            await asyncio.sleep(self.reconnect_delay)

    # -- CarrierHandler -------------------------------------------------------------------------
    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        session = self.session
        if session is None:
            return
        session.receive(channel, payload, self.now())
        self._process()

    def carrier_closed(self, reason: str) -> None:
        session = self.session
        if session is not None and not session.closed:
            session.close(self.now(), reason or "connection lost")
        self._process()
        self._lost.set()

    def transport_chosen(self, choice: TransportChoice) -> None:
        """Called by ``AutoTransport`` once it knows which transport carries this connection
        (a :class:`~theta_net.choice.TransportChoice`): kept, and put in telemetry."""
        self.transport_choice = choice
        tel = self.world.telemetry
        for name in TRANSPORT_GAUGES:
            tel.gauge(f"net.transport.{name}", 1.0 if choice.transport == name else 0.0)
        tel.gauge("net.transport_choice_ms", round(choice.elapsed_s * 1e3, 3))
        if choice.fell_back:
            tel.count(f"net.fallback.{choice.short.rpartition(':')[2]}")

    # -- events ---------------------------------------------------------------------------------
    def _process(self) -> None:
        session = self.session
        if session is None:
            return
        now = self.now()
        while (event := session.next_event()) is not None:
            if isinstance(event, StateReceived):
                self.stats.state_packets += 1
                try:
                    self.receiver.receive(event.packet, now)
                except (SchemaMismatchError, UnknownDictionaryError):
                    self.world.telemetry.count("net.state_refused")
            elif isinstance(event, VoiceReceived):
                self.voice.deliver(event)
            elif isinstance(event, CommandsReceived):
                self.stats.commands_received += 1
                if self.pipeline is not None:
                    self.pipeline.deliver(event.packet)
            elif isinstance(event, RosterReceived):
                self._on_roster(event)
            elif isinstance(event, HeartbeatMeasured):
                self.last_heartbeat = event
            elif isinstance(event, Connected):
                self.connected_event = event
            elif isinstance(event, Refused):
                self.stats.refused = event.reason
            elif isinstance(event, Disconnected):
                self.stats.disconnects += 1
                self.stats.last_disconnect = event.reason
                self._lost.set()
        self._flush()

    def _on_roster(self, event: RosterReceived) -> None:
        for key, role in event.members:
            try:
                self.roster.add(key, Role(role))
            except ValueError:  # a key whose net-id namespace collides with a member's
                self.world.telemetry.count("net.roster_refused")
        if self.log is None and self.signer.author in self.roster:
            self.log = CommandLog(self.roster, self.signer, store=self.store,
                                  telemetry=self.world.telemetry)
            self.log.restore()
            self.pipeline = CommandPipeline(self.world, self.log)
            self.editor = self.pipeline.editor

    def _flush(self) -> None:
        session, carrier = self.session, self.carrier
        if session is None or carrier is None:
            return
        for channel, data in session.datagrams_to_send(self.now()):
            carrier.send(channel, data)

    # -- the tick -------------------------------------------------------------------------------
    def tick(self) -> None:
        """One client frame: run the world (the command pipeline), send commands and acks."""
        now = self.now()
        self.world.step(1.0 / self.rate)
        session = self.session
        if session is None or not session.connected:
            return
        if self.pipeline is not None:
            for packet in self.pipeline.outgoing():
                session.send_commands(packet, now)
            for _source, packet in self.pipeline.replies():
                session.send_commands(packet, now)
        for packet in self.receiver.produce(now):
            session.send_state(packet, now)
        session.handle_timer(now)
        self._process()

    # -- telemetry ------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """RTT, loss, kbit/s down and up since the last call, entities, applied tick."""
        s = self.session
        now = self.now()
        down = sum(s.stats.bytes_received.values()) if s else 0
        up = sum(s.stats.bytes_sent.values()) if s else 0
        kbps_down = kbps_up = 0.0
        if self._rate_mark is not None and now > self._rate_mark[0]:
            dt = now - self._rate_mark[0]
            kbps_down = max(0, down - self._rate_mark[1]) * 8 / dt / 1e3
            kbps_up = max(0, up - self._rate_mark[2]) * 8 / dt / 1e3
        self._rate_mark = (now, down, up)
        tel = self.world.telemetry
        out: dict[str, Any] = {
            "connected": self.connected,
            "rtt_ms": round(s.rtt.srtt * 1e3, 3) if s else 0.0,
            "rttvar_ms": round(s.rtt.rttvar * 1e3, 3) if s else 0.0,
            "loss": round(s.loss.loss, 4) if s else 0.0,
            "kbps_down": round(kbps_down, 1), "kbps_up": round(kbps_up, 1),
            "entities": len(self.receiver.applied),
            "applied_tick": self.receiver.applied_sequence,
            "bytes_down": down, "bytes_up": up,
            "log_entries": len(self.log) if self.log is not None else 0,
            "transport": self.transport_choice.transport if self.transport_choice else "",
            "transport_reason": self.transport_choice.reason if self.transport_choice else "",
            "via": self.transport_choice.short if self.transport_choice else "",
        }
        for key in ("rtt_ms", "loss", "kbps_down", "kbps_up", "entities"):
            tel.gauge(f"net.{key}", float(out[key]))
        return out
