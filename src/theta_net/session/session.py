"""The session: one peer's protocol state machine, fed bytes and time (sans-I/O).

The surface is aioquic's ``QuicConnection``: :meth:`Session.connect` (client) or
:meth:`Session.accept` (server), :meth:`Session.receive` with what arrived on a channel,
:meth:`Session.datagrams_to_send` for ``(channel, payload)`` pairs to hand the carrier,
:meth:`Session.next_event`, :meth:`Session.get_timer` and :meth:`Session.handle_timer`. ``now``
is always passed (seconds on a monotonic clock), never read.

Every message is one FlatBuffers envelope (``schemas/network.fbs``). On ``RELIABLE``: the
handshake (Hello → Welcome or Refusal), the roster, command-log packets, Close. On ``STATE``:
replication packets (ComponentDelta, SnapshotChunk, Ack; chunk re-requests travel in their compact
form) and heartbeats. On ``VOICE``: VoiceData. Peer faults (garbage, truncation, a message its
state does not expect, oversize) are dropped and counted in :class:`SessionStats`, never raised.
"""

from __future__ import annotations

import enum
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from theta_ecs.commandlog import Role, author_id
from theta_ecs.replication.envelope import unwrap, wrap
from theta_ecs.serialization.errors import DecodeError, SchemaMismatchError
from theta_ecs.serialization.packet import MAGIC as COMPACT_MAGIC
from theta_ecs.serialization.schema import ReplicationSchema
from theta_ecs.wire import envelope as wire

from ..carrier import UNRELIABLE, Channel
from ..errors import (
    MessageTooLargeError,
    SessionStateError,
    TokenError,
    TokenExpiredError,
    TokenForgedError,
)
from .events import (
    CommandsReceived,
    Connected,
    Disconnected,
    Event,
    HeartbeatMeasured,
    InterestReceived,
    Negotiated,
    RefusalCode,
    Refused,
    RosterReceived,
    StateReceived,
    VoiceReceived,
)
from .rtt import LossEstimator, RttEstimator
from .tokens import JoinToken, TokenVerifier

__all__ = [
    "DEFAULT_FEATURES",
    "Admission",
    "ClientCredentials",
    "Session",
    "SessionConfig",
    "SessionState",
    "SessionStats",
]

#: "compact-state": replication packets travel on STATE in their own compact framing (magic
#: byte 0xB7, 32-bit schema tag) rather than inside an envelope: 40-odd bytes and two FlatBuffers
#: passes less per datagram. Without it (either side), they travel as envelopes.
#: "interest-area": the client may send its area of interest (an Interest body on RELIABLE).
DEFAULT_FEATURES = ("delta", "zstd", "interest", "compact-state", "interest-area")
COMPACT_STATE = "compact-state"
INTEREST_AREA = "interest-area"
HELLO_DOMAIN = b"theta.net.hello.v1\x00"
#: Unreliable payloads larger than this are never datagrams (QUIC caps a datagram frame below).
MAX_UNRELIABLE = 65_535


class SessionState(enum.Enum):
    IDLE = "idle"
    HANDSHAKE = "handshake"
    CONNECTED = "connected"
    CLOSING = "closing"
    CLOSED = "closed"


_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.IDLE: frozenset({SessionState.HANDSHAKE, SessionState.CLOSED}),
    SessionState.HANDSHAKE: frozenset(
        {SessionState.CONNECTED, SessionState.CLOSING, SessionState.CLOSED}
    ),
    SessionState.CONNECTED: frozenset({SessionState.CLOSING, SessionState.CLOSED}),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


