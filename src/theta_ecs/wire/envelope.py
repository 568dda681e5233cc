"""The FlatBuffers wire envelope (``schemas/network.fbs``): frozen dataclasses in, bytes out, back.

Encoding uses the flatc-generated builders in :mod:`theta_ecs._generated.network`. Decoding first
runs a structural verifier of our own over the bytes (flatbuffers' Python runtime has none and
reads wherever an offset points): every offset, vtable, vector and string must lie inside the
buffer, aligned as the C++ verifier requires; the header (a fixed-size struct inline in the root
table) must be present, whole and 8-byte aligned; the union type must be known; counts and sizes
are bounded. Only then do the generated accessors read it, and the values are checked against
the same rules the dataclasses enforce. Anything else is a :class:`MalformedEnvelopeError` (both an
:class:`EnvelopeError` and the core's :class:`~theta_ecs.errors.DecodeError`), never an
IndexError or struct.error from the runtime.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import flatbuffers

from .._generated.network import Ack as _Ack
from .._generated.network import Body as _Body
from .._generated.network import Close as _Close
from .._generated.network import CommandLogEntry as _CommandLogEntry
from .._generated.network import ComponentDelta as _ComponentDelta
from .._generated.network import Envelope as _Envelope
from .._generated.network import Header as _Header
from .._generated.network import Heartbeat as _Heartbeat
from .._generated.network import Hello as _Hello
from .._generated.network import Interest as _Interest
from .._generated.network import Refusal as _Refusal
from .._generated.network import RosterUpdate as _RosterUpdate
from .._generated.network import SessionAck as _SessionAck
from .._generated.network import SessionHello as _SessionHello
from .._generated.network import SnapshotChunk as _SnapshotChunk
from .._generated.network import VoiceData as _VoiceData
from .._generated.network import Welcome as _Welcome
from ..errors import DecodeError, SchemaMismatchError, ThetaError

__all__ = [
    "FILE_IDENTIFIER",
    "MAX_CAPABILITIES",
    "MAX_CAPABILITY_BYTES",
    "MAX_ENVELOPE_BYTES",
    "MAX_REASON_BYTES",
    "PROTOCOL_VERSION",
    "TIMESTAMP_MODULUS",
    "Ack",
    "Body",
    "Close",
    "CommandLogEntry",
    "ComponentDelta",
    "Compression",
    "Envelope",
    "EnvelopeError",
    "Header",
    "Heartbeat",
    "Hello",
    "Interest",
    "MalformedEnvelopeError",
    "Refusal",
    "RosterUpdate",
    "SchemaMismatchError",
    "SessionAck",
    "SessionHello",
    "SnapshotChunk",
    "VoiceData",
    "Welcome",
    "decode_envelope",
    "encode_envelope",
    "timestamp_delta_us",
    "timestamp_us",
]

#: 2: Header became a struct, timestamps 32-bit wrapping microseconds, ComponentDelta lost its tick
#: (it is the header's sequence) and carries its baseline as a distance; Heartbeat's origin time is
#: the header's timestamp.
#: 3: the session handshake (Hello, Welcome, Refusal), Close and VoiceData bodies.
PROTOCOL_VERSION = 3
#: Header and heartbeat timestamps are microseconds modulo this (they wrap every 71.6 minutes).
TIMESTAMP_MODULUS = 1 << 32
FILE_IDENTIFIER = b"THNW"
#: The largest envelope decoded: reliable messages (a big command-log entry) may exceed a datagram.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_CAPABILITIES = 64
MAX_CAPABILITY_BYTES = 64
MAX_REASON_BYTES = 512

_U16 = (1 << 16) - 1
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


class EnvelopeError(ThetaError, ValueError):
    """Bytes that are not a well-formed envelope, or an envelope value out of its range."""


class MalformedEnvelopeError(EnvelopeError, DecodeError):
    """Bytes that are not a well-formed envelope (what :func:`decode_envelope` refuses).

    A schema mismatch is the core's :class:`~theta_ecs.errors.SchemaMismatchError` (re-exported
    here), the one class every decoder raises for it: it is not an EnvelopeError."""


class Compression(enum.IntEnum):
    """How the body's payload bytes are compressed (``Compression`` in the schema)."""

    NONE = 0
    ZSTD = 1
    ZSTD_DICTIONARY = 2


# -- value checks shared by the dataclasses (encode side) and the decoder ------------------------
def _uint(name: str, value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(f"{name} must be an integer, got {value!r}")
    if not 0 <= value <= limit:
        raise EnvelopeError(f"{name} must be in [0, {limit}], got {value}")
    return value


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EnvelopeError(f"{name} must be a number, got {value!r}")
    val = float(value)
    if not math.isfinite(val):
        raise EnvelopeError(f"{name} must be finite, got {value!r}")
    return val


def _blob(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"{name} must be bytes, got {type(value).__name__}")
    data = bytes(value)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"{name} is {len(data)} bytes, over {MAX_ENVELOPE_BYTES}")
    return data


