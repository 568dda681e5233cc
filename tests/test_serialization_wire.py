"""Packet framing, zstd dictionaries and chunking: round trips and hostile input."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.errors import ThetaError
from theta_ecs.serialization import DictionaryRegistry, Reassembler, split, train_dictionary
from theta_ecs.serialization.compression import read_recording, write_recording
from theta_ecs.serialization.errors import ChunkError, DecodeError, UnknownDictionaryError
from theta_ecs.serialization.packet import (
    AckPacket,
    ChunkPacket,
    ChunkRequest,
    ResyncRequest,
    StatePacket,
    decode_packet,
    encode_packet,
)

PACKETS = [
    StatePacket(1, None, 0xDEADBEEF, b"body"),
    StatePacket(70000, 69990, 7, b"\x00" * 40, True, 12345),
    ChunkPacket(9, 3, 10, 0x1234, b"payload"),
    AckPacket(500, 0b1011),
    ChunkRequest(42, (0, 5, 6, 300)),
    ResyncRequest(9000, 8990),
]


@pytest.mark.parametrize("pkt", PACKETS)
def test_packets_round_trip(pkt: object) -> None:
    assert decode_packet(encode_packet(pkt)) == pkt  # type: ignore[arg-type]


def test_ack_lists_the_sequences_it_covers() -> None:
    assert AckPacket(10, 0b101).sequences() == [10, 9, 7]


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_hostile_packets_raise_decode_error(data: bytes) -> None:
    try:
        decode_packet(data)
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)


@settings(max_examples=400)
@given(st.sampled_from(range(1, 8)), st.binary(max_size=40))
def test_hostile_bodies_of_every_kind_raise_decode_error(kind: int, body: bytes) -> None:
    """Random bytes behind a valid magic and tag, so every kind's parser is reached."""
    data = bytes((0xB7, kind | (1 << 5))) + body
    try:
        pkt = decode_packet(data)
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)
        return
    assert decode_packet(encode_packet(pkt)) == pkt


@settings(max_examples=400)
@given(st.sampled_from(PACKETS), st.data())
def test_mutated_packets_decode_to_a_packet_or_raise(pkt: object, data: st.DataObject) -> None:
    raw = bytearray(encode_packet(pkt))  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        got = decode_packet(bytes(raw))
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)
        return
    assert decode_packet(encode_packet(got)) == got


def test_resync_requests_refuse_impossible_baselines() -> None:
    with pytest.raises(DecodeError, match="baseline"):
        decode_packet(bytes((0xB7, 5 | (1 << 5), 3, 4)))  # baseline 4 back from sequence 3
    with pytest.raises(DecodeError, match="baseline"):
        decode_packet(bytes((0xB7, 5 | (1 << 5), 3, 0)))  # its own baseline
    with pytest.raises(DecodeError, match="trailing"):
        decode_packet(encode_packet(ResyncRequest(9, 2)) + b"\x00")


@given(st.sampled_from(PACKETS), st.data())
def test_truncated_packets_raise(pkt: object, data: st.DataObject) -> None:
    raw = encode_packet(pkt)  # type: ignore[arg-type]
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        decode_packet(raw[:cut])
    except DecodeError:
        return
    # Only the variable-length tails (body, payload) may be cut and still parse.
    assert isinstance(pkt, StatePacket | ChunkPacket)


def _samples() -> list[bytes]:
    rng = random.Random(3)
    return [bytes([1, 2, 3, rng.randrange(4)] * 8 + [rng.randrange(256) for _ in range(8)])
            for _ in range(400)]


def test_trained_dictionary_compresses_and_round_trips(tmp_path: Path) -> None:
    samples = _samples()
    dict_bytes = train_dictionary(samples, size=1024)
    reg = DictionaryRegistry()
    did = reg.add(dict_bytes)
    assert did != 0 and did in reg
    plain = DictionaryRegistry()
    body = samples[7]
    with_dict = reg.compress(body, did)
    assert len(with_dict) < len(plain.compress(body))
    assert reg.decompress(with_dict, did) == body
    path = tmp_path / "d.zdict"
    path.write_bytes(dict_bytes)
    other = DictionaryRegistry()
    assert other.load(path) == did
    assert other.decompress(with_dict, did) == body