@dataclass(frozen=True)
class SessionConfig:
    """One side's capabilities and timing. The schema's hash and ``manifest_hash`` must match
    the peer's; the lists are intersected."""

    schema: ReplicationSchema
    manifest_hash: int = 0
    features: tuple[str, ...] = DEFAULT_FEATURES
    dictionary_ids: tuple[int, ...] = ()
    voice_codecs: tuple[str, ...] = ()
    channels: tuple[Channel, ...] = (Channel.STATE, Channel.VOICE, Channel.RELIABLE)
    max_datagram: int = 1200
    min_datagram: int = 512
    heartbeat_interval: float = 0.25
    timeout: float = 10.0
    handshake_timeout: float = 5.0
    max_reliable_message: int = 1 << 20
    voice_bytes_per_s: float = 16_000.0


@dataclass(frozen=True)
class ClientCredentials:
    """A client's identity (its Ed25519 key: its command-log author), join token and claim."""

    key: Ed25519PrivateKey
    token: str
    role: str = ""

    @classmethod
    def from_seed(cls, seed: bytes, token: str, role: str = "") -> ClientCredentials:
        return cls(Ed25519PrivateKey.from_private_bytes(seed), token, role)

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class Admission:
    """The server's gate: tokens, proof of key, replayed hellos, room. ``wall_clock`` gives unix
    seconds for token expiry (injected so tests can move it)."""

    def __init__(
        self,
        tokens: TokenVerifier,
        *,
        fingerprint: bytes = b"",
        wall_clock: Callable[[], float] = time.time,
        max_nonces: int = 65_536,
        room: Callable[[], bool] | None = None,
    ) -> None:
        self.tokens = tokens
        self.fingerprint = bytes(fingerprint)
        self.wall_clock = wall_clock
        self.room = room
        self._nonces: set[bytes] = set()
        self._nonce_order: deque[bytes] = deque()
        self._max_nonces = max_nonces
        self._session_ids = 0

    def next_session_id(self) -> int:
        self._session_ids += 1
        return self._session_ids

    def fresh_nonce(self, nonce: bytes) -> bool:
        if nonce in self._nonces:
            return False
        self._nonces.add(nonce)
        self._nonce_order.append(nonce)
        if len(self._nonce_order) > self._max_nonces:
            self._nonces.discard(self._nonce_order.popleft())
        return True


@dataclass
class SessionStats:
    """Per-channel traffic and every reason something was dropped."""

    bytes_sent: dict[str, int] = field(default_factory=lambda: {c.name: 0 for c in Channel})
    bytes_received: dict[str, int] = field(default_factory=lambda: {c.name: 0 for c in Channel})
    messages_sent: dict[str, int] = field(default_factory=lambda: {c.name: 0 for c in Channel})
    messages_received: dict[str, int] = field(
        default_factory=lambda: {c.name: 0 for c in Channel}
    )
    malformed: int = 0
    unexpected: int = 0
    oversize: int = 0
    after_close: int = 0
    voice_over_budget: int = 0
    heartbeats_sent: int = 0
    heartbeats_received: int = 0


def _hex64(value: int) -> str:
    return f"0x{value:016x}"


def _peek_body(buf: bytes) -> int:
    """The envelope's union type, read without verifying (only to route; the decoder verifies)."""
    n = len(buf)
    if n < 12:
        return 0
    root = int.from_bytes(buf[0:4], "little")
    if root + 4 > n:
        return 0
    vt = root - int.from_bytes(buf[root : root + 4], "little", signed=True)
    if vt < 0 or vt + 8 > n or int.from_bytes(buf[vt : vt + 2], "little") < 8:
        return 0
    off = int.from_bytes(buf[vt + 6 : vt + 8], "little")
    return buf[root + off] if off and root + off < n else 0


_ROLE_VALUES = frozenset(int(r) for r in Role)
_COMPACT_HEAD = bytes((COMPACT_MAGIC,))
_REPLICATION_KINDS = frozenset({3, 4, 5})  # ComponentDelta, SnapshotChunk, Ack in network.fbs