def _text(name: str, value: object, limit: int, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(f"{name} must be a string, got {value!r}")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit or (size == 0 and not allow_empty):
        raise EnvelopeError(f"{name} must be {0 if allow_empty else 1}..{limit} bytes, got {size}")
    if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise EnvelopeError(f"{name} holds a NUL or a lone surrogate")
    return value


def _capabilities(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise EnvelopeError(f"capabilities must be a tuple of strings, got {value!r}")
    if len(value) > MAX_CAPABILITIES:
        raise EnvelopeError(f"{len(value)} capabilities, over {MAX_CAPABILITIES}")
    return tuple(
        _text("capability", c, MAX_CAPABILITY_BYTES, allow_empty=False) for c in value
    )


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def timestamp_us(seconds: float) -> int:
    """A clock reading in seconds as a header timestamp: whole microseconds modulo 2^32."""
    micros = _finite("timestamp", seconds) * 1e6
    if not math.isfinite(micros):
        raise EnvelopeError(f"timestamp {seconds!r} s overflows in microseconds")
    return round(micros) % TIMESTAMP_MODULUS


def timestamp_delta_us(later: int, earlier: int) -> int:
    """``later - earlier`` in microseconds for two wrapping 32-bit timestamps (signed, so exact
    while they are less than 2^31 us, 35.8 minutes, apart)."""
    delta = (_uint("later", later, _U32) - _uint("earlier", earlier, _U32)) % TIMESTAMP_MODULUS
    return delta - TIMESTAMP_MODULUS if delta >= TIMESTAMP_MODULUS // 2 else delta


# -- the envelope as values ---------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    """Sent with every body. ``timestamp_us`` is the sender's clock in wrapping 32-bit
    microseconds (:func:`timestamp_us`); ``dictionary_id`` is non-zero exactly for
    ``ZSTD_DICTIONARY``."""

    sequence: int
    timestamp_us: int = 0
    compression: Compression = Compression.NONE
    dictionary_id: int = 0
    schema_hash: int = 0
    protocol_version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _uint("sequence", self.sequence, _U32)
        _uint("timestamp_us", self.timestamp_us, _U32)
        try:
            _set(self, "compression", Compression(self.compression))
        except ValueError:
            raise EnvelopeError(f"unknown compression kind {self.compression!r}") from None
        _uint("dictionary_id", self.dictionary_id, _U32)
        if (self.compression is Compression.ZSTD_DICTIONARY) != (self.dictionary_id != 0):
            raise EnvelopeError(
                f"dictionary_id {self.dictionary_id} does not fit compression "
                f"{self.compression.name} (non-zero exactly for ZSTD_DICTIONARY)"
            )
        _uint("schema_hash", self.schema_hash, _U64)
        _uint("protocol_version", self.protocol_version, _U16)


@dataclass(frozen=True)
class SessionHello:
    peer_id: int
    capabilities: tuple[str, ...] = ()
    max_datagram: int = 1200

    def __post_init__(self) -> None:
        _uint("peer_id", self.peer_id, _U64)
        _set(self, "capabilities", _capabilities(self.capabilities))
        _uint("max_datagram", self.max_datagram, _U16)


@dataclass(frozen=True)
class SessionAck:
    peer_id: int
    accepted: bool
    capabilities: tuple[str, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        _uint("peer_id", self.peer_id, _U64)
        if not isinstance(self.accepted, bool):
            raise EnvelopeError(f"accepted must be a bool, got {self.accepted!r}")
        _set(self, "capabilities", _capabilities(self.capabilities))
        _text("reason", self.reason, MAX_REASON_BYTES, allow_empty=True)


@dataclass(frozen=True)
class ComponentDelta:
    """State for the tick ``Header.sequence``: a full snapshot (``baseline_distance`` 0) or a delta
    against the acknowledged snapshot ``Header.sequence - baseline_distance`` (modulo 2^32).
    :meth:`against` and :meth:`baseline` convert from and to absolute sequences."""

    baseline_distance: int
    payload: bytes

    def __post_init__(self) -> None:
        _uint("baseline_distance", self.baseline_distance, _U32)
        _set(self, "payload", _blob("payload", self.payload))

    @classmethod
    def against(cls, sequence: int, baseline: int | None, payload: bytes) -> ComponentDelta:
        """The body of packet ``sequence``: a delta against ``baseline``, None for a full one."""
        _uint("sequence", sequence, _U32)
        if baseline is None:
            return cls(0, payload)
        distance = (sequence - _uint("baseline", baseline, _U32)) % (_U32 + 1)
        if distance == 0:
            raise EnvelopeError(f"packet {sequence} cannot be its own baseline")
        return cls(distance, payload)

    def baseline(self, sequence: int) -> int | None:
        """The baseline's sequence in packet ``sequence``, None for a full snapshot."""
        if self.baseline_distance == 0:
            return None
        return (_uint("sequence", sequence, _U32) - self.baseline_distance) % (_U32 + 1)


@dataclass(frozen=True)
class SnapshotChunk:
    snapshot_id: int
    index: int
    count: int
    checksum: int
    data: bytes

    def __post_init__(self) -> None:
        _uint("snapshot_id", self.snapshot_id, _U32)
        _uint("count", self.count, _U16)
        _uint("index", self.index, _U16)
        if self.count < 1 or self.index >= self.count:
            raise EnvelopeError(f"chunk {self.index} of {self.count}: need 0 <= index < count")
        _uint("checksum", self.checksum, _U32)
        _set(self, "data", _blob("data", self.data))


@dataclass(frozen=True)
class Ack:
    """Acknowledges ``ack_sequence`` and, in bit ``i`` of ``ack_bits``, ``ack_sequence - 1 - i``."""

    ack_sequence: int
    ack_bits: int = 0

    def __post_init__(self) -> None:
        _uint("ack_sequence", self.ack_sequence, _U32)
        _uint("ack_bits", self.ack_bits, _U64)


@dataclass(frozen=True)
class CommandLogEntry:
    payload: bytes

    def __post_init__(self) -> None:
        _set(self, "payload", _blob("payload", self.payload))


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat's own send time is its header's ``timestamp_us``. ``echo_timestamp_us`` is
    the ``timestamp_us`` of the last heartbeat received from the peer, ``echo_delay_us`` how long
    it was held before this one went out. Round trip at the receiver, on its own clock:
    ``timestamp_delta_us(now_us, echo_timestamp_us) - echo_delay_us``."""

    echo_timestamp_us: int = 0
    echo_delay_us: int = 0

    def __post_init__(self) -> None:
        _uint("echo_timestamp_us", self.echo_timestamp_us, _U32)
        _uint("echo_delay_us", self.echo_delay_us, _U32)


# -- protocol 3: the session's bodies (theta_net.session, docs/protocol.md) ---------------------
#: Bounds of the session bodies' fields (a peer's hello is read before it is trusted).
MAX_TOKEN_BYTES = 1024
MAX_KEY_BYTES = 64
MAX_LIST_ITEMS = 64
MAX_ROLE_BYTES = 32
MAX_VOICE_BYTES = 4096


def _small_blob(name: str, value: object, limit: int) -> bytes:
    data = _blob(name, value)
    if len(data) > limit:
        raise EnvelopeError(f"{name} is {len(data)} bytes, over {limit}")
    return data


def _uints(name: str, value: object, limit: int) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise EnvelopeError(f"{name} must be a tuple of integers, got {value!r}")
    if len(value) > MAX_LIST_ITEMS:
        raise EnvelopeError(f"{len(value)} {name}, over {MAX_LIST_ITEMS}")
    return tuple(_uint(name, v, limit) for v in value)


@dataclass(frozen=True)
class Hello:
    """The client's opening message: identity, claim, token and capabilities. ``signature`` is
    Ed25519 over :meth:`signed_bytes` with the key ``public_key``."""

    manifest_hash: int
    public_key: bytes
    role: str
    token: bytes
    features: tuple[str, ...] = ()
    dictionary_ids: tuple[int, ...] = ()
    voice_codecs: tuple[str, ...] = ()
    channels: tuple[int, ...] = ()
    max_datagram: int = 1200
    nonce: bytes = b""
    signature: bytes = b""

    def __post_init__(self) -> None:
        _uint("manifest_hash", self.manifest_hash, _U64)
        _set(self, "public_key", _small_blob("public_key", self.public_key, MAX_KEY_BYTES))
        _text("role", self.role, MAX_ROLE_BYTES, allow_empty=True)
        _set(self, "token", _small_blob("token", self.token, MAX_TOKEN_BYTES))
        _set(self, "features", _capabilities(self.features))
        _set(self, "dictionary_ids", _uints("dictionary_ids", self.dictionary_ids, _U32))
        _set(self, "voice_codecs", _capabilities(self.voice_codecs))
        _set(self, "channels", _uints("channels", self.channels, 0xFF))
        _uint("max_datagram", self.max_datagram, _U16)
        _set(self, "nonce", _small_blob("nonce", self.nonce, MAX_KEY_BYTES))
        _set(self, "signature", _small_blob("signature", self.signature, MAX_KEY_BYTES))

    def signed_bytes(self, schema_hash: int, protocol_version: int) -> bytes:
        """What the signature covers: every field but the signature, and the header's hashes."""
        parts = [
            struct.pack("<HQQH", protocol_version, schema_hash, self.manifest_hash,
                        self.max_datagram),
            self.public_key, self.role.encode(), self.token, self.nonce,
            "\x1f".join(self.features).encode(), "\x1f".join(self.voice_codecs).encode(),
            struct.pack(f"<{len(self.dictionary_ids)}I", *self.dictionary_ids),
            bytes(self.channels),
        ]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)


@dataclass(frozen=True)
class Welcome:
    """The server admits the client: the negotiated intersection and the session's timing."""

    session_id: int
    author: int
    role: str
    features: tuple[str, ...] = ()
    dictionary_ids: tuple[int, ...] = ()
    voice_codecs: tuple[str, ...] = ()
    channels: tuple[int, ...] = ()
    max_datagram: int = 1200
    heartbeat_ms: int = 250
    timeout_ms: int = 10_000
    manifest_hash: int = 0

    def __post_init__(self) -> None:
        _uint("session_id", self.session_id, _U64)
        _uint("author", self.author, _U64)
        _text("role", self.role, MAX_ROLE_BYTES, allow_empty=True)
        _set(self, "features", _capabilities(self.features))
        _set(self, "dictionary_ids", _uints("dictionary_ids", self.dictionary_ids, _U32))
        _set(self, "voice_codecs", _capabilities(self.voice_codecs))
        _set(self, "channels", _uints("channels", self.channels, 0xFF))
        _uint("max_datagram", self.max_datagram, _U16)
        _uint("heartbeat_ms", self.heartbeat_ms, _U32)
        _uint("timeout_ms", self.timeout_ms, _U32)
        _uint("manifest_hash", self.manifest_hash, _U64)


@dataclass(frozen=True)
class Refusal:
    """The server refuses the client; ``what``/``here``/``there`` name a mismatch's values."""

    code: int
    reason: str
    what: str = ""
    here: str = ""
    there: str = ""

    def __post_init__(self) -> None:
        _uint("code", self.code, _U16)
        for name in ("reason", "what", "here", "there"):
            _text(name, getattr(self, name), MAX_REASON_BYTES, allow_empty=True)


@dataclass(frozen=True)
class Close:
    """Either side ends the session."""

    code: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        _uint("code", self.code, _U16)
        _text("reason", self.reason, MAX_REASON_BYTES, allow_empty=True)


@dataclass(frozen=True)
class VoiceData:
    """One voice frame of ``stream``, numbered by ``sequence``, coded with ``codec``."""

    stream: int
    sequence: int
    codec: str
    payload: bytes

    def __post_init__(self) -> None:
        _uint("stream", self.stream, _U16)
        _uint("sequence", self.sequence, _U32)
        _text("codec", self.codec, MAX_CAPABILITY_BYTES, allow_empty=True)
        _set(self, "payload", _small_blob("payload", self.payload, MAX_VOICE_BYTES))


#: Bytes of one roster record: an Ed25519 public key, then the role.
ROSTER_RECORD_BYTES = 33
MAX_ROSTER_MEMBERS = 4096


@dataclass(frozen=True)
class RosterUpdate:
    """The whole roster: ``members`` holds ``(public_key, role)`` pairs (32-byte keys)."""

    members: tuple[tuple[bytes, int], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.members, (tuple, list)):
            raise EnvelopeError(f"members must be a tuple of (key, role), got {self.members!r}")
        if len(self.members) > MAX_ROSTER_MEMBERS:
            raise EnvelopeError(f"{len(self.members)} members, over {MAX_ROSTER_MEMBERS}")
        out = []
        for member in self.members:
            if not isinstance(member, (tuple, list)) or len(member) != 2:
                raise EnvelopeError(f"a member is (public_key, role), got {member!r}")
            key = _blob("public_key", member[0])
            if len(key) != ROSTER_RECORD_BYTES - 1:
                raise EnvelopeError(f"a member's public key has 32 bytes, not {len(key)}")
            out.append((key, _uint("role", member[1], 0xFF)))
        _set(self, "members", tuple(out))

    def packed(self) -> bytes:
        return b"".join(key + bytes([role]) for key, role in self.members)

    @classmethod
    def unpack(cls, data: bytes) -> RosterUpdate:
        if len(data) % ROSTER_RECORD_BYTES:
            raise EnvelopeError(f"a roster of {len(data)} bytes is not whole 33-byte records")
        return cls(tuple(
            (data[i : i + 32], data[i + 32]) for i in range(0, len(data), ROSTER_RECORD_BYTES)
        ))


#: The largest magnitude a FlatBuffers ``float`` holds (what an Interest field may carry).
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Interest:
    """A client's area of interest: a sphere at (x, y, z) of ``radius``; radius 0 clears it.
    Every value is finite and fits a 32-bit float; the server applies its own bounds."""

    x: float
    y: float
    z: float
    radius: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "z", "radius"):
            val = _finite(name, getattr(self, name))
            if abs(val) > FLOAT32_MAX:
                raise EnvelopeError(f"{name} {val!r} does not fit a 32-bit float")
            _set(self, name, val)
        if self.radius < 0:
            raise EnvelopeError(f"radius must be >= 0, got {self.radius!r}")