def test_unknown_dictionary_is_a_clear_error() -> None:
    reg = DictionaryRegistry()
    with pytest.raises(UnknownDictionaryError, match="0x0000beef"):
        reg.decompress(b"\x00\x01", 0xBEEF)


@given(st.binary(max_size=100))
def test_corrupt_zstd_bodies_raise_decode_error(data: bytes) -> None:
    try:
        DictionaryRegistry().decompress(data, limit=1 << 16)
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)


def test_recording_round_trip(tmp_path: Path) -> None:
    bodies = _samples()[:20]
    path = tmp_path / "rec.bin"
    assert write_recording(path, bodies) == 20
    assert list(read_recording(path)) == bodies
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DecodeError):
        list(read_recording(path))


def test_chunks_reassemble_in_any_order_with_duplicates() -> None:
    rng = random.Random(5)
    message = bytes(rng.randrange(256) for _ in range(50_000))
    chunks = split(message, 77, budget=1200)
    assert len(chunks) > 40 and all(len(c) <= 1200 for c in chunks)
    shuffled = chunks + chunks[:10]
    rng.shuffle(shuffled)
    r = Reassembler()
    done = [m for c in shuffled if (m := r.add(decode_packet(c))) is not None]  # type: ignore[arg-type]
    assert done == [message]
    assert r.duplicates == 10


def test_missing_chunks_are_requested_until_they_arrive() -> None:
    message = bytes(range(256)) * 40
    chunks = [decode_packet(c) for c in split(message, 3, budget=300)]
    r = Reassembler(request_after=0.05, request_interval=0.1)
    lost = {2, 5}
    for i, c in enumerate(chunks):
        if i not in lost:
            assert r.add(c, now=0.0) is None  # type: ignore[arg-type]
    assert r.requests(0.01) == []  # not quiet for long enough yet
    (req,) = r.requests(0.06)
    assert req == ChunkRequest(3, (2, 5))
    assert decode_packet(encode_packet(req)) == req
    assert r.requests(0.1) == []  # asked recently
    assert r.add(chunks[2], now=0.2) is None  # type: ignore[arg-type]
    assert r.add(chunks[5], now=0.2) == message  # type: ignore[arg-type]
    assert r.requests(1.0) == []


def test_inconsistent_or_corrupt_chunks_are_refused() -> None:
    message = b"x" * 3000
    chunks = [decode_packet(c) for c in split(message, 1, budget=500)]
    r = Reassembler()
    r.add(chunks[0])  # type: ignore[arg-type]
    # A chunk disagreeing with its siblings is a rival candidate, kept apart: it cannot poison
    # the genuine message that shares its sequence.
    bad = ChunkPacket(1, 1, chunks[0].count + 1, chunks[0].checksum, b"y")  # type: ignore[union-attr]
    assert r.add(bad) is None
    done = [m for c in chunks[1:] if (m := r.add(c)) is not None]  # type: ignore[arg-type]
    assert done == [message]
    assert r.pending == {} and r.drops.superseded == 1  # the rival went with the completion
    r2 = Reassembler()
    for c in chunks[:-1]:
        r2.add(c)  # type: ignore[arg-type]
    last = chunks[-1]
    assert isinstance(last, ChunkPacket)
    forged = ChunkPacket(last.sequence, last.index, last.count, last.checksum, b"z" * 9)
    with pytest.raises(ChunkError, match="checksum"):
        r2.add(forged)
    assert zlib.crc32(message) == chunks[0].checksum  # type: ignore[union-attr]


def test_hostile_chunk_counts_do_not_allocate() -> None:
    r = Reassembler(max_message_bytes=10_000)
    with pytest.raises(ChunkError):
        r.add(ChunkPacket(1, 0, 60_000, 0, b"a" * 1000))
