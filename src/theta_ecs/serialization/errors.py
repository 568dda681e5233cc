"""Errors of the serialization layer: every malformed, hostile or mismatched packet maps to one."""

from __future__ import annotations

from ..errors import ThetaError


class SerializationError(ThetaError):
    """Base of every error raised while encoding or decoding replication data."""


class DecodeError(SerializationError, ValueError):
    """Bytes that are not a valid packet: truncated, malformed, out of range or hostile."""


class SchemaMismatchError(SerializationError):
    """A packet built for another component schema (its schema hash differs from ours)."""


class UnknownDictionaryError(DecodeError, KeyError):
    """A compressed packet names a zstd dictionary this side does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown dictionary"


class ChunkError(DecodeError):
    """A chunk that cannot belong to a valid message (bad index, count or checksum)."""


class EncodeError(SerializationError, ValueError):
    """State that cannot be encoded (e.g. a value that does not fit its declared encoding)."""