Body: TypeAlias = (
    SessionHello | SessionAck | ComponentDelta | SnapshotChunk | Ack | CommandLogEntry | Heartbeat
    | Hello | Welcome | Refusal | Close | VoiceData | RosterUpdate | Interest
)

_BODY_TYPES: dict[type, int] = {
    SessionHello: _Body.Body.SessionHello,
    SessionAck: _Body.Body.SessionAck,
    ComponentDelta: _Body.Body.ComponentDelta,
    SnapshotChunk: _Body.Body.SnapshotChunk,
    Ack: _Body.Body.Ack,
    CommandLogEntry: _Body.Body.CommandLogEntry,
    Heartbeat: _Body.Body.Heartbeat,
    Hello: _Body.Body.Hello,
    Welcome: _Body.Body.Welcome,
    Refusal: _Body.Body.Refusal,
    Close: _Body.Body.Close,
    VoiceData: _Body.Body.VoiceData,
    RosterUpdate: _Body.Body.RosterUpdate,
    Interest: _Body.Body.Interest,
}


@dataclass(frozen=True)
class Envelope:
    header: Header
    body: Body

    def __post_init__(self) -> None:
        if not isinstance(self.header, Header):
            raise EnvelopeError(f"header must be a Header, got {type(self.header).__name__}")
        if type(self.body) not in _BODY_TYPES:
            raise EnvelopeError(f"{type(self.body).__name__} is not an envelope body")


