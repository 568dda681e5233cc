"""Carrying replication packets in the FlatBuffers session envelope (``schemas/network.fbs``).

The replicator speaks compact packets (see :mod:`theta_ecs.serialization.packet`); a session
that frames everything as envelopes maps them one to one: a state packet becomes a
``ComponentDelta`` (header: sequence = the snapshot's tick, compression, dictionary id, full
64-bit schema hash; body: the baseline as a distance back from the sequence, and the payload), a
chunk a ``SnapshotChunk``, an ack an ``Ack``. Timestamps are seconds on the sender's clock, sent
as wrapping 32-bit microseconds. Unwrapping checks the schema hash and rebuilds the
compact packet, so the replicator and receiver are unchanged. The envelope has no body for a
chunk re-request or a resync request, so :func:`wrap` returns None for those (the session sends
them as they are: compact packets start with the magic byte 0xB7, envelopes carry "THNW").
"""

from __future__ import annotations

from ..errors import DecodeError
from ..serialization.packet import (
    AckPacket,
    ChunkPacket,
    ChunkRequest,
    ResyncRequest,
    StatePacket,
    decode_packet,
    encode_packet,
)
from ..serialization.schema import ReplicationSchema
from ..wire import envelope as wire


def wrap(packet: bytes, schema: ReplicationSchema, timestamp: float = 0.0) -> bytes | None:
    """The envelope bytes for one compact packet (None for a chunk or resync request, which
    travel as they are); ``timestamp`` is the sender's clock in seconds."""
    pkt = decode_packet(packet)
    stamp = wire.timestamp_us(timestamp)
    if isinstance(pkt, StatePacket):
        if not pkt.compressed:
            comp = wire.Compression.NONE
        elif pkt.dictionary_id:
            comp = wire.Compression.ZSTD_DICTIONARY
        else:
            comp = wire.Compression.ZSTD
        header = wire.Header(pkt.sequence, stamp, comp, pkt.dictionary_id, schema.hash)
        body: wire.Body = wire.ComponentDelta.against(pkt.sequence, pkt.baseline, pkt.body)
    elif isinstance(pkt, ChunkPacket):
        header = wire.Header(pkt.sequence, stamp, schema_hash=schema.hash)
        body = wire.SnapshotChunk(pkt.sequence, pkt.index, pkt.count, pkt.checksum, pkt.payload)
    elif isinstance(pkt, AckPacket):
        header = wire.Header(pkt.latest, stamp, schema_hash=schema.hash)
        body = wire.Ack(pkt.latest, pkt.mask)
    else:
        assert isinstance(pkt, (ChunkRequest, ResyncRequest))
        return None
    return wire.encode_envelope(wire.Envelope(header, body))


def unwrap(data: bytes, schema: ReplicationSchema) -> bytes:
    """The compact packet inside an envelope; DecodeError for anything that is not one of ours,
    SchemaMismatchError for another schema."""
    # A malformed envelope is already a DecodeError, a mismatch the one SchemaMismatchError.
    env = wire.decode_envelope(data, expected_schema_hash=schema.hash)
    h, body = env.header, env.body
    if isinstance(body, wire.ComponentDelta):
        # The compact framing's baselines never wrap: a distance reaching back past sequence 0
        # is not one of ours.
        if body.baseline_distance > h.sequence:
            raise DecodeError("component delta's baseline precedes the first sequence")
        compressed = h.compression is not wire.Compression.NONE
        return encode_packet(
            StatePacket(h.sequence, body.baseline(h.sequence), schema.wire_hash, body.payload,
                        compressed, h.dictionary_id)
        )
    if isinstance(body, wire.SnapshotChunk):
        return encode_packet(
            ChunkPacket(body.snapshot_id, body.index, body.count, body.checksum, body.data)
        )
    if isinstance(body, wire.Ack):
        if body.ack_bits >> 32:
            raise DecodeError("ack bits beyond the 32 the replicator tracks")
        return encode_packet(AckPacket(body.ack_sequence, body.ack_bits))
    raise DecodeError(f"{type(body).__name__} is not a replication body")