class Session:
    """One end of a theta session. ``Session.client(...)`` or ``Session.server(...)``."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        is_client: bool,
        credentials: ClientCredentials | None = None,
        admission: Admission | None = None,
    ) -> None:
        if is_client and credentials is None:
            raise ValueError("a client session needs credentials (key and join token)")
        if not is_client and admission is None:
            raise ValueError("a server session needs an Admission")
        self.config = config
        self.is_client = is_client
        self.credentials = credentials
        self.admission = admission
        self.state = SessionState.IDLE
        self.stats = SessionStats()
        self.rtt = RttEstimator()
        self.loss = LossEstimator()
        self.negotiated: Negotiated | None = None
        self.session_id = 0
        self.author = 0
        self.role = ""
        self.peer_public_key = b""
        self.token: JoinToken | None = None
        self.close_reason = ""
        self._events: deque[Event] = deque()
        self._out: list[tuple[Channel, bytes]] = []
        self._started = 0.0
        self._last_received = 0.0
        self._next_heartbeat = 0.0
        self._hb_sequence = 0
        self._echo: tuple[int, float] | None = None  # (peer's timestamp_us, when it arrived)
        self._voice_tokens = config.voice_bytes_per_s
        self._voice_time = 0.0
        self._heartbeat_interval = config.heartbeat_interval
        self._timeout = config.timeout
        self._schema_hash = config.schema.hash
        self._compact_state = False

    @classmethod
    def client(cls, config: SessionConfig, credentials: ClientCredentials) -> Session:
        return cls(config, is_client=True, credentials=credentials)

    @classmethod
    def server(cls, config: SessionConfig, admission: Admission) -> Session:
        return cls(config, is_client=False, admission=admission)

    # -- state ---------------------------------------------------------------------------------
    def _set_state(self, new: SessionState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise SessionStateError(
                f"move to {new.value}", self.state.value,
                tuple(s.value for s in _TRANSITIONS if new in _TRANSITIONS[s]),
            )
        self.state = new

    @property
    def connected(self) -> bool:
        return self.state is SessionState.CONNECTED

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    # -- opening -------------------------------------------------------------------------------
    def connect(self, now: float) -> None:
        """Client: send the Hello."""
        if not self.is_client:
            raise SessionStateError("connect a server session", self.state.value)
        self._set_state(SessionState.HANDSHAKE)
        self._started = self._last_received = now
        creds = self.credentials
        assert creds is not None
        cfg = self.config
        hello = wire.Hello(
            cfg.manifest_hash, creds.public_key, creds.role, creds.token.encode("ascii"),
            cfg.features, cfg.dictionary_ids, cfg.voice_codecs,
            tuple(int(c) for c in cfg.channels), cfg.max_datagram, os.urandom(16),
        )
        signed = hello.signed_bytes(self._schema_hash, wire.PROTOCOL_VERSION)
        hello = wire.Hello(
            hello.manifest_hash, hello.public_key, hello.role, hello.token, hello.features,
            hello.dictionary_ids, hello.voice_codecs, hello.channels, hello.max_datagram,
            hello.nonce, creds.key.sign(HELLO_DOMAIN + signed),
        )
        self._queue(Channel.RELIABLE, hello, now)

    def accept(self, now: float) -> None:
        """Server: a carrier connected; wait for the Hello (for ``handshake_timeout`` at most)."""
        if self.is_client:
            raise SessionStateError("accept on a client session", self.state.value)
        self._set_state(SessionState.HANDSHAKE)
        self._started = self._last_received = now

    # -- sending -------------------------------------------------------------------------------
    def _header(self, sequence: int, now: float) -> wire.Header:
        return wire.Header(sequence, wire.timestamp_us(now), schema_hash=self._schema_hash)

    def _queue(self, channel: Channel, body: wire.Body, now: float, sequence: int = 0) -> int:
        data = wire.encode_envelope(wire.Envelope(self._header(sequence, now), body))
        self._out.append((channel, data))
        return len(data)

    def _require_connected(self, action: str) -> None:
        if self.state is not SessionState.CONNECTED:
            raise SessionStateError(action, self.state.value, (SessionState.CONNECTED.value,))

    def send_state(self, packet: bytes, now: float) -> int:
        """Queue one replication packet (compact format) on STATE; returns the bytes queued."""
        self._require_connected("send state")
        if self._compact_state:
            if packet[:1] != _COMPACT_HEAD:
                raise ValueError("send_state takes a compact replication packet")
            data: bytes | None = bytes(packet)
        else:
            data = wrap(packet, self.config.schema, now)
        if data is None:  # a chunk re-request has no envelope body: it travels compact
            data = bytes(packet)
        limit = self.max_datagram
        if len(data) > limit:
            raise MessageTooLargeError("STATE", len(data), limit)
        self._out.append((Channel.STATE, data))
        return len(data)

    def send_commands(self, packet: bytes, now: float) -> int:
        """Queue one command-log packet on RELIABLE."""
        self._require_connected("send commands")
        if len(packet) > self.config.max_reliable_message:
            raise MessageTooLargeError("RELIABLE", len(packet), self.config.max_reliable_message)
        return self._queue(Channel.RELIABLE, wire.CommandLogEntry(packet), now)

    def send_roster(self, members: tuple[tuple[bytes, int], ...], now: float) -> int:
        """Server: queue the whole command-log roster."""
        self._require_connected("send the roster")
        return self._queue(Channel.RELIABLE, wire.RosterUpdate(members), now)

    def send_interest(self, center: tuple[float, float, float], radius: float,
                      now: float) -> int:
        """Client: queue its area of interest (radius 0 clears it). SessionStateError unless
        connected with the "interest-area" feature negotiated; EnvelopeError for values that
        are not finite 32-bit floats or a negative radius."""
        self._require_connected("send an area of interest")
        neg = self.negotiated
        if not self.is_client or neg is None or INTEREST_AREA not in neg.features:
            raise SessionStateError("send an area of interest", "interest-area not negotiated"
                                    if self.is_client else "server", ("client",))
        x, y, z = center
        return self._queue(Channel.RELIABLE, wire.Interest(x, y, z, radius), now)

    def send_voice(
        self, stream: int, sequence: int, codec: str, payload: bytes, now: float
    ) -> bool:
        """Queue a voice frame on VOICE within its byte budget; False when dropped (no voice
        channel or ``codec`` negotiated, or over budget)."""
        self._require_connected("send voice")
        neg = self.negotiated
        if neg is None or Channel.VOICE not in neg.channels or codec not in neg.voice_codecs:
            self.stats.voice_over_budget += 1
            return False
        rate = self.config.voice_bytes_per_s
        self._voice_tokens = min(rate, self._voice_tokens + (now - self._voice_time) * rate)
        self._voice_time = now
        body = wire.VoiceData(stream, sequence, codec, payload)
        data = wire.encode_envelope(wire.Envelope(self._header(sequence, now), body))
        if len(data) > self._voice_tokens or len(data) > self.max_datagram:
            self.stats.voice_over_budget += 1
            return False
        self._voice_tokens -= len(data)
        self._out.append((Channel.VOICE, data))
        return True

    def close(self, now: float, reason: str = "closed", code: int = 0) -> None:
        """End the session: a Close goes out, then the session is CLOSED. Idempotent."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        if self.state in (SessionState.HANDSHAKE, SessionState.CONNECTED):
            self._queue(Channel.RELIABLE, wire.Close(code, reason[:200]), now)
            self._set_state(SessionState.CLOSING)
        self._finish(reason, code, by_peer=False)

    def _finish(self, reason: str, code: int, *, by_peer: bool) -> None:
        if self.state is SessionState.CLOSED:
            return
        self._set_state(SessionState.CLOSED)
        self.close_reason = reason
        self._events.append(Disconnected(reason, code, by_peer))

    def datagrams_to_send(self, now: float) -> list[tuple[Channel, bytes]]:
        """Everything to hand the carrier now, in order; counted per channel."""
        if self.state is SessionState.CONNECTED and now >= self._next_heartbeat:
            self._send_heartbeat(now)
        out, self._out = self._out, []
        for channel, data in out:
            self.stats.bytes_sent[channel.name] += len(data)
            self.stats.messages_sent[channel.name] += 1
        return out

    @property
    def max_datagram(self) -> int:
        neg = self.negotiated
        return neg.max_datagram if neg is not None else self.config.max_datagram

    # -- timers --------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work (None when closed)."""
        if self.state is SessionState.HANDSHAKE:
            return self._started + self.config.handshake_timeout
        if self.state is SessionState.CONNECTED:
            return min(self._next_heartbeat, self._last_received + self._timeout)
        return None

    def handle_timer(self, now: float) -> None:
        if self.state is SessionState.HANDSHAKE:
            if now - self._started >= self.config.handshake_timeout:
                if not self.is_client:
                    self._refuse(RefusalCode.HANDSHAKE_TIMEOUT, "no hello in time", now)
                else:
                    self._finish("handshake timed out", RefusalCode.HANDSHAKE_TIMEOUT,
                                 by_peer=False)
        elif self.state is SessionState.CONNECTED:
            if now - self._last_received >= self._timeout:
                self._finish(f"no message for {self._timeout:g} s (timeout)", 0, by_peer=False)
            elif now >= self._next_heartbeat:
                self._send_heartbeat(now)

    def _send_heartbeat(self, now: float) -> None:
        self._next_heartbeat = now + self._heartbeat_interval
        echo_ts, delay = 0, 0
        if self._echo is not None:
            echo_ts = self._echo[0]
            delay = min(int((now - self._echo[1]) * 1e6), 0xFFFFFFFF)
        self._hb_sequence = (self._hb_sequence + 1) & 0xFFFFFFFF
        self._queue(Channel.STATE, wire.Heartbeat(echo_ts, max(delay, 0)), now,
                    sequence=self._hb_sequence)
        self.stats.heartbeats_sent += 1

    # -- events --------------------------------------------------------------------------------
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, channel: Channel, data: bytes, now: float) -> None:
        """What the carrier received on ``channel``. Faults are dropped and counted."""
        st = self.stats
        if self.state is SessionState.CLOSED:
            st.after_close += 1
            return
        size = len(data)
        limit = MAX_UNRELIABLE if channel in UNRELIABLE else self.config.max_reliable_message
        if size > limit:
            st.oversize += 1
            return
        st.bytes_received[channel.name] += size
        st.messages_received[channel.name] += 1
        if channel is Channel.STATE:
            self._on_state(bytes(data), now)
        elif channel is Channel.RELIABLE:
            self._on_reliable(bytes(data), now)
        elif channel is Channel.VOICE:
            self._on_voice(bytes(data), now)
        else:
            st.unexpected += 1

    def _on_state(self, data: bytes, now: float) -> None:
        if self.state is not SessionState.CONNECTED:
            self.stats.unexpected += 1
            return
        if data[4:8] != wire.FILE_IDENTIFIER:
            if data[:1] != _COMPACT_HEAD:
                self.stats.malformed += 1
                return
            self._last_received = now
            self._events.append(StateReceived(data))  # compact: checked by the replication
            return
        if _peek_body(data) in _REPLICATION_KINDS:
            try:
                packet = unwrap(data, self.config.schema)
            except (DecodeError, SchemaMismatchError):
                self.stats.malformed += 1
                return
            self._last_received = now
            self._events.append(StateReceived(packet))
            return
        try:
            env = wire.decode_envelope(data)
        except wire.EnvelopeError:
            self.stats.malformed += 1
            return
        if not isinstance(env.body, wire.Heartbeat):
            self.stats.unexpected += 1
            return
        self._last_received = now
        self._on_heartbeat(env.header, env.body, now)

    def _on_heartbeat(self, header: wire.Header, hb: wire.Heartbeat, now: float) -> None:
        self.stats.heartbeats_received += 1
        self._echo = (header.timestamp_us, now)
        self.loss.add(header.sequence)
        if hb.echo_timestamp_us == 0:
            return
        elapsed = wire.timestamp_delta_us(wire.timestamp_us(now), hb.echo_timestamp_us)
        rtt = (elapsed - hb.echo_delay_us) / 1e6
        if not 0.0 <= rtt <= self._timeout:
            self.stats.malformed += 1
            return
        self.rtt.add(rtt)
        self._events.append(
            HeartbeatMeasured(rtt, self.rtt.srtt, self.rtt.rttvar, self.loss.loss)
        )

    def _on_voice(self, data: bytes, now: float) -> None:
        if self.state is not SessionState.CONNECTED:
            self.stats.unexpected += 1
            return
        try:
            env = wire.decode_envelope(data)
        except wire.EnvelopeError:
            self.stats.malformed += 1
            return
        body = env.body
        if not isinstance(body, wire.VoiceData):
            self.stats.unexpected += 1
            return
        self._last_received = now
        self._events.append(VoiceReceived(body.stream, body.sequence, body.codec, body.payload))

    def _on_reliable(self, data: bytes, now: float) -> None:
        try:
            env = wire.decode_envelope(data)
        except wire.EnvelopeError:
            self.stats.malformed += 1
            return
        handler = _RELIABLE_HANDLERS.get((self.state, self.is_client, type(env.body)))
        if handler is None:
            self.stats.unexpected += 1
            return
        self._last_received = now
        handler(self, env, now)

    # -- handlers (dispatched by state, side and body type) -----------------------------------
    def _on_close(self, env: wire.Envelope, now: float) -> None:
        body = env.body
        assert isinstance(body, wire.Close)
        self._finish(body.reason or "closed by the peer", body.code, by_peer=True)

    def _on_commands(self, env: wire.Envelope, now: float) -> None:
        body = env.body
        assert isinstance(body, wire.CommandLogEntry)
        self._events.append(CommandsReceived(body.payload))

    def _on_roster(self, env: wire.Envelope, now: float) -> None:
        body = env.body
        assert isinstance(body, wire.RosterUpdate)
        if not all(role in _ROLE_VALUES for _, role in body.members):
            self.stats.malformed += 1  # a role no command log knows (it raised in the client)
            return
        self._events.append(RosterReceived(body.members))

    def _on_interest(self, env: wire.Envelope, now: float) -> None:
        body = env.body
        assert isinstance(body, wire.Interest)
        if self.negotiated is None or INTEREST_AREA not in self.negotiated.features:
            self.stats.unexpected += 1  # never offered: not a message of this session
            return
        self._events.append(InterestReceived((body.x, body.y, body.z), body.radius))

    def _on_welcome(self, env: wire.Envelope, now: float) -> None:
        w = env.body
        assert isinstance(w, wire.Welcome)
        cfg = self.config
        if not cfg.min_datagram <= w.max_datagram <= cfg.max_datagram:
            # A server picks min(ours, its own) and refuses below min_datagram: anything else
            # is not a welcome to this hello (0 made every later send_state raise).
            self.stats.malformed += 1
            return self.close(now, f"the welcome's max datagram {w.max_datagram} is outside "
                                   f"{cfg.min_datagram}..{cfg.max_datagram}")
        # Only what this side offered can be negotiated, whatever the welcome lists.
        ours_c = {int(c) for c in cfg.channels}
        channels = tuple(Channel(c) for c in w.channels if c in ours_c)
        self.negotiated = Negotiated(
            tuple(f for f in w.features if f in cfg.features),
            tuple(d for d in w.dictionary_ids if d in cfg.dictionary_ids),
            tuple(v for v in w.voice_codecs if v in cfg.voice_codecs), channels, w.max_datagram,
            w.heartbeat_ms / 1e3, w.timeout_ms / 1e3,
        )
        self._compact_state = COMPACT_STATE in self.negotiated.features
        self._heartbeat_interval = max(w.heartbeat_ms / 1e3, 0.01)
        self._timeout = max(w.timeout_ms / 1e3, 0.1)
        self.session_id, self.author, self.role = w.session_id, w.author, w.role
        creds = self.credentials
        assert creds is not None
        self.peer_public_key = b""
        self._set_state(SessionState.CONNECTED)
        self._next_heartbeat = now
        self._events.append(
            Connected(w.session_id, w.author, w.role, creds.public_key, self.negotiated)
        )

    def _on_refusal(self, env: wire.Envelope, now: float) -> None:
        r = env.body
        assert isinstance(r, wire.Refusal)
        try:
            code = RefusalCode(r.code)
        except ValueError:
            code = RefusalCode.MALFORMED_HELLO
        self._events.append(Refused(code, r.reason, r.what, r.here, r.there))
        self._finish(f"refused: {r.reason}", int(code), by_peer=True)

    def _refuse(
        self, code: RefusalCode, reason: str, now: float, what: str = "", here: str = "",
        there: str = "",
    ) -> None:
        self._events.append(Refused(code, reason, what, here, there))
        self._queue(Channel.RELIABLE, wire.Refusal(int(code), reason[:500], what, here, there),
                    now)
        self._set_state(SessionState.CLOSING)
        self._finish(f"refused: {reason}", int(code), by_peer=False)

    def _on_hello(self, env: wire.Envelope, now: float) -> None:
        h, hello = env.header, env.body
        assert isinstance(hello, wire.Hello)
        adm = self.admission
        assert adm is not None
        cfg = self.config

        def mismatch(code: RefusalCode, what: str, here: str, there: str) -> None:
            self._refuse(code, f"{what} {here} here, {there} there", now, what, here, there)

        if h.protocol_version != wire.PROTOCOL_VERSION:
            return mismatch(RefusalCode.PROTOCOL_VERSION, "protocol version",
                            str(wire.PROTOCOL_VERSION), str(h.protocol_version))
        if h.schema_hash != self._schema_hash:
            return mismatch(RefusalCode.SCHEMA_HASH, "schema hash", _hex64(self._schema_hash),
                            _hex64(h.schema_hash))
        if hello.manifest_hash != cfg.manifest_hash:
            return mismatch(RefusalCode.MANIFEST_HASH, "component manifest hash",
                            _hex64(cfg.manifest_hash), _hex64(hello.manifest_hash))
        if not hello.token:
            return self._refuse(RefusalCode.NO_TOKEN, "no join token", now)
        try:
            token = adm.tokens.verify(hello.token, adm.wall_clock())
        except TokenExpiredError as exc:
            return self._refuse(RefusalCode.TOKEN_EXPIRED, str(exc), now, "token expiry",
                                f"{exc.now:.0f}", f"{exc.expires_at:.0f}")
        except TokenForgedError as exc:
            return self._refuse(RefusalCode.TOKEN_FORGED, str(exc), now)
        except TokenError as exc:
            return self._refuse(RefusalCode.TOKEN_MALFORMED, str(exc), now)
        if adm.fingerprint and token.fingerprint_hex and token.fingerprint != adm.fingerprint:
            return mismatch(RefusalCode.FINGERPRINT, "certificate fingerprint",
                            adm.fingerprint.hex(), token.fingerprint_hex)
        granted = token.role
        if hello.role:
            try:
                claimed = Role[hello.role.upper()]
            except KeyError:
                return mismatch(RefusalCode.ROLE, "role", token.role.name.lower(), hello.role)
            if claimed > token.role:
                return mismatch(RefusalCode.ROLE, "role", token.role.name.lower(), hello.role)
            granted = claimed
        try:
            if len(hello.public_key) != 32:
                raise InvalidSignature
            Ed25519PublicKey.from_public_bytes(hello.public_key).verify(
                hello.signature,
                HELLO_DOMAIN + hello.signed_bytes(h.schema_hash, h.protocol_version),
            )
        except (InvalidSignature, ValueError):
            return self._refuse(RefusalCode.SIGNATURE,
                                "the hello is not signed by the key it names", now)
        if len(hello.nonce) < 16 or not adm.fresh_nonce(hello.nonce):
            return self._refuse(RefusalCode.REPLAY, "a replayed hello (nonce seen before)", now)
        ours = {int(c) for c in cfg.channels}
        channels = tuple(Channel(c) for c in sorted(ours & set(hello.channels)))
        if Channel.STATE not in channels or Channel.RELIABLE not in channels:
            return mismatch(RefusalCode.CHANNELS, "channels",
                            ",".join(str(c) for c in sorted(ours)),
                            ",".join(str(c) for c in hello.channels))
        size = min(cfg.max_datagram, hello.max_datagram)
        if size < cfg.min_datagram:
            return mismatch(RefusalCode.DATAGRAM_SIZE, "max datagram", str(cfg.max_datagram),
                            str(hello.max_datagram))
        if adm.room is not None and not adm.room():
            return self._refuse(RefusalCode.SERVER_FULL, "the server is full", now)
        theirs_f, theirs_v = set(hello.features), set(hello.voice_codecs)
        self.negotiated = Negotiated(
            tuple(f for f in cfg.features if f in theirs_f),
            tuple(d for d in cfg.dictionary_ids if d in set(hello.dictionary_ids)),
            tuple(v for v in cfg.voice_codecs if v in theirs_v),
            channels, size, cfg.heartbeat_interval, cfg.timeout,
        )
        self._compact_state = COMPACT_STATE in self.negotiated.features
        self.session_id = adm.next_session_id()
        self.author = author_id(hello.public_key)
        self.role = granted.name.lower()
        self.peer_public_key = hello.public_key
        self.token = token
        neg = self.negotiated
        self._queue(Channel.RELIABLE, wire.Welcome(
            self.session_id, self.author, self.role, neg.features, neg.dictionary_ids,
            neg.voice_codecs, tuple(int(c) for c in neg.channels), neg.max_datagram,
            round(cfg.heartbeat_interval * 1e3), round(cfg.timeout * 1e3), cfg.manifest_hash,
        ), now)
        self._set_state(SessionState.CONNECTED)
        self._next_heartbeat = now
        self._events.append(
            Connected(self.session_id, self.author, self.role, hello.public_key, neg)
        )


_Handler = Callable[[Session, wire.Envelope, float], None]
_C, _H = SessionState.CONNECTED, SessionState.HANDSHAKE
_RELIABLE_HANDLERS: dict[tuple[SessionState, bool, type], _Handler] = {
    (_H, False, wire.Hello): Session._on_hello,
    (_H, True, wire.Welcome): Session._on_welcome,
    (_H, True, wire.Refusal): Session._on_refusal,
    (_H, True, wire.Close): Session._on_close,
    (_H, False, wire.Close): Session._on_close,
    (_C, True, wire.Close): Session._on_close,
    (_C, False, wire.Close): Session._on_close,
    (_C, True, wire.CommandLogEntry): Session._on_commands,
    (_C, False, wire.CommandLogEntry): Session._on_commands,
    (_C, True, wire.RosterUpdate): Session._on_roster,
    (_C, False, wire.Interest): Session._on_interest,
}


def fingerprint_of(der: bytes) -> bytes:
    """SHA-256 of a DER certificate: what tokens and clients pin."""
    return hashlib.sha256(der).digest()


