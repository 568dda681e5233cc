"""What a :class:`~theta_net.session.Session` tells its owner: small frozen dataclasses, taken
one at a time from ``Session.next_event()`` (aioquic's ``quic/events.py`` is the model)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..carrier import Channel

__all__ = [
    "CommandsReceived",
    "Connected",
    "Disconnected",
    "Event",
    "HeartbeatMeasured",
    "Negotiated",
    "RefusalCode",
    "Refused",
    "RosterReceived",
    "StateReceived",
    "VoiceReceived",
]


class RefusalCode(enum.IntEnum):
    """Why a server refused a client (the ``code`` of the wire's Refusal)."""

    PROTOCOL_VERSION = 1
    SCHEMA_HASH = 2
    MANIFEST_HASH = 3
    NO_TOKEN = 4
    TOKEN_MALFORMED = 5
    TOKEN_FORGED = 6
    TOKEN_EXPIRED = 7
    ROLE = 8  # the client claims more than its token grants
    SIGNATURE = 9  # the hello is not signed by the key it names
    REPLAY = 10  # a hello nonce seen before
    CHANNELS = 11  # no common state or reliable channel
    DATAGRAM_SIZE = 12  # the common datagram size is below the minimum
    SERVER_FULL = 13
    MALFORMED_HELLO = 14
    HANDSHAKE_TIMEOUT = 15
    FINGERPRINT = 16  # the token pins another certificate than the server's


@dataclass(frozen=True)
class Negotiated:
    """What both sides share: the intersection of each side's capabilities."""

    features: tuple[str, ...]
    dictionary_ids: tuple[int, ...]
    voice_codecs: tuple[str, ...]
    channels: tuple[Channel, ...]
    max_datagram: int
    heartbeat_interval: float
    timeout: float


@dataclass(frozen=True)
class Connected:
    """The handshake completed. ``author`` is the client's command-log author id (from its
    public key) and ``role`` the role its token granted."""

    session_id: int
    author: int
    role: str
    public_key: bytes
    negotiated: Negotiated


@dataclass(frozen=True)
class Refused:
    """The handshake failed. On a server: it refused the client; on a client: it was refused.
    ``what``/``here``/``there`` name a mismatch, from the refusing side's point of view."""

    code: RefusalCode
    reason: str
    what: str = ""
    here: str = ""
    there: str = ""


@dataclass(frozen=True)
class StateReceived:
    """A replication packet (compact format, :mod:`theta_ecs.serialization.packet`)."""

    packet: bytes


@dataclass(frozen=True)
class CommandsReceived:
    """A command-log packet (:mod:`theta_ecs.commandlog.entry`)."""

    packet: bytes


@dataclass(frozen=True)
class VoiceReceived:
    stream: int
    sequence: int
    codec: str
    payload: bytes


@dataclass(frozen=True)
class RosterReceived:
    """The server's command-log roster: ``(public_key, role)`` pairs."""

    members: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True)
class InterestReceived:
    """Server: the client's area of interest, a sphere at ``center`` (radius 0: none, the whole
    scene). Finite 32-bit floats; the server applies its own bounds."""

    center: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class HeartbeatMeasured:
    """A round trip measured by a heartbeat echo, with the smoothed figures (seconds) and the
    loss estimate of the peer's heartbeats (0..1)."""

    rtt: float
    srtt: float
    rttvar: float
    loss: float


@dataclass(frozen=True)
class Disconnected:
    """The session ended: closed by either side, timed out, or refused. ``by_peer`` is True when
    the peer closed it."""

    reason: str
    code: int = 0
    by_peer: bool = False


Event = (
    Connected | Refused | StateReceived | CommandsReceived | VoiceReceived | RosterReceived
    | HeartbeatMeasured | Disconnected | InterestReceived
)
