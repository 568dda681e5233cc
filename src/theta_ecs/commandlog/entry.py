"""Entries, signed batches and packets, and their binary encodings.

An :class:`Entry` is one command: Lamport clock, author, per-author sequence number, the entry it
was based on (for conflict detection), scope, command type and payload. Entries travel and are
stored in :class:`SignedBatch` es: consecutive entries of one author under one Ed25519 signature,
so verification costs one signature check per batch rather than per entry. Every decoder here
reads bytes from the network or from disk: it checks every length against the buffer and the
limits below and raises :class:`DecodeError`, never anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from .clock import MAX_CLOCK
from .errors import CommandLogError, CommandPayloadError, DecodeError

ENTRY_VERSION = 1
MAX_KIND_BYTES = 64
MAX_FIELD_BYTES = 64
#: Hard ceiling of the decoder; the payload guard enforces a (smaller) configurable limit.
MAX_PAYLOAD_BYTES = 1 << 20
MAX_BATCH_ENTRIES = 4096
MAX_PACKET_ITEMS = 4096
SIGNATURE_BYTES = 64
U64 = (1 << 64) - 1


class Scope(NamedTuple):
    """What a command touches: an entity (by net id), a component (stable id, 0 for the entity's
    existence) and optionally one field ("" for the whole component)."""

    entity: int
    component: int
    field: str = ""

    @property
    def group(self) -> tuple[int, int]:
        """Commands conflict when they share this (entity, component) pair."""
        return (self.entity, self.component)


class EntryId(NamedTuple):
    """An entry's identity: its author and that author's sequence number (unique per author)."""

    author: int
    seq: int


NO_BASE = EntryId(0, 0)


@dataclass(frozen=True, slots=True)
class Entry:
    """One command. ``key`` is its place in the total order: (clock, author, seq)."""

    clock: int
    author: int
    seq: int
    kind: str
    scope: Scope
    payload: bytes
    base: EntryId = NO_BASE

    @property
    def id(self) -> EntryId:
        return EntryId(self.author, self.seq)

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.clock, self.author, self.seq)

    def encode(self) -> bytes:
        kind = self.kind.encode("utf-8")
        field = self.scope.field.encode("utf-8")
        _check_entry_limits(
            self.clock, self.author, self.seq, kind, field, len(self.payload), CommandPayloadError
        )
        return b"".join(
            (
                _ENTRY_HEAD.pack(
                    self.clock, self.author, self.seq, self.base.author, self.base.seq,
                    self.scope.entity, self.scope.component, len(kind), len(field),
                    len(self.payload),
                ),
                kind,
                field,
                self.payload,
            )
        )


# clock, author, seq, base author, base seq, scope entity, scope component, len(kind), len(field),
# len(payload)
_ENTRY_HEAD = struct.Struct("<QQQQQQQBBI")


def _check_entry_limits(
    clock: int,
    author: int,
    seq: int,
    kind: bytes,
    field: bytes,
    payload_len: int,
    error: type[CommandLogError | DecodeError] = DecodeError,
) -> None:
    if not 1 <= clock < MAX_CLOCK:
        raise error(f"entry clock {clock} outside 1..2^53")
    if author == 0 or seq == 0:
        raise error("entry author and seq must be non-zero")
    if not 1 <= len(kind) <= MAX_KIND_BYTES:
        raise error(f"command type of {len(kind)} bytes (1..{MAX_KIND_BYTES})")
    if len(field) > MAX_FIELD_BYTES:
        raise error(f"scope field of {len(field)} bytes (max {MAX_FIELD_BYTES})")
    if payload_len > MAX_PAYLOAD_BYTES:
        raise error(f"payload of {payload_len} bytes exceeds {MAX_PAYLOAD_BYTES}")


def decode_entry(data: bytes | memoryview) -> Entry:
    """The entry encoded in exactly ``data``."""
    view = memoryview(data)
    if len(view) < _ENTRY_HEAD.size:
        raise DecodeError(f"entry of {len(view)} bytes is shorter than its header")
    (clock, author, seq, base_a, base_s, ent, comp, klen, flen, plen) = _ENTRY_HEAD.unpack_from(
        view
    )
    end = _ENTRY_HEAD.size + klen + flen + plen
    if end != len(view):
        raise DecodeError(f"entry lengths add to {end} bytes, buffer has {len(view)}")
    pos = _ENTRY_HEAD.size
    kind_b = bytes(view[pos : pos + klen])
    field_b = bytes(view[pos + klen : pos + klen + flen])
    _check_entry_limits(clock, author, seq, kind_b, field_b, plen)
    if (base_a == 0) != (base_s == 0):
        raise DecodeError("entry base must be both zero or both non-zero")
    try:
        kind = kind_b.decode("utf-8")
        field = field_b.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"entry text is not UTF-8: {exc}") from None
    payload = bytes(view[pos + klen + flen : end])
    base = EntryId(base_a, base_s)
    return Entry(clock, author, seq, kind, Scope(ent, comp, field), payload, base)


# --- signed batches ----------------------------------------------------------------------------
_BATCH_MAGIC = b"TB"
# magic, version, flags, author, entry count
_BATCH_HEAD = struct.Struct("<2sBBQH")
_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class SignedBatch:
    """Consecutive entries of one author and the signature over :meth:`signed_bytes`."""

    author: int
    entries: tuple[Entry, ...]
    signature: bytes
    raw: bytes  # the exact encoding (what was signed plus the signature)

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:-SIGNATURE_BYTES]


def encode_batch_body(author: int, entries: tuple[Entry, ...]) -> bytes:
    """The bytes a batch's signature covers."""
    if not 1 <= len(entries) <= MAX_BATCH_ENTRIES:
        raise CommandPayloadError(
            f"a batch holds 1..{MAX_BATCH_ENTRIES} entries, not {len(entries)}"
        )
    parts = [_BATCH_HEAD.pack(_BATCH_MAGIC, ENTRY_VERSION, 0, author, len(entries))]
    for i, entry in enumerate(entries):
        if entry.author != author:
            raise CommandPayloadError("every entry of a batch must have the batch's author")
        if i and entry.seq <= entries[i - 1].seq:
            raise CommandPayloadError("a batch holds its entries in increasing seq order")
        body = entry.encode()
        parts.append(_LEN.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


def decode_batch(data: bytes | memoryview) -> SignedBatch:
    """A batch (signature not yet checked: see :mod:`.signing`)."""
    view = memoryview(data)
    if len(view) < _BATCH_HEAD.size + SIGNATURE_BYTES:
        raise DecodeError(f"batch of {len(view)} bytes is too short")
    magic, version, flags, author, count = _BATCH_HEAD.unpack_from(view)
    if magic != _BATCH_MAGIC:
        raise DecodeError(f"not a command batch (magic {bytes(magic)!r})")
    if version != ENTRY_VERSION:
        raise DecodeError(f"unsupported batch version {version}")
    if flags != 0:
        raise DecodeError(f"unknown batch flags {flags:#x}")
    if not 1 <= count <= MAX_BATCH_ENTRIES:
        raise DecodeError(f"batch claims {count} entries (1..{MAX_BATCH_ENTRIES})")
    end = len(view) - SIGNATURE_BYTES
    pos = _BATCH_HEAD.size
    entries: list[Entry] = []
    for _ in range(count):
        if pos + _LEN.size > end:
            raise DecodeError("batch truncated inside an entry length")
        (n,) = _LEN.unpack_from(view, pos)
        pos += _LEN.size
        if pos + n > end:
            raise DecodeError("batch truncated inside an entry")
        entry = decode_entry(view[pos : pos + n])
        if entry.author != author:
            raise DecodeError("entry author differs from its batch's author")
        if entries and entry.seq <= entries[-1].seq:
            # Two entries under one (author, seq) in one batch: peers that integrate the batch
            # at once and peers that release it from the pending buffer would keep different
            # ones. An honest batch holds its author's entries in issue order.
            raise DecodeError(
                f"batch entry seq {entry.seq} does not follow {entries[-1].seq}"
            )
        entries.append(entry)
        pos += n
    if pos != end:
        raise DecodeError(f"{end - pos} stray bytes after the batch's entries")
    raw = bytes(view)
    return SignedBatch(author, tuple(entries), raw[end:], raw)


# --- packets -----------------------------------------------------------------------------------
class PacketType(IntEnum):
    BATCHES = 1  # signed batches to integrate
    SYNC = 2  # a version vector: "send me what I lack"
    SYNC_ANSWER = 3  # signed batches sent in answer to a SYNC (duplicates there are expected)
    CHECKPOINT = 4  # one signed checkpoint (see :mod:`.checkpoint`); may exceed a batch packet


_PACKET_MAGIC = b"TP"
# magic, version, type, item count
_PACKET_HEAD = struct.Struct("<2sBBH")
_SYNC_ITEM = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    batches: tuple[bytes, ...] = ()
    #: for SYNC: author -> highest seq below which the sender holds every entry
    floors: tuple[tuple[int, int], ...] = ()


def encode_batches_packet(
    batches: list[bytes] | tuple[bytes, ...], *, answer: bool = False
) -> bytes:
    if len(batches) > MAX_PACKET_ITEMS:
        raise CommandPayloadError(f"a packet holds at most {MAX_PACKET_ITEMS} batches")
    ptype = PacketType.SYNC_ANSWER if answer else PacketType.BATCHES
    parts = [_PACKET_HEAD.pack(_PACKET_MAGIC, ENTRY_VERSION, ptype, len(batches))]
    for raw in batches:
        parts.append(_LEN.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_checkpoint_packet(raw: bytes) -> bytes:
    head = _PACKET_HEAD.pack(_PACKET_MAGIC, ENTRY_VERSION, PacketType.CHECKPOINT, 1)
    return b"".join((head, _LEN.pack(len(raw)), raw))


def packet_type(data: bytes | memoryview) -> int:
    """The type byte of a packet (0 when too short to have one); for limits before decoding."""
    return data[3] if len(data) >= _PACKET_HEAD.size else 0


def encode_sync_packet(floors: dict[int, int]) -> bytes:
    items = sorted(floors.items())[:MAX_PACKET_ITEMS]
    parts = [_PACKET_HEAD.pack(_PACKET_MAGIC, ENTRY_VERSION, PacketType.SYNC, len(items))]
    parts.extend(_SYNC_ITEM.pack(a, s) for a, s in items)
    return b"".join(parts)


def decode_packet(data: bytes | memoryview) -> Packet:
    """A packet's items; batches stay undecoded bytes (each is decoded and verified apart)."""
    view = memoryview(data)
    if len(view) < _PACKET_HEAD.size:
        raise DecodeError(f"packet of {len(view)} bytes is too short")
    magic, version, ptype, count = _PACKET_HEAD.unpack_from(view)
    if magic != _PACKET_MAGIC:
        raise DecodeError(f"not a command packet (magic {bytes(magic)!r})")
    if version != ENTRY_VERSION:
        raise DecodeError(f"unsupported packet version {version}")
    if count > MAX_PACKET_ITEMS:
        raise DecodeError(f"packet claims {count} items (max {MAX_PACKET_ITEMS})")
    pos = _PACKET_HEAD.size
    if ptype == PacketType.SYNC:
        if len(view) != pos + count * _SYNC_ITEM.size:
            raise DecodeError("sync packet length does not match its item count")
        floors = tuple(
            _SYNC_ITEM.unpack_from(view, pos + i * _SYNC_ITEM.size) for i in range(count)
        )
        return Packet(PacketType.SYNC, floors=floors)
    if ptype not in (PacketType.BATCHES, PacketType.SYNC_ANSWER, PacketType.CHECKPOINT):
        raise DecodeError(f"unknown packet type {ptype}")
    if ptype == PacketType.CHECKPOINT and count != 1:
        raise DecodeError(f"a checkpoint packet holds one checkpoint, not {count}")
    batches = []
    for _ in range(count):
        if pos + _LEN.size > len(view):
            raise DecodeError("packet truncated inside a batch length")
        (n,) = _LEN.unpack_from(view, pos)
        pos += _LEN.size
        if pos + n > len(view):
            raise DecodeError("packet truncated inside a batch")
        batches.append(bytes(view[pos : pos + n]))
        pos += n
    if pos != len(view):
        raise DecodeError(f"{len(view) - pos} stray bytes after the packet's batches")
    return Packet(PacketType(ptype), batches=tuple(batches))
