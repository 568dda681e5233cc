"""Errors of the serialization layer: every malformed, hostile or mismatched packet maps to one."""

from __future__ import annotations

from ..errors import DecodeError, SchemaMismatchError, ThetaError

# DecodeError and SchemaMismatchError are the core's (theta_ecs.errors): one class per failure
# across serialization, the wire envelope and the command log. Re-exported here for old imports.
__all__ = [
    "BodyTooLargeError",
    "ChunkError",
    "DecodeError",
    "EncodeError",
    "SchemaMismatchError",
    "SerializationError",
    "UnknownDictionaryError",
]


class SerializationError(ThetaError):
    """Base of the errors only the serialization layer raises (encoding, dictionaries, chunks)."""


class UnknownDictionaryError(SerializationError, DecodeError, KeyError):
    """A compressed packet names a zstd dictionary this side does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown dictionary"


class ChunkError(SerializationError, DecodeError):
    """A chunk that cannot belong to a valid message (bad index, count or checksum)."""


class EncodeError(SerializationError, ValueError):
    """State that cannot be encoded (e.g. a value that does not fit its declared encoding)."""


class BodyTooLargeError(SerializationError, DecodeError):
    """A compressed body inflating beyond what the schema can need (a decompression bomb)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"compressed body inflates beyond the {limit}-byte limit")
        self.limit = limit
