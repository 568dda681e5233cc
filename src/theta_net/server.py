"""The server: hosts a World for many clients over any network transport.

Per client: a :class:`~theta_net.session.Session` (handshake, heartbeats, channels) on a carrier,
and once admitted a :class:`~theta_ecs.replication.Replicator` (acked baselines, chunked joins,
budget). Every tick: integrate the clients' commands, step the world, capture the replicated
state once, and send each client its delta within what its path's congestion window admits
(deltas for clients with the same acknowledged baseline are encoded once and shared). The command
log runs with each client's verified identity: its author id comes from the key that signed its
hello, its role from its join token. Carrier-agnostic: it only sees the
:class:`~theta_net.carrier.Carrier` contract.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from theta_ecs.commandlog import (
    CommandLog,
    CommandPipeline,
    GuardConfig,
    Role,
    Roster,
    Signer,
)
from theta_ecs.commandlog.entry import PacketType, decode_batch
from theta_ecs.commandlog.entry import decode_packet as decode_command_packet
from theta_ecs.commandlog.errors import DecodeError as CommandDecodeError
from theta_ecs.interfaces import CommandStore
from theta_ecs.replication import AreaOfInterest, InterestManager, Replicator, ReplicatorConfig
from theta_ecs.serialization.schema import ReplicationSchema
from theta_ecs.serialization.snapshot import Snapshot, capture
from theta_ecs.world import World

from .carrier import Carrier, CarrierHandler, Channel, Listener, TransportBackend
from .errors import MessageTooLargeError
from .interest import InterestRefusedError, area_from
from .session import (
    Admission,
    CommandsReceived,
    Connected,
    Disconnected,
    HeartbeatMeasured,
    InterestReceived,
    Refused,
    Session,
    SessionConfig,
    StateReceived,
    TokenAuthority,
    TokenVerifier,
    VoiceReceived,
)
from .sharing import EncodeCache, SharedEncoder
from .transports import resolve
from .voice import SERVER_VOICE_BYTES_PER_S, VOICE_CODECS, VoiceRelay, VoiceRelayConfig

__all__ = ["ClientInfo", "Server", "ServerStats"]

#: Bytes an envelope adds around a replication packet, kept free in every datagram.
ENVELOPE_ROOM = 96
#: A path whose congestion window admits at least this much gets no replicator budget at all:
#: trimming to a budget costs a diff and an encode per client, and cannot be shared.
UNLIMITED_BUDGET = 16 * 1024
#: Each client may ask for a command-log sync at most this often (an answer can be large).
SYNC_INTERVAL_S = 0.25
#: A client whose newest acknowledgement is this many ticks old gets no new state until it acks
#: (an ack clock: a slow client or path is not flooded with states it cannot take).
ACK_LAG_TICKS = 15
#: How long a finished session's connection stays open for its last message to arrive.
CLOSE_GRACE_S = 0.5


@dataclass
class ServerStats:
    ticks: int = 0
    admitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    disconnected: int = 0
    state_bytes: int = 0
    state_skipped: int = 0  # client ticks skipped because the path had no room
    state_dropped: int = 0  # datagrams the carrier refused (window, size)
    commands_relayed: int = 0
    #: command packets not relayed: a batch that does not decode or names another author
    relay_refused: int = 0
    sync_rate_drops: int = 0
    resyncs: int = 0  # clients restarted from a full state after falling too far behind
    tick_seconds: float = 0.0  # total time inside tick()
    interest_updates: int = 0  # areas of interest applied (Client.set_interest)
    interest_refused: dict[str, int] = field(default_factory=dict)  # by reason
    #: drops counted by sessions that have ended (live ones: Server.faults())
    retired_faults: dict[str, int] = field(default_factory=dict)


def _replicator_faults(replicator: Replicator | None) -> dict[str, int]:
    """What the session passes on unchecked (compact state packets), the replicator checks."""
    if replicator is None:
        return {"state_malformed": 0, "forged_acks": 0, "refused_resyncs": 0}
    rs = replicator.stats
    return {"state_malformed": rs.malformed, "forged_acks": rs.forged_acks,
            "refused_resyncs": rs.refused_resyncs}


def _faults(session: Session, replicator: Replicator | None = None) -> dict[str, int]:
    st = session.stats
    return {"malformed": st.malformed, "unexpected": st.unexpected, "oversize": st.oversize,
            "after_close": st.after_close, **_replicator_faults(replicator)}


class ClientInfo(CarrierHandler):
    """One connected client, as the server sees it."""

    def __init__(self, server: Server, carrier: Carrier, session: Session) -> None:
        self.server = server
        self.carrier = carrier
        self.session = session
        self.replicator: Replicator | None = None
        self.area: AreaOfInterest | None = None
        self.last_sync = float("-inf")
        self.connected_at = 0.0

    # CarrierHandler
    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        server = self.server
        now = server.now()
        self.session.receive(channel, payload, now)
        server._process(self, now)

    def carrier_closed(self, reason: str) -> None:
        server = self.server
        if not self.session.closed:
            self.session.close(server.now(), reason or "connection lost")
        server._process(self, server.now())

    @property
    def author(self) -> int:
        return self.session.author

    @property
    def role(self) -> str:
        return self.session.role


class Server:
    """Hosts ``world`` (replicating ``schema``'s components) for clients on ``transport``.

    ``step`` advances the simulation each tick (e.g. a scene's ``step``); by default the world is
    stepped. ``authority`` checks join tokens (and issues them through :meth:`issue_token`);
    ``state_dir`` keeps the certificate, token key, server author key, roster and command log
    across restarts.
    """

    def __init__(
        self,
        world: World,
        schema: ReplicationSchema,
        *,
        step: Callable[[float], None] | None = None,
        rate: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 4433,
        transport: TransportBackend | str | None = None,
        authority: TokenVerifier | None = None,
        state_dir: Path | None = None,
        store: CommandStore | None = None,
        session_config: SessionConfig | None = None,
        replicator_config: ReplicatorConfig | None = None,
        max_clients: int = 64,
        interest: InterestManager | None = None,
        max_interest_radius: float | None = None,
        transport_options: dict[str, Any] | None = None,
        wall_clock: Callable[[], float] = time.time,
        voice: VoiceRelayConfig | None = None,
    ) -> None:
        self.world = world
        self.schema = schema
        self.rate = rate
        self.host, self.port = host, port
        self.state_dir = state_dir
        self._step = step if step is not None else world.step
        self._transport_arg = transport
        self._transport_options = dict(transport_options or {})
        self.transport: TransportBackend | None = None
        self.listener: Listener | None = None
        if authority is None:
            authority = (TokenAuthority.load_or_create(state_dir / "token.key")
                         if state_dir is not None else TokenAuthority())
        self.authority = authority
        self.session_config = session_config or SessionConfig(
            schema, voice_codecs=VOICE_CODECS, voice_bytes_per_s=SERVER_VOICE_BYTES_PER_S)
        #: Relays each client's voice to the others (theta_net.voice).
        self.voice = VoiceRelay(voice or VoiceRelayConfig(), world.telemetry)
        self.replicator_config = replicator_config or ReplicatorConfig()
        self.max_clients = max_clients
        self.interest = interest
        #: the largest radius a client's area of interest may have (None: 8 grid cells)
        self.max_interest_radius = max_interest_radius
        self.clients: dict[int, ClientInfo] = {}  # by session id, once admitted
        self._pending: set[ClientInfo] = set()
        self.stats = ServerStats()
        self.encode_cache = EncodeCache()
        self.admission = Admission(authority, wall_clock=wall_clock,
                                   room=lambda: len(self.clients) < self.max_clients)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tick_count = 0
        self.paused = False  # True: the simulation stands still, replication and commands go on
        self.last_state: Snapshot | None = None
        # The command log: the server is an admin author; clients join the roster as admitted.
        self.signer = self._load_signer()
        self.roster = Roster()
        self.roster.add(self.signer.public_key, Role.ADMIN, "server")
        self._load_roster()
        if store is None and state_dir is not None:
            from theta_ecs.commandlog import SqliteCommandStore

            store = SqliteCommandStore(str(state_dir / "commands.sqlite"))
        self.log = CommandLog(self.roster, self.signer, store=store,
                              guards=GuardConfig(sync_answer_interval_s=0.0),
                              telemetry=world.telemetry)
        self.pipeline = CommandPipeline(world, self.log)
        self.restored = self.log.restore()

    # -- identity kept across restarts ----------------------------------------------------------
    def _load_signer(self) -> Signer:
        if self.state_dir is None:
            return Signer()
        path = self.state_dir / "server_author.key"
        if path.exists():
            return Signer.from_seed(path.read_bytes())
        signer = Signer()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(signer.secret_seed())
        path.chmod(0o600)
        return signer

    def _roster_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / "roster.bin"

    def _load_roster(self) -> None:
        path = self._roster_path()
        if path is None or not path.exists():
            return
        data = path.read_bytes()
        for i in range(0, len(data) - len(data) % 33, 33):
            self.roster.add(data[i : i + 32], Role(data[i + 32]))

    def _save_roster(self) -> None:
        path = self._roster_path()
        if path is not None:
            path.write_bytes(b"".join(m.public_key + bytes([int(m.role)]) for m in self.roster))

    # -- lifecycle ------------------------------------------------------------------------------
    def now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else time.monotonic()

    async def start(self) -> Listener:
        """Listen; returns the listener (its ``address`` holds the port actually bound)."""
        self._loop = asyncio.get_running_loop()
        self.transport = resolve(self._transport_arg, **self._transport_options)
        if self.state_dir is not None and getattr(self.transport, "identity", False) is None:
            # A transport with a TLS identity to fill: keep it with the server's state, so the
            # fingerprint clients pin survives restarts.
            from .quic.certs import ServerIdentity

            self.transport.identity = ServerIdentity.load_or_create(  # type: ignore[attr-defined]
                self.state_dir / "tls", self.host)
        self.listener = await self.transport.listen(self.host, self.port, self._accept)
        if hasattr(self.listener, "unadmitted"):  # a full listener may evict these for newcomers
            pending = self._pending
            self.listener.unadmitted = lambda carrier: carrier.handler in pending
        self.port = self.listener.address[1]
        fp = getattr(self.listener, "fingerprint_hex", "")
        if fp:
            self.admission.fingerprint = bytes.fromhex(fp)
        return self.listener

    @property
    def fingerprint(self) -> str:
        return getattr(self.listener, "fingerprint_hex", "") if self.listener else ""

    def issue_token(self, role: Role | str = "editor", ttl: float = 3600.0) -> str:
        """A join token for this server (pinning its certificate when it has one)."""
        if not isinstance(self.authority, TokenAuthority):
            raise TypeError("this server only verifies tokens; issue them where the key is")
        fp = bytes.fromhex(self.fingerprint) if self.fingerprint else b""
        return self.authority.issue(role, now=self.admission.wall_clock(), ttl=ttl,
                                    fingerprint=fp)

    def close(self) -> None:
        now = self.now()
        for info in list(self.clients.values()) + list(self._pending):
            info.session.close(now, "server shutting down")
            self._flush(info, now)
        if self.listener is not None:
            self.listener.close()
        if self.log.store is not None:
            self.log.store.close()

    async def run(self, seconds: float | None = None,
                  on_tick: Callable[[Server], None] | None = None) -> None:
        """Tick at ``rate`` until cancelled (or for ``seconds``)."""
        from .loop import fixed_rate

        await fixed_rate(self.tick, self.rate, seconds=seconds,
                         after=(lambda: on_tick(self)) if on_tick else None)

    # -- connections ----------------------------------------------------------------------------
    def _accept(self, carrier: Carrier) -> CarrierHandler:
        cfg = replace(self.session_config,
                      max_datagram=min(self.session_config.max_datagram,
                                       carrier.max_datagram_size))
        info = ClientInfo(self, carrier, Session.server(cfg, self.admission))
        info.session.accept(self.now())
        info.connected_at = self.now()
        self._pending.add(info)
        return info

    def _process(self, info: ClientInfo, now: float) -> None:
        session = info.session
        while (event := session.next_event()) is not None:
            if isinstance(event, StateReceived):
                if info.replicator is not None:
                    info.replicator.receive(event.packet, now)
            elif isinstance(event, CommandsReceived):
                self._on_commands(info, event.packet, now)
            elif isinstance(event, VoiceReceived):
                self.voice.relay(info, event, self.clients, now, self._flush)
            elif isinstance(event, HeartbeatMeasured):
                pass
            elif isinstance(event, InterestReceived):
                self._on_interest(info, event)
            elif isinstance(event, Connected):
                self._on_connected(info, event, now)
            elif isinstance(event, Refused):
                name = event.code.name.lower()
                self.stats.refused[name] = self.stats.refused.get(name, 0) + 1
                self.world.telemetry.count(f"net.refused.{name}")
            elif isinstance(event, Disconnected):
                self._retire_faults(_faults(session, info.replicator))
                self._pending.discard(info)
                self.voice.forget(session.session_id)
                if self.clients.get(session.session_id) is info:
                    del self.clients[session.session_id]
                    self.stats.disconnected += 1
                self._flush(info, now)
                # A grace period lets the last message (a Refusal, a Close) arrive before the
                # connection goes; the peer usually closes first.
                if self._loop is not None:
                    self._loop.call_later(CLOSE_GRACE_S, info.carrier.close, event.reason)
                else:
                    info.carrier.close(event.reason)
                return
        self._flush(info, now)

    def _on_connected(self, info: ClientInfo, event: Connected, now: float) -> None:
        self._pending.discard(info)
        # A client that reconnects replaces its old session (same author).
        for sid, other in list(self.clients.items()):
            if other.author == event.author:
                other.session.close(now, "replaced by a new connection")
                self._process(other, now)
                self.clients.pop(sid, None)
        self.clients[event.session_id] = info
        self.stats.admitted += 1
        info.replicator = self._new_replicator(event.negotiated.max_datagram)
        role = Role[event.role.upper()]
        if event.author not in self.roster or self.roster.role_of(event.author) != role:
            try:
                self.roster.add(event.public_key, role)
            except ValueError as exc:  # a key whose net-id namespace collides with another's
                self.clients.pop(event.session_id, None)
                info.session.close(now, f"key refused: {exc}")
                self._process(info, now)
                return
            self._save_roster()
        members = tuple((m.public_key, int(m.role)) for m in self.roster)
        for other in self.clients.values():
            if other.session.connected:
                other.session.send_roster(members, now)
                if other is not info:
                    self._flush(other, now)

    def _new_replicator(self, max_datagram: int) -> Replicator:
        budget = max(256, max_datagram - ENVELOPE_ROOM)
        rep = Replicator(self.schema, replace(self.replicator_config, packet_budget=budget))
        rep.codec = SharedEncoder(rep.codec, self.encode_cache)  # type: ignore[assignment]
        return rep

    def _on_interest(self, info: ClientInfo, event: InterestReceived) -> None:
        """A client's own area of interest, within bounds; refusals are counted by reason and
        leave its area as it was."""
        tel = self.world.telemetry
        try:
            info.area = area_from(self.interest, event.center, event.radius,
                                  self.max_interest_radius)
        except InterestRefusedError as exc:
            refused = self.stats.interest_refused
            refused[exc.reason] = refused.get(exc.reason, 0) + 1
            tel.count(f"net.interest_refused.{exc.reason}")
            return
        self.stats.interest_updates += 1
        tel.count("net.interest_updates")

    def _on_commands(self, info: ClientInfo, packet: bytes, now: float) -> None:
        try:
            decoded = decode_command_packet(packet)
        except CommandDecodeError:
            self.world.telemetry.count("malformed_packets")
            return
        kind = decoded.type
        if kind is PacketType.SYNC:
            if now - info.last_sync < SYNC_INTERVAL_S:
                self.stats.sync_rate_drops += 1
                return
            info.last_sync = now
        if not self.pipeline.deliver(packet, source=info.session.session_id):
            return  # over its inbox limit: dropped and counted, and never relayed either
        if kind is PacketType.BATCHES and not self._own_batches(info, decoded.batches):
            # A client sends only its own entries: garbage or another author's batches (forged,
            # or replayed) are left to the log here and never amplified to every other client.
            self.stats.relay_refused += 1
            self.world.telemetry.count("net.relay_refused")
        elif kind is PacketType.BATCHES:
            # Every peer verifies every batch itself: relaying costs no trust.
            for other in self.clients.values():
                if other is not info and other.session.connected:
                    other.session.send_commands(packet, now)
                    self.stats.commands_relayed += 1

    @staticmethod
    def _own_batches(info: ClientInfo, batches: tuple[bytes, ...]) -> bool:
        """Every batch decodes and is authored by the client that sent it (signatures are left
        to each log)."""
        try:
            return all(decode_batch(raw).author == info.author for raw in batches)
        except CommandDecodeError:
            return False

    # -- the tick -------------------------------------------------------------------------------
    def tick(self) -> None:
        """One server frame: step, replicate to every client, pump sessions."""
        t0 = time.perf_counter()
        now = self.now()
        if self.paused:
            self.pipeline.run_frame()
        else:
            self._step(1.0 / self.rate)
        self.tick_count += 1
        self.stats.ticks += 1
        for packet in self.pipeline.outgoing():
            for info in self.clients.values():
                if info.session.connected:
                    info.session.send_commands(packet, now)
        for source, packet in self.pipeline.replies():
            target = self.clients.get(source) if isinstance(source, int) else None
            if target is not None and target.session.connected:
                try:
                    target.session.send_commands(packet, now)
                except MessageTooLargeError:
                    self.world.telemetry.count("net.sync_answer_too_large")
        state = capture(self.world, self.schema, tick=self.tick_count)
        self.last_state = state
        if self.interest is not None:
            self.interest.update(state)
        self.encode_cache.new_tick()
        for info in list(self.clients.values()):
            self._replicate(info, state, now)
        for info in list(self.clients.values()) + list(self._pending):
            info.session.handle_timer(now)
            self._process(info, now)
        if self.tick_count % max(1, round(self.rate)) == 0:
            self._gauges()
        self.stats.tick_seconds += time.perf_counter() - t0

    def _gauges(self) -> None:
        """Once a second: the sessions' health in the world's telemetry."""
        tel = self.world.telemetry
        sessions = [info.session for info in self.clients.values()]
        tel.gauge("net.clients", float(len(sessions)))
        tel.gauge("net.pending_handshakes", float(len(self._pending)))
        tel.gauge("net.srtt_ms_max", max((s.rtt.srtt * 1e3 for s in sessions), default=0.0))
        tel.gauge("net.rttvar_ms_max", max((s.rtt.rttvar * 1e3 for s in sessions), default=0.0))
        tel.gauge("net.loss_max", max((s.loss.loss for s in sessions), default=0.0))
        tel.gauge("net.state_bytes", float(self.stats.state_bytes))

    def _replicate(self, info: ClientInfo, state: Snapshot, now: float) -> None:
        rep, session = info.replicator, info.session
        if rep is None or not session.connected:
            return
        acked = rep.acked_sequence
        if acked is not None and state.tick - acked > rep.config.max_history:
            # The client's acks stopped naming states we still hold (it fell too far behind):
            # start it over from a full state rather than send deltas it cannot decode.
            self._retire_faults(_replicator_faults(rep))
            rep = info.replicator = self._new_replicator(session.max_datagram)
            acked = None
            self.stats.resyncs += 1
        if acked is not None and state.tick - acked > ACK_LAG_TICKS:
            # The client has not acknowledged anything for a while: it is slow, or the path is.
            # Sending more only queues stale state in front of it; the next delta will cover it.
            self.stats.state_skipped += 1
            return
        room = info.carrier.unreliable_budget()
        if room < session.max_datagram // 2:
            self.stats.state_skipped += 1  # the path is full: this tick's state is stale anyway
            return
        budget = None if room >= UNLIMITED_BUDGET else room - 256
        if budget != rep.config.bandwidth_budget:
            rep.config = replace(rep.config, bandwidth_budget=budget)
        visible: npt.NDArray[np.bool_] | None = None
        if self.interest is not None and info.area is not None:
            visible = self.interest.visible(info.area, rep.last_state.entities)
        for packet in rep.produce(state, now, visible):
            try:
                self.stats.state_bytes += session.send_state(packet, now)
            except MessageTooLargeError:
                self.stats.state_dropped += 1

    def _flush(self, info: ClientInfo, now: float) -> None:
        for channel, data in info.session.datagrams_to_send(now):
            if not info.carrier.send(channel, data):
                self.stats.state_dropped += 1

    def _retire_faults(self, faults: dict[str, int]) -> None:
        retired = self.stats.retired_faults
        for name, n in faults.items():
            retired[name] = retired.get(name, 0) + n

    def faults(self) -> dict[str, int]:
        """Every peer fault dropped so far (malformed, unexpected, oversize, after close), over
        live and ended sessions, plus the carrier's own counters where it has them."""
        total = dict(self.stats.retired_faults)
        for info in list(self.clients.values()) + list(self._pending):
            for name, n in _faults(info.session, info.replicator).items():
                total[name] = total.get(name, 0) + n
        carrier_counts = getattr(self.listener, "fault_counts", None)
        if carrier_counts is not None:
            for name, n in carrier_counts().items():
                total[name] = total.get(name, 0) + int(n)
        return total

    def converged(self, state: Snapshot) -> bool:
        """Whether a client's applied ``state`` is bit for bit the server's latest."""
        return self.last_state is not None and state.same_state(self.last_state)

    # -- telemetry ------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Server-wide counters and, per client, RTT, loss and bytes by channel."""
        clients = {}
        for sid, info in self.clients.items():
            s = info.session
            clients[sid] = {
                "author": f"{info.author:016x}", "role": info.role,
                "srtt_ms": round(s.rtt.srtt * 1e3, 3), "rttvar_ms": round(s.rtt.rttvar * 1e3, 3),
                "loss": round(s.loss.loss, 4),
                "bytes_sent": dict(s.stats.bytes_sent),
                "bytes_received": dict(s.stats.bytes_received),
                "acked": info.replicator.acked_sequence if info.replicator else None,
            }
        st = self.stats
        return {
            "ticks": st.ticks, "clients": len(self.clients), "pending": len(self._pending),
            "admitted": st.admitted, "refused": dict(st.refused), "disconnected": st.disconnected,
            "state_bytes": st.state_bytes, "state_skipped": st.state_skipped,
            "state_dropped": st.state_dropped, "commands_relayed": st.commands_relayed,
            "relay_refused": st.relay_refused,
            "resyncs": st.resyncs, "interest_updates": st.interest_updates,
            "interest_refused": dict(st.interest_refused),
            "shared_encodes": self.encode_cache.shared, "encodes": self.encode_cache.encodes,
            "shared_between_clients": self.encode_cache.shared_between,
            "log_entries": len(self.log), "per_client": clients,
            "voice": self.voice.metrics(),
        }
