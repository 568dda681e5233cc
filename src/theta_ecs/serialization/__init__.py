"""Snapshot and delta serialization: quantization, bit-packing, zstd dictionaries, chunking.

Sans-I/O throughout: snapshots in, bytes out, and back. See :mod:`.snapshot` for the body
layout and :mod:`.packet` for the framing.
"""

from .chunking import DEFAULT_BUDGET, ChunkDrops, Reassembler, split
from .codec import DEFAULT_MAX_ENTITIES, StateCodec
from .compression import DictionaryRegistry, train_dictionary
from .errors import (
    BodyTooLargeError,
    ChunkError,
    DecodeError,
    EncodeError,
    SchemaMismatchError,
    SerializationError,
    UnknownDictionaryError,
)
from .schema import ComponentCodec, Prediction, ReplicationSchema, schema_hash
from .snapshot import Snapshot, capture, decode_body, diff, encode_body, max_body_bytes

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_ENTITIES",
    "BodyTooLargeError",
    "ChunkDrops",
    "ChunkError",
    "ComponentCodec",
    "DecodeError",
    "DictionaryRegistry",
    "EncodeError",
    "Prediction",
    "Reassembler",
    "ReplicationSchema",
    "SchemaMismatchError",
    "SerializationError",
    "Snapshot",
    "StateCodec",
    "UnknownDictionaryError",
    "capture",
    "decode_body",
    "diff",
    "encode_body",
    "max_body_bytes",
    "schema_hash",
    "split",
    "train_dictionary",
]
