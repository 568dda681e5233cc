"""The state pipeline end to end: snapshot body, optional zstd, packet framing, schema check."""

from __future__ import annotations

from .compression import NO_DICTIONARY, DictionaryRegistry
from .errors import DecodeError, SchemaMismatchError
from .packet import StatePacket, decode_packet, encode_packet
from .schema import ReplicationSchema
from .snapshot import Snapshot, decode_body, encode_body, max_body_bytes

#: Entities a decoded state may hold unless the codec is told otherwise: it bounds how far a
#: compressed body may inflate (see :func:`~.snapshot.max_body_bytes`).
DEFAULT_MAX_ENTITIES = 1 << 16


class StateCodec:
    """Encodes snapshots into state packets and back, for one schema.

    ``max_entities`` is the most entities a decoded state may hold: a compressed body inflating
    beyond what such a state can need is refused (:class:`BodyTooLargeError`) before decoding.
    """

    def __init__(
        self,
        schema: ReplicationSchema,
        dictionaries: DictionaryRegistry | None = None,
        *,
        max_entities: int = DEFAULT_MAX_ENTITIES,
    ) -> None:
        self.schema = schema
        self.dictionaries = dictionaries if dictionaries is not None else DictionaryRegistry()
        self.max_entities = max_entities

    def encode(
        self,
        state: Snapshot,
        sequence: int,
        base: Snapshot | None = None,
        base_sequence: int | None = None,
        *,
        compress: bool = False,
        dictionary_id: int = NO_DICTIONARY,
    ) -> bytes:
        """One packet; compressed only when that makes it smaller."""
        if (base is None) != (base_sequence is None):
            raise ValueError("base and base_sequence go together")
        age = None if base_sequence is None else sequence - base_sequence
        body = encode_body(self.schema, state, base, age)
        packed = False
        if compress and body:
            squeezed = self.dictionaries.compress(body, dictionary_id)
            if len(squeezed) + 1 < len(body):
                body, packed = squeezed, True
        return encode_packet(
            StatePacket(
                sequence, base_sequence, self.schema.wire_hash, body, packed,
                dictionary_id if packed else NO_DICTIONARY,
            )
        )

    def check(self, pkt: StatePacket) -> None:
        if pkt.schema_hash != self.schema.wire_hash:
            raise SchemaMismatchError(self.schema.wire_hash, pkt.schema_hash, bits=32)

    def body(self, pkt: StatePacket, base: Snapshot | None = None) -> bytes:
        """The packet's body, decompressed (raises UnknownDictionaryError / DecodeError, and
        BodyTooLargeError beyond what a state of ``max_entities`` on ``base`` can need)."""
        if not pkt.compressed:
            return pkt.body
        limit = max_body_bytes(self.schema, len(base) if base is not None else 0, self.max_entities)
        return self.dictionaries.decompress(pkt.body, pkt.dictionary_id, limit)

    def decode(self, pkt: StatePacket, base: Snapshot | None = None) -> Snapshot:
        self.check(pkt)
        if (pkt.baseline is None) != (base is None):
            raise DecodeError("baseline presence disagrees with the packet")
        age = None if pkt.baseline is None else pkt.sequence - pkt.baseline
        return decode_body(
            self.schema, self.body(pkt, base), base, tick=pkt.sequence, age=age
        )

    def decode_bytes(self, data: bytes, base: Snapshot | None = None) -> Snapshot:
        pkt = decode_packet(data)
        if not isinstance(pkt, StatePacket):
            raise DecodeError("not a state packet")
        return self.decode(pkt, base)
