"""Voice over a theta_net session: the client's voice channel and the server's relay.

Voice payloads are opaque bytes here (theta_voice's packets and listener reports travel inside
the session's ``VoiceData`` envelope on the unreliable ``VOICE`` channel; theta_net never looks
inside). Each admitted client speaks under one voice stream bound to its verified session
(:func:`voice_stream_id`), which the server checks on every datagram and stamps on what it
forwards, so a listener knows who really spoke (:meth:`VoiceChannel.receive_from`).

The server is an SFU: it forwards each datagram at once to every other admitted client that
negotiated voice, never decoding or mixing, never queueing (a datagram that finds no room is
dropped: voice is latest-wins), within a per-speaker byte and packet budget, so a flooding
speaker loses its excess and nobody else notices.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .carrier import Channel
from .errors import MessageTooLargeError, NetError
from .session.events import VoiceReceived

if TYPE_CHECKING:
    from .client import Client
    from .server import ClientInfo

__all__ = [
    "VOICE_CODECS",
    "TokenBucket",
    "VoiceChannel",
    "VoiceChannelError",
    "VoiceRelay",
    "VoiceRelayConfig",
    "VoiceRelayStats",
    "voice_stream_id",
]

#: Payload formats a Server and Client offer by default (theta_voice's packet codec names).
VOICE_CODECS = ("opus", "pcm")
#: The largest voice payload (wire.MAX_VOICE_BYTES; a datagram usually caps it lower).
MAX_VOICE_PAYLOAD = 4096
#: A server's outgoing voice budget per listener, bytes/s: several speakers at full rate at once.
SERVER_VOICE_BYTES_PER_S = 64_000.0


class VoiceChannelError(NetError, ValueError):
    """A send the voice channel cannot make (a reliable one)."""


def voice_stream_id(session_id: int) -> int:
    """The voice stream (1..65535, the envelope's u16) a session speaks under. Session ids are
    handed out in order, so two clients connected at once share one only 65,535 joins apart."""
    return (session_id - 1) % 0xFFFF + 1


class TokenBucket:
    """``rate`` units per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.time = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.time) * self.rate)
        self.time = max(self.time, now)


@dataclass(frozen=True)
class VoiceRelayConfig:
    """Per speaker: what the relay forwards. The defaults take Opus at its top 64 kbit/s in 10 ms
    frames (about 9.8 kB/s with theta_voice's headers) plus a report a second per stream heard."""

    bytes_per_s: float = 12_000.0
    packets_per_s: float = 120.0
    burst_s: float = 0.25


@dataclass
class VoiceRelayStats:
    received: int = 0  # voice datagrams from admitted speakers
    relayed: int = 0  # datagrams queued to listeners (one per listener)
    relayed_bytes: int = 0  # their payload bytes
    rate_dropped: int = 0  # over the speaker's byte or packet budget
    forged: int = 0  # a stream id that is not the sender's
    not_admitted: int = 0  # from a session the server no longer counts as a client
    listener_dropped: int = 0  # a listener's budget or path had no room
    no_voice: int = 0  # a listener that did not negotiate voice or this codec (skipped)