# -- encoding -----------------------------------------------------------------------------------
def _strings(b: flatbuffers.Builder, start: Callable[..., Any], items: tuple[str, ...]) -> int:
    offsets = [b.CreateString(s) for s in items]
    start(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return int(b.EndVector())


def _encode_body(b: flatbuffers.Builder, body: Body) -> int:
    if isinstance(body, SessionHello):
        caps = _strings(b, _SessionHello.StartCapabilitiesVector, body.capabilities)
        _SessionHello.Start(b)
        _SessionHello.AddPeerId(b, body.peer_id)
        _SessionHello.AddCapabilities(b, caps)
        _SessionHello.AddMaxDatagram(b, body.max_datagram)
        return int(_SessionHello.End(b))
    if isinstance(body, SessionAck):
        caps = _strings(b, _SessionAck.StartCapabilitiesVector, body.capabilities)
        reason = b.CreateString(body.reason)
        _SessionAck.Start(b)
        _SessionAck.AddPeerId(b, body.peer_id)
        _SessionAck.AddAccepted(b, body.accepted)
        _SessionAck.AddCapabilities(b, caps)
        _SessionAck.AddReason(b, reason)
        return int(_SessionAck.End(b))
    if isinstance(body, ComponentDelta):
        payload = b.CreateByteVector(body.payload)
        _ComponentDelta.Start(b)
        _ComponentDelta.AddPayload(b, payload)
        _ComponentDelta.AddBaselineDistance(b, body.baseline_distance)  # left out when 0
        return int(_ComponentDelta.End(b))
    if isinstance(body, SnapshotChunk):
        data = b.CreateByteVector(body.data)
        _SnapshotChunk.Start(b)
        _SnapshotChunk.AddData(b, data)
        _SnapshotChunk.AddSnapshotId(b, body.snapshot_id)
        _SnapshotChunk.AddChecksum(b, body.checksum)
        _SnapshotChunk.AddIndex(b, body.index)
        _SnapshotChunk.AddCount(b, body.count)
        return int(_SnapshotChunk.End(b))
    if isinstance(body, Ack):
        _Ack.Start(b)
        _Ack.AddAckBits(b, body.ack_bits)
        _Ack.AddAckSequence(b, body.ack_sequence)
        return int(_Ack.End(b))
    if isinstance(body, CommandLogEntry):
        payload = b.CreateByteVector(body.payload)
        _CommandLogEntry.Start(b)
        _CommandLogEntry.AddPayload(b, payload)
        return int(_CommandLogEntry.End(b))
    if isinstance(body, Heartbeat):
        _Heartbeat.Start(b)
        _Heartbeat.AddEchoTimestampUs(b, body.echo_timestamp_us)
        _Heartbeat.AddEchoDelayUs(b, body.echo_delay_us)
        return int(_Heartbeat.End(b))
    return _encode_session_body(b, body)


def _uint_vector(b: flatbuffers.Builder, start: Callable[..., Any], items: tuple[int, ...]) -> int:
    start(b, len(items))
    for v in reversed(items):
        b.PrependUint32(v)
    return int(b.EndVector())


def _encode_session_body(b: flatbuffers.Builder, body: Body) -> int:
    """Protocol 3's session bodies."""
    if isinstance(body, Hello):
        key, token = b.CreateByteVector(body.public_key), b.CreateByteVector(body.token)
        nonce, sig = b.CreateByteVector(body.nonce), b.CreateByteVector(body.signature)
        channels = b.CreateByteVector(bytes(body.channels))
        role = b.CreateString(body.role)
        feats = _strings(b, _Hello.StartFeaturesVector, body.features)
        voice = _strings(b, _Hello.StartVoiceCodecsVector, body.voice_codecs)
        dicts = _uint_vector(b, _Hello.StartDictionaryIdsVector, body.dictionary_ids)
        _Hello.Start(b)
        _Hello.AddManifestHash(b, body.manifest_hash)
        _Hello.AddPublicKey(b, key)
        _Hello.AddRole(b, role)
        _Hello.AddToken(b, token)
        _Hello.AddFeatures(b, feats)
        _Hello.AddDictionaryIds(b, dicts)
        _Hello.AddVoiceCodecs(b, voice)
        _Hello.AddChannels(b, channels)
        _Hello.AddNonce(b, nonce)
        _Hello.AddSignature(b, sig)
        _Hello.AddMaxDatagram(b, body.max_datagram)
        return int(_Hello.End(b))
    if isinstance(body, Welcome):
        role = b.CreateString(body.role)
        channels = b.CreateByteVector(bytes(body.channels))
        feats = _strings(b, _Welcome.StartFeaturesVector, body.features)
        voice = _strings(b, _Welcome.StartVoiceCodecsVector, body.voice_codecs)
        dicts = _uint_vector(b, _Welcome.StartDictionaryIdsVector, body.dictionary_ids)
        _Welcome.Start(b)
        _Welcome.AddSessionId(b, body.session_id)
        _Welcome.AddAuthor(b, body.author)
        _Welcome.AddManifestHash(b, body.manifest_hash)
        _Welcome.AddRole(b, role)
        _Welcome.AddFeatures(b, feats)
        _Welcome.AddDictionaryIds(b, dicts)
        _Welcome.AddVoiceCodecs(b, voice)
        _Welcome.AddChannels(b, channels)
        _Welcome.AddHeartbeatMs(b, body.heartbeat_ms)
        _Welcome.AddTimeoutMs(b, body.timeout_ms)
        _Welcome.AddMaxDatagram(b, body.max_datagram)
        return int(_Welcome.End(b))
    if isinstance(body, Refusal):
        texts = [b.CreateString(t) for t in (body.reason, body.what, body.here, body.there)]
        _Refusal.Start(b)
        _Refusal.AddReason(b, texts[0])
        _Refusal.AddWhat(b, texts[1])
        _Refusal.AddHere(b, texts[2])
        _Refusal.AddThere(b, texts[3])
        _Refusal.AddCode(b, body.code)
        return int(_Refusal.End(b))
    if isinstance(body, Close):
        reason = b.CreateString(body.reason)
        _Close.Start(b)
        _Close.AddReason(b, reason)
        _Close.AddCode(b, body.code)
        return int(_Close.End(b))
    if isinstance(body, VoiceData):
        payload = b.CreateByteVector(body.payload)
        codec = b.CreateString(body.codec)
        _VoiceData.Start(b)
        _VoiceData.AddPayload(b, payload)
        _VoiceData.AddCodec(b, codec)
        _VoiceData.AddSequence(b, body.sequence)
        _VoiceData.AddStream(b, body.stream)
        return int(_VoiceData.End(b))
    if isinstance(body, RosterUpdate):
        members = b.CreateByteVector(body.packed())
        _RosterUpdate.Start(b)
        _RosterUpdate.AddMembers(b, members)
        return int(_RosterUpdate.End(b))
    if isinstance(body, Interest):
        _Interest.Start(b)
        _Interest.AddX(b, body.x)
        _Interest.AddY(b, body.y)
        _Interest.AddZ(b, body.z)
        _Interest.AddRadius(b, body.radius)
        return int(_Interest.End(b))
    raise EnvelopeError(f"{type(body).__name__} is not an envelope body")


def encode_envelope(env: Envelope) -> bytes:
    """The envelope's FlatBuffers bytes (file identifier ``THNW``)."""
    if not isinstance(env, Envelope):
        raise EnvelopeError(f"expected an Envelope, got {type(env).__name__}")
    size_hint = 96 + sum(
        len(getattr(env.body, name, b"")) for name in ("payload", "data")
    )
    b = flatbuffers.Builder(size_hint)
    body = _encode_body(b, env.body)
    h = env.header
    _Envelope.Start(b)
    # The struct is written inline, right before its slot is added (the builder requires it).
    _Envelope.AddHeader(b, _Header.CreateHeader(
        b, h.protocol_version, int(h.compression), h.sequence, h.timestamp_us, h.dictionary_id,
        h.schema_hash,
    ))
    _Envelope.AddBody(b, body)
    _Envelope.AddBodyType(b, _BODY_TYPES[type(env.body)])
    b.Finish(_Envelope.End(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


# -- verification -------------------------------------------------------------------------------
# A field: (slot, kind). Scalars by width; "table:<name>", "str", "bytes", "strs" are offsets.
_Field = tuple[int, str]
_SCALAR_SIZES = {"u8": 1, "bool": 1, "u16": 2, "u32": 4, "u64": 8, "f32": 4}
_HEADER_SIZE = 24  # struct Header: fixed size, 8-byte aligned (its schema_hash is a ulong)
_HEADER_ALIGN = 8

_TABLES: dict[str, tuple[_Field, ...]] = {
    "SessionHello": ((0, "u64"), (1, "strs"), (2, "u16")),
    "SessionAck": ((0, "u64"), (1, "bool"), (2, "strs"), (3, "str")),
    "ComponentDelta": ((0, "u32"), (1, "bytes")),
    "SnapshotChunk": ((0, "u32"), (1, "u16"), (2, "u16"), (3, "u32"), (4, "bytes")),
    "Ack": ((0, "u32"), (1, "u64")),
    "CommandLogEntry": ((0, "bytes"),),
    "Heartbeat": ((0, "u32"), (1, "u32")),
    "Hello": ((0, "u64"), (1, "bytes"), (2, "str"), (3, "bytes"), (4, "strs"), (5, "u32s"),
              (6, "strs"), (7, "bytes"), (8, "u16"), (9, "bytes"), (10, "bytes")),
    "Welcome": ((0, "u64"), (1, "u64"), (2, "str"), (3, "strs"), (4, "u32s"), (5, "strs"),
                (6, "bytes"), (7, "u16"), (8, "u32"), (9, "u32"), (10, "u64")),
    "Refusal": ((0, "u16"), (1, "str"), (2, "str"), (3, "str"), (4, "str")),
    "Close": ((0, "u16"), (1, "str")),
    "VoiceData": ((0, "u16"), (1, "u32"), (2, "str"), (3, "bytes")),
    "RosterUpdate": ((0, "bytes"),),
    "Interest": ((0, "f32"), (1, "f32"), (2, "f32"), (3, "f32")),
}
_UNION_TABLES = {
    _Body.Body.SessionHello: "SessionHello",
    _Body.Body.SessionAck: "SessionAck",
    _Body.Body.ComponentDelta: "ComponentDelta",
    _Body.Body.SnapshotChunk: "SnapshotChunk",
    _Body.Body.Ack: "Ack",
    _Body.Body.CommandLogEntry: "CommandLogEntry",
    _Body.Body.Heartbeat: "Heartbeat",
    _Body.Body.Hello: "Hello",
    _Body.Body.Welcome: "Welcome",
    _Body.Body.Refusal: "Refusal",
    _Body.Body.Close: "Close",
    _Body.Body.VoiceData: "VoiceData",
    _Body.Body.RosterUpdate: "RosterUpdate",
    _Body.Body.Interest: "Interest",
}
_U16_AT = struct.Struct("<H").unpack_from
_U32_AT = struct.Struct("<I").unpack_from
_I32_AT = struct.Struct("<i").unpack_from


class _Verifier:
    """Checks that every read the generated accessors will make stays inside ``buf``."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.n = len(buf)

    def fail(self, what: str) -> EnvelopeError:
        return MalformedEnvelopeError(f"malformed envelope: {what}")

    def _check(self, pos: int, size: int, align: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise self.fail(f"{what} at {pos} (+{size}) lies outside the {self.n}-byte buffer")
        if pos % align:
            raise self.fail(f"{what} at {pos} is not {align}-byte aligned")

    def _deref(self, pos: int, what: str) -> int:
        self._check(pos, 4, 4, what)
        target = pos + int(_U32_AT(self.buf, pos)[0])
        self._check(target, 4, 4, what)
        return target

    def table(self, pos: int, name: str) -> dict[int, int]:
        """Verify the table at ``pos``; returns the buffer position of each present field."""
        self._check(pos, 4, 4, f"{name} table")
        vt = pos - int(_I32_AT(self.buf, pos)[0])
        self._check(vt, 4, 2, f"{name} vtable")
        vt_size = int(_U16_AT(self.buf, vt)[0])
        obj_size = int(_U16_AT(self.buf, vt + 2)[0])
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.n:
            raise self.fail(f"{name} vtable size {vt_size} at {vt}")
        if obj_size < 4 or pos + obj_size > self.n:
            raise self.fail(f"{name} table size {obj_size} at {pos}")
        present: dict[int, int] = {}
        for slot, kind in _TABLES[name]:
            entry = 4 + 2 * slot
            if entry + 2 > vt_size:
                continue  # an older writer: the field takes its default
            off = int(_U16_AT(self.buf, vt + entry)[0])
            if off == 0:
                continue
            size = _SCALAR_SIZES.get(kind, 4)
            if off < 4 or off + size > obj_size:
                raise self.fail(f"{name} field {slot} at offset {off} outside its table")
            field = pos + off
            self._check(field, size, size, f"{name} field {slot}")
            present[slot] = field
            if kind == "bytes":
                self.vector(self._deref(field, f"{name} field {slot}"), 1, f"{name}.{slot}")
            elif kind == "u32s":
                self.vector(self._deref(field, f"{name} field {slot}"), 4, f"{name}.{slot}")
            elif kind == "str":
                self.string(self._deref(field, f"{name} field {slot}"), f"{name}.{slot}")
            elif kind == "strs":
                start, count = self.vector(
                    self._deref(field, f"{name} field {slot}"), 4, f"{name}.{slot}"
                )
                if count > MAX_CAPABILITIES:
                    raise self.fail(f"{name}.{slot}: {count} strings, over {MAX_CAPABILITIES}")
                for k in range(count):
                    self.string(self._deref(start + 4 * k, f"{name}.{slot}[{k}]"), name)
        return present

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        count = int(_U32_AT(self.buf, pos)[0])
        if count * elem > self.n - pos - 4:
            raise self.fail(f"{what}: a vector of {count} elements overruns the buffer")
        return pos + 4, count

    def string(self, pos: int, what: str) -> None:
        start, length = self.vector(pos, 1, what)
        if start + length >= self.n or self.buf[start + length] != 0:
            raise self.fail(f"{what}: a string without its terminating NUL")

    def envelope(self) -> None:
        if self.n < 8:
            raise self.fail(f"{self.n} bytes is shorter than any envelope")
        if self.n > MAX_ENVELOPE_BYTES:
            raise self.fail(f"{self.n} bytes is over the {MAX_ENVELOPE_BYTES}-byte limit")
        if self.buf[4:8] != FILE_IDENTIFIER:
            raise self.fail(f"file identifier {self.buf[4:8]!r}, expected {FILE_IDENTIFIER!r}")
        root = self._deref(0, "root")
        vt = root - int(_I32_AT(self.buf, root)[0])
        self._check(vt, 4, 2, "Envelope vtable")
        vt_size = int(_U16_AT(self.buf, vt)[0])
        obj_size = int(_U16_AT(self.buf, vt + 2)[0])
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.n:
            raise self.fail(f"Envelope vtable size {vt_size}")
        if obj_size < 4 or root + obj_size > self.n:
            raise self.fail(f"Envelope table size {obj_size}")

        def slot(i: int, size: int, align: int) -> int:
            entry = 4 + 2 * i
            off = int(_U16_AT(self.buf, vt + entry)[0]) if entry + 2 <= vt_size else 0
            if off and (off < 4 or off + size > obj_size):
                raise self.fail(f"Envelope field {i} at offset {off} outside its table")
            if off:
                self._check(root + off, size, align, f"Envelope field {i}")
            return root + off if off else 0

        # The header struct lies inline: in bounds and aligned is all there is to check.
        header = slot(0, _HEADER_SIZE, _HEADER_ALIGN)
        body_type, body = slot(1, 1, 1), slot(2, 4, 4)
        if not header:
            raise self.fail("no header (a required field)")
        kind = self.buf[body_type] if body_type else 0
        if not body or kind == 0:
            raise self.fail("no body (a required field)")
        name = _UNION_TABLES.get(kind)
        if name is None:
            raise self.fail(f"unknown body type {kind}")
        self.table(self._deref(body, "body"), name)


# -- decoding -----------------------------------------------------------------------------------
def _bytes_field(tab: Any, slot: int) -> bytes:
    off = tab.Offset(4 + 2 * slot)
    if not off:
        return b""
    start = tab.Vector(off)
    return bytes(tab.Bytes[start : start + tab.VectorLen(off)])


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEnvelopeError(
            f"malformed envelope: {what} is not UTF-8 ({exc.reason})"
        ) from None


def _caps(obj: Any) -> tuple[str, ...]:
    count = obj.CapabilitiesLength()
    return tuple(_utf8(obj.Capabilities(k), "a capability") for k in range(count))


def _decode_body(kind: int, buf: bytes, pos: int) -> Body:
    if kind == _Body.Body.SessionHello:
        hello = _SessionHello.SessionHello()
        hello.Init(buf, pos)
        return SessionHello(hello.PeerId(), _caps(hello), hello.MaxDatagram())
    if kind == _Body.Body.SessionAck:
        ack = _SessionAck.SessionAck()
        ack.Init(buf, pos)
        reason = ack.Reason()
        return SessionAck(
            ack.PeerId(), ack.Accepted(), _caps(ack), _utf8(reason or b"", "the reason")
        )
    if kind == _Body.Body.ComponentDelta:
        delta = _ComponentDelta.ComponentDelta()
        delta.Init(buf, pos)
        return ComponentDelta(delta.BaselineDistance(), _bytes_field(delta._tab, 1))
    if kind == _Body.Body.SnapshotChunk:
        chunk = _SnapshotChunk.SnapshotChunk()
        chunk.Init(buf, pos)
        return SnapshotChunk(
            chunk.SnapshotId(), chunk.Index(), chunk.Count(), chunk.Checksum(),
            _bytes_field(chunk._tab, 4),
        )
    if kind == _Body.Body.Ack:
        a = _Ack.Ack()
        a.Init(buf, pos)
        return Ack(a.AckSequence(), a.AckBits())
    if kind == _Body.Body.CommandLogEntry:
        entry = _CommandLogEntry.CommandLogEntry()
        entry.Init(buf, pos)
        return CommandLogEntry(_bytes_field(entry._tab, 0))
    if kind == _Body.Body.Heartbeat:
        hb = _Heartbeat.Heartbeat()
        hb.Init(buf, pos)
        return Heartbeat(hb.EchoTimestampUs(), hb.EchoDelayUs())
    return _decode_session_body(kind, buf, pos)


def _strs(obj: Any, length: str, item: str) -> tuple[str, ...]:
    get = getattr(obj, item)
    return tuple(_utf8(get(k), "a string") for k in range(getattr(obj, length)()))


def _u32s(obj: Any, length: str, item: str) -> tuple[int, ...]:
    get = getattr(obj, item)
    return tuple(int(get(k)) for k in range(getattr(obj, length)()))


def _text_field(raw: bytes | None, what: str) -> str:
    return _utf8(raw or b"", what)


def _decode_session_body(kind: int, buf: bytes, pos: int) -> Body:
    """Protocol 3's session bodies (the verifier has checked every offset)."""
    if kind == _Body.Body.Hello:
        h = _Hello.Hello()
        h.Init(buf, pos)
        return Hello(
            h.ManifestHash(), _bytes_field(h._tab, 1), _text_field(h.Role(), "the role"),
            _bytes_field(h._tab, 3), _strs(h, "FeaturesLength", "Features"),
            _u32s(h, "DictionaryIdsLength", "DictionaryIds"),
            _strs(h, "VoiceCodecsLength", "VoiceCodecs"), tuple(_bytes_field(h._tab, 7)),
            h.MaxDatagram(), _bytes_field(h._tab, 9), _bytes_field(h._tab, 10),
        )
    if kind == _Body.Body.Welcome:
        w = _Welcome.Welcome()
        w.Init(buf, pos)
        return Welcome(
            w.SessionId(), w.Author(), _text_field(w.Role(), "the role"),
            _strs(w, "FeaturesLength", "Features"),
            _u32s(w, "DictionaryIdsLength", "DictionaryIds"),
            _strs(w, "VoiceCodecsLength", "VoiceCodecs"), tuple(_bytes_field(w._tab, 6)),
            w.MaxDatagram(), w.HeartbeatMs(), w.TimeoutMs(), w.ManifestHash(),
        )
    if kind == _Body.Body.Refusal:
        r = _Refusal.Refusal()
        r.Init(buf, pos)
        return Refusal(
            r.Code(), _text_field(r.Reason(), "the reason"), _text_field(r.What(), "what"),
            _text_field(r.Here(), "here"), _text_field(r.There(), "there"),
        )
    if kind == _Body.Body.Close:
        c = _Close.Close()
        c.Init(buf, pos)
        return Close(c.Code(), _text_field(c.Reason(), "the reason"))
    if kind == _Body.Body.RosterUpdate:
        roster = _RosterUpdate.RosterUpdate()
        roster.Init(buf, pos)
        return RosterUpdate.unpack(_bytes_field(roster._tab, 0))
    if kind == _Body.Body.Interest:
        i = _Interest.Interest()
        i.Init(buf, pos)
        return Interest(i.X(), i.Y(), i.Z(), i.Radius())
    v = _VoiceData.VoiceData()
    v.Init(buf, pos)
    return VoiceData(
        v.Stream(), v.Sequence(), _text_field(v.Codec(), "the codec"), _bytes_field(v._tab, 3)
    )


def decode_envelope(
    data: bytes | bytearray | memoryview, *, expected_schema_hash: int | None = None
) -> Envelope:
    """The envelope in ``data``; MalformedEnvelopeError (a DecodeError) if it is not one,
    SchemaMismatchError if it was written for another schema than ``expected_schema_hash``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"expected bytes, got {type(data).__name__}")
    buf = bytes(data)
    _Verifier(buf).envelope()
    root = _Envelope.Envelope.GetRootAs(buf, 0)
    h = root.Header()
    kind = root.BodyType()
    union = root.Body()
    if h is None or union is None:  # the verifier already refused these
        raise MalformedEnvelopeError("malformed envelope: missing header or body")
    if expected_schema_hash is not None and h.SchemaHash() != expected_schema_hash:
        raise SchemaMismatchError(expected_schema_hash, h.SchemaHash(), what="envelope")
    try:
        # The dataclasses hold the value rules (ranges, dictionary ids, chunk index < count).
        header = Header(
            sequence=h.Sequence(),
            timestamp_us=h.TimestampUs(),
            compression=h.Compression(),
            dictionary_id=h.DictionaryId(),
            schema_hash=h.SchemaHash(),
            protocol_version=h.ProtocolVersion(),
        )
        return Envelope(header, _decode_body(kind, buf, union.Pos))
    except MalformedEnvelopeError:
        raise
    except EnvelopeError as exc:
        raise MalformedEnvelopeError(f"malformed envelope: {exc}") from None
