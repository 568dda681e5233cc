"""Packet framing for replication: a two-byte tag, LEB128 varints, then the kind's fields.

Kept apart from the FlatBuffers session envelope on purpose: at 60 packets a second every header
byte costs ~0.5 kbit/s, so state packets carry only sequence, baseline distance, dictionary id
and a 32-bit schema hash. ``decode_packet`` checks every field and raises :class:`DecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import DecodeError, EncodeError

MAGIC = 0xB7
VERSION = 1

KIND_STATE = 1
KIND_CHUNK = 2
KIND_ACK = 3
KIND_CHUNK_REQUEST = 4
KIND_RESYNC_REQUEST = 5

FLAG_COMPRESSED = 0x1

#: A chunk request names at most this many missing chunks (the rest are asked for next time).
MAX_REQUESTED_CHUNKS = 256
MAX_SEQUENCE = (1 << 32) - 1


def write_varint(out: bytearray, value: int) -> None:
    if value < 0 or value > MAX_SEQUENCE:
        raise EncodeError(f"varint {value} outside 0..2^32-1")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(5):
        if pos >= len(data):
            raise DecodeError("packet truncated inside a varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > MAX_SEQUENCE:
                raise DecodeError("varint above 2^32-1")
            return value, pos
    raise DecodeError("varint longer than five bytes")


@dataclass(frozen=True)
class StatePacket:
    """A full snapshot (``baseline`` None) or a delta against sequence ``baseline``."""

    sequence: int
    baseline: int | None
    schema_hash: int  # low 32 bits of the schema hash
    body: bytes
    compressed: bool = False
    dictionary_id: int = 0


@dataclass(frozen=True)
class ChunkPacket:
    """Chunk ``index`` of ``count`` of the encoded packet with sequence ``sequence``."""

    sequence: int
    index: int
    count: int
    checksum: int  # CRC-32 of the whole message
    payload: bytes


@dataclass(frozen=True)
class AckPacket:
    """``latest`` received, plus bit i of ``mask`` for ``latest - 1 - i`` (i < 32)."""

    latest: int
    mask: int

    def sequences(self) -> list[int]:
        out = [self.latest]
        out.extend(self.latest - 1 - i for i in range(32) if self.mask >> i & 1 and self.latest > i)
        return out


@dataclass(frozen=True)
class ChunkRequest:
    """The receiver is missing these chunks of message ``sequence``."""

    sequence: int
    missing: tuple[int, ...]


@dataclass(frozen=True)
class ResyncRequest:
    """The receiver cannot decode packet ``sequence``: it lacks that delta's ``baseline`` (an
    ack the sender believed was for a state the receiver never got). The sender answers with a
    full state."""

    sequence: int
    baseline: int


Packet = StatePacket | ChunkPacket | AckPacket | ChunkRequest | ResyncRequest


def encode_packet(pkt: Packet) -> bytes:
    out = bytearray((MAGIC,))
    if isinstance(pkt, StatePacket):
        out.append(KIND_STATE | (VERSION << 5) | ((FLAG_COMPRESSED if pkt.compressed else 0) << 3))
        write_varint(out, pkt.sequence)
        dist = 0 if pkt.baseline is None else pkt.sequence - pkt.baseline
        if pkt.baseline is not None and dist <= 0:
            raise EncodeError("a baseline must be older than the packet")
        write_varint(out, dist)
        if pkt.compressed:
            write_varint(out, pkt.dictionary_id)
        out += struct.pack("<I", pkt.schema_hash & 0xFFFFFFFF)
        out += pkt.body
    elif isinstance(pkt, ChunkPacket):
        out.append(KIND_CHUNK | (VERSION << 5))
        write_varint(out, pkt.sequence)
        write_varint(out, pkt.index)
        write_varint(out, pkt.count)
        out += struct.pack("<I", pkt.checksum & 0xFFFFFFFF)
        out += pkt.payload
    elif isinstance(pkt, AckPacket):
        out.append(KIND_ACK | (VERSION << 5))
        write_varint(out, pkt.latest)
        out += struct.pack("<I", pkt.mask & 0xFFFFFFFF)
    elif isinstance(pkt, ChunkRequest):
        out.append(KIND_CHUNK_REQUEST | (VERSION << 5))
        write_varint(out, pkt.sequence)
        missing = sorted(set(pkt.missing))[:MAX_REQUESTED_CHUNKS]
        write_varint(out, len(missing))
        prev = -1
        for m in missing:
            write_varint(out, m - prev - 1)
            prev = m
    elif isinstance(pkt, ResyncRequest):
        out.append(KIND_RESYNC_REQUEST | (VERSION << 5))
        write_varint(out, pkt.sequence)
        if not 0 <= pkt.baseline < pkt.sequence:
            raise EncodeError("a resync request's baseline must be older than its packet")
        write_varint(out, pkt.sequence - pkt.baseline)
    else:  # pragma: no cover - the union is closed
        raise EncodeError(f"not a packet: {pkt!r}")
    return bytes(out)


def decode_packet(data: bytes) -> Packet:
    """Parse one datagram; anything malformed raises DecodeError."""
    if len(data) < 2:
        raise DecodeError("packet shorter than its tag")
    if data[0] != MAGIC:
        raise DecodeError(f"bad magic byte {data[0]:#04x}")
    tag = data[1]
    kind, flags, version = tag & 0x7, (tag >> 3) & 0x3, tag >> 5
    if version != VERSION:
        raise DecodeError(f"unsupported packet version {version}")
    pos = 2
    if kind == KIND_STATE:
        if flags & ~FLAG_COMPRESSED:
            raise DecodeError("unknown state flags")
        seq, pos = read_varint(data, pos)
        dist, pos = read_varint(data, pos)
        if dist > seq:
            raise DecodeError("baseline before the first sequence")
        compressed = bool(flags & FLAG_COMPRESSED)
        dict_id = 0
        if compressed:
            dict_id, pos = read_varint(data, pos)
        if pos + 4 > len(data):
            raise DecodeError("packet truncated in the schema hash")
        (schema_hash,) = struct.unpack_from("<I", data, pos)
        return StatePacket(
            seq, None if dist == 0 else seq - dist, schema_hash, bytes(data[pos + 4 :]),
            compressed, dict_id,
        )
    if flags:
        raise DecodeError("flags on a packet kind that has none")
    if kind == KIND_CHUNK:
        seq, pos = read_varint(data, pos)
        index, pos = read_varint(data, pos)
        count, pos = read_varint(data, pos)
        if count == 0 or index >= count:
            raise DecodeError(f"chunk {index} of {count}")
        if pos + 4 > len(data):
            raise DecodeError("packet truncated in the chunk checksum")
        (crc,) = struct.unpack_from("<I", data, pos)
        return ChunkPacket(seq, index, count, crc, bytes(data[pos + 4 :]))
    if kind == KIND_ACK:
        latest, pos = read_varint(data, pos)
        if pos + 4 != len(data):
            raise DecodeError("ack of the wrong length")
        (mask,) = struct.unpack_from("<I", data, pos)
        return AckPacket(latest, mask)
    if kind == KIND_CHUNK_REQUEST:
        seq, pos = read_varint(data, pos)
        n, pos = read_varint(data, pos)
        if n > MAX_REQUESTED_CHUNKS:
            raise DecodeError(f"chunk request for {n} chunks")
        missing = []
        prev = -1
        for _ in range(n):
            gap, pos = read_varint(data, pos)
            prev = prev + gap + 1
            if prev > MAX_SEQUENCE:
                raise DecodeError("chunk index out of range")
            missing.append(prev)
        if pos != len(data):
            raise DecodeError("trailing bytes after a chunk request")
        return ChunkRequest(seq, tuple(missing))
    if kind == KIND_RESYNC_REQUEST:
        seq, pos = read_varint(data, pos)
        dist, pos = read_varint(data, pos)
        if not 0 < dist <= seq:
            raise DecodeError("resync request's baseline is not before its packet")
        if pos != len(data):
            raise DecodeError("trailing bytes after a resync request")
        return ResyncRequest(seq, seq - dist)
    raise DecodeError(f"unknown packet kind {kind}")