class VoiceRelay:
    """The server's voice forwarding: budgets per speaker, identity checks, fan-out."""

    def __init__(self, config: VoiceRelayConfig, telemetry: Any) -> None:
        self.config = config
        self.telemetry = telemetry
        self.stats = VoiceRelayStats()
        self._budgets: dict[int, tuple[TokenBucket, TokenBucket]] = {}

    def _count(self, what: str, n: int = 1) -> None:
        setattr(self.stats, what, getattr(self.stats, what) + n)
        self.telemetry.count(f"net.voice.{what}", n)

    def forget(self, session_id: int) -> None:
        """A session ended: its budget goes."""
        self._budgets.pop(session_id, None)

    def _admit(self, session_id: int, size: int, now: float) -> bool:
        cfg = self.config
        budget = self._budgets.get(session_id)
        if budget is None:
            budget = self._budgets[session_id] = (
                TokenBucket(cfg.bytes_per_s, cfg.bytes_per_s * cfg.burst_s, now),
                TokenBucket(cfg.packets_per_s, max(1.0, cfg.packets_per_s * cfg.burst_s), now))
        octets, packets = budget
        octets.refill(now)
        packets.refill(now)
        if octets.tokens < size or packets.tokens < 1.0:
            return False
        octets.tokens -= size
        packets.tokens -= 1.0
        return True

    def relay(self, sender: ClientInfo, event: VoiceReceived, clients: dict[int, ClientInfo],
              now: float, flush: Callable[[ClientInfo, float], None]) -> int:
        """Forward one datagram of ``sender`` to every other admitted client; returns how many
        listeners it was queued to."""
        sid = sender.session.session_id
        if clients.get(sid) is not sender:
            self._count("not_admitted")
            return 0
        if event.stream != voice_stream_id(sid):
            self._count("forged")
            return 0
        self._count("received")
        if not self._admit(sid, len(event.payload), now):
            self._count("rate_dropped")
            return 0
        sent = 0
        for other in list(clients.values()):
            session = other.session
            if other is sender or not session.connected:
                continue
            neg = session.negotiated
            if (neg is None or Channel.VOICE not in neg.channels
                    or event.codec not in neg.voice_codecs):
                self._count("no_voice")
                continue
            if session.send_voice(event.stream, event.sequence, event.codec, event.payload, now):
                sent += 1
                flush(other, now)
            else:
                self._count("listener_dropped")
        if sent:
            self._count("relayed", sent)
            self._count("relayed_bytes", sent * len(event.payload))
        return sent

    def metrics(self) -> dict[str, int]:
        return asdict(self.stats)


class VoiceChannel:
    """A client's voice path as a :class:`theta_ecs.interfaces.Transport`: ``send`` puts one
    datagram on the session's VOICE channel under this client's stream, ``receive`` drains what
    the server relayed (``receive_from`` with the verified speaker's stream id beside each).
    theta_voice's ``pump(client.voice, voice_session, now)`` runs over it; make the voice session
    with ``stream_id=client.voice.stream_id`` once connected (the id changes on a reconnection,
    and theta_voice's ``pump`` follows :attr:`stream_id`).

    Unreliable only: a datagram that cannot go now (not connected, over the session's voice
    budget, no room on the path) is dropped and counted; received datagrams wait in a bounded
    inbox whose oldest are dropped first (counted) when the engine does not drain it.
    """

    def __init__(self, client: Client, *, codec: str = "opus", inbox: int = 512) -> None:
        self.client = client
        self.codec = codec
        self.closed = False
        self._inbox: deque[tuple[int, bytes]] = deque()
        self._inbox_limit = inbox
        self._sequence = 0

    def _count(self, what: str, n: int = 1) -> None:
        self.client.world.telemetry.count(f"net.voice.{what}", n)

    @property
    def stream_id(self) -> int:
        """The stream this client speaks under (0 while not connected)."""
        event = self.client.connected_event
        return voice_stream_id(event.session_id) if event is not None else 0

    def send(self, data: bytes, *, reliable: bool = False) -> None:
        if reliable:
            raise VoiceChannelError("voice is unreliable only: send reliable data on the "
                                    "session's reliable channel")
        if len(data) > MAX_VOICE_PAYLOAD:
            raise MessageTooLargeError("VOICE", len(data), MAX_VOICE_PAYLOAD)
        client, session = self.client, self.client.session
        if self.closed or session is None or not session.connected:
            self._count("send_dropped")
            return
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        if session.send_voice(self.stream_id, self._sequence, self.codec, bytes(data),
                              client.now()):
            self._count("sent")
            client._flush()  # voice goes now, not at the next tick
        else:
            self._count("send_dropped")

    def deliver(self, event: VoiceReceived) -> None:
        """The client's event loop: one relayed datagram arrived."""
        if self.closed:
            return
        self._count("delivered")
        if len(self._inbox) >= self._inbox_limit:
            self._inbox.popleft()
            self._count("inbox_dropped")
        self._inbox.append((event.stream, event.payload))

    def receive_from(self) -> list[tuple[int, bytes]]:
        """Everything relayed since the last call, as ``(speaker stream id, payload)``."""
        out = list(self._inbox)
        self._inbox.clear()
        return out

    def receive(self) -> list[bytes]:
        return [payload for _, payload in self.receive_from()]

    def close(self) -> None:
        """Stop voice (the connection stays): sends are dropped, nothing more is received."""
        self.closed = True
        self._inbox.clear()

