"""zstd compression of packet bodies, with dictionaries trained from recorded packets.

Packets are small (a few hundred bytes), so a plain zstd frame would spend much of its gain on
its own header and find little repetition inside one packet. We therefore use magicless frames
without content size, checksum or dictionary id (the packet header carries the dictionary id)
and dictionaries trained on real traffic, which supply the repetition across packets.

Dictionary file format (``theta dict train`` writes it): the raw zstd dictionary bytes. Its id is
the one zstd stores in a trained dictionary (or a CRC-32 for raw-content dictionaries).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import zstandard

from .errors import BodyTooLargeError, DecodeError, UnknownDictionaryError

#: Dictionary id 0 means "compressed without a dictionary".
NO_DICTIONARY = 0
#: Decompressed bodies larger than this are refused (a decompression bomb is hostile input).
MAX_BODY_BYTES = 64 << 20
DEFAULT_LEVEL = 3
#: Largest zstd window a packet may ask the decoder for.
MAX_WINDOW = 1 << 23


def dictionary_id(data: bytes) -> int:
    """The id a dictionary travels under (never 0)."""
    did = zstandard.ZstdCompressionDict(data).dict_id()
    if not did:
        did = zlib.crc32(data) or 1
    return int(did) & 0xFFFFFFFF


def train_dictionary(
    samples: Iterable[bytes], size: int = 8192, level: int = DEFAULT_LEVEL
) -> bytes:
    """Train a zstd dictionary of at most ``size`` bytes on packet bodies."""
    data: list[bytes | bytearray | memoryview] = [bytes(s) for s in samples if s]
    if len(data) < 8:
        raise ValueError(f"need at least 8 non-empty samples to train, not {len(data)}")
    trained = zstandard.train_dictionary(size, data, level=level)
    return bytes(trained.as_bytes())


class DictionaryRegistry:
    """Dictionaries by id; compressors and decompressors cached per dictionary."""

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        self.level = level
        self._dicts: dict[int, zstandard.ZstdCompressionDict] = {}
        self._compressors: dict[int, zstandard.ZstdCompressor] = {}
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def add(self, data: bytes) -> int:
        """Register a dictionary; returns its id."""
        did = dictionary_id(data)
        self._dicts[did] = zstandard.ZstdCompressionDict(data)
        self._compressors.pop(did, None)
        self._decompressors.pop(did, None)
        return did

    def load(self, path: str | Path) -> int:
        return self.add(Path(path).read_bytes())

    def __contains__(self, did: object) -> bool:
        return did == NO_DICTIONARY or did in self._dicts

    def ids(self) -> list[int]:
        return sorted(self._dicts)

    def _params(self) -> zstandard.ZstdCompressionParameters:
        return zstandard.ZstdCompressionParameters.from_level(
            self.level,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_content_size=False,
            write_checksum=False,
            write_dict_id=False,
        )

    def compressor(self, did: int) -> zstandard.ZstdCompressor:
        c = self._compressors.get(did)
        if c is None:
            if did == NO_DICTIONARY:
                c = zstandard.ZstdCompressor(compression_params=self._params())
            else:
                c = zstandard.ZstdCompressor(
                    dict_data=self._dict(did), compression_params=self._params()
                )
            self._compressors[did] = c
        return c

    def decompressor(self, did: int) -> zstandard.ZstdDecompressor:
        d = self._decompressors.get(did)
        if d is None:
            if did == NO_DICTIONARY:
                d = zstandard.ZstdDecompressor(
                    format=zstandard.FORMAT_ZSTD1_MAGICLESS, max_window_size=MAX_WINDOW
                )
            else:
                d = zstandard.ZstdDecompressor(
                    dict_data=self._dict(did),
                    format=zstandard.FORMAT_ZSTD1_MAGICLESS,
                    max_window_size=MAX_WINDOW,
                )
            self._decompressors[did] = d
        return d

    def _dict(self, did: int) -> zstandard.ZstdCompressionDict:
        try:
            return self._dicts[did]
        except KeyError:
            raise UnknownDictionaryError(f"no zstd dictionary with id {did:#010x}") from None

    def compress(self, body: bytes, did: int = NO_DICTIONARY) -> bytes:
        return bytes(self.compressor(did).compress(body))

    def decompress(
        self, data: bytes, did: int = NO_DICTIONARY, limit: int = MAX_BODY_BYTES
    ) -> bytes:
        """Inverse of :meth:`compress`; unknown dictionaries and corrupt frames raise ours.

        Inflates at most ``limit`` bytes: a body that would grow beyond raises
        :class:`BodyTooLargeError` (a decompression bomb), so pass the least the caller can
        need (zstd allocates the whole limit up front, and a bomb costs work up to it).
        """
        dec = self.decompressor(did)
        try:
            return bytes(dec.decompress(data, max_output_size=limit))
        except (zstandard.ZstdError, MemoryError) as exc:
            # A forged frame header can ask for a huge window: that is hostile input too.
            error = exc
        # Failed: a corrupt frame, or one inflating beyond the limit (zstd says the same for
        # both). A capped streaming read tells them apart, stopping at the limit.
        try:
            with dec.stream_reader(data) as reader:
                inflated = len(reader.read(limit + 1))
        except (zstandard.ZstdError, MemoryError):
            inflated = 0
        if inflated > limit:
            raise BodyTooLargeError(limit)
        raise DecodeError(f"corrupt zstd body: {error!r}") from None


# -- packet recordings (the input of `theta dict train`) ---------------------------------------
_REC_MAGIC = b"THREC1\n"


def write_recording(path: str | Path, bodies: Iterable[bytes]) -> int:
    """Store packet bodies length-prefixed; returns how many were written."""
    n = 0
    with open(path, "wb") as f:
        f.write(_REC_MAGIC)
        for b in bodies:
            f.write(struct.pack("<I", len(b)))
            f.write(b)
            n += 1
    return n


def read_recording(path: str | Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    if not data.startswith(_REC_MAGIC):
        raise DecodeError(f"{path}: not a packet recording")
    pos = len(_REC_MAGIC)
    while pos < len(data):
        if pos + 4 > len(data):
            raise DecodeError(f"{path}: truncated recording")
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + n > len(data):
            raise DecodeError(f"{path}: truncated recording")
        yield data[pos : pos + n]
        pos += n
