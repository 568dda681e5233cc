"""Encoding of entries, batches and packets: round trips, and fuzzing of every decoder."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.commandlog import CommandPayloadError, DecodeError, Entry, EntryId, Scope
from theta_ecs.commandlog.clock import MAX_CLOCK, LamportClock
from theta_ecs.commandlog.entry import (
    PacketType,
    decode_batch,
    decode_entry,
    decode_packet,
    encode_batch_body,
    encode_batches_packet,
    encode_sync_packet,
)
from theta_ecs.commandlog.signing import Verifier
from theta_ecs.errors import ThetaError

from .test_commandlog_support import signer

u64 = st.integers(1, (1 << 64) - 1)
entries = st.builds(
    Entry,
    clock=st.integers(1, MAX_CLOCK - 1),
    author=st.just(signer(0).author),
    seq=u64,
    kind=st.text(min_size=1, max_size=16),
    scope=st.builds(Scope, st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1),
                    st.text(max_size=8)),
    payload=st.binary(max_size=300),
    base=st.one_of(st.just(EntryId(0, 0)), st.builds(EntryId, u64, u64)),
)


@given(entries)
def test_entry_round_trip(entry: Entry) -> None:
    assert decode_entry(entry.encode()) == entry


def signed(entries_: list[Entry]) -> bytes:
    s = signer(0)
    body = encode_batch_body(s.author, tuple(entries_))
    return body + s.sign(body)


@given(
    st.lists(entries, min_size=1, max_size=5, unique_by=lambda e: e.seq).map(
        lambda es: sorted(es, key=lambda e: e.seq)
    )
)
def test_batch_round_trip_and_signature(batch_entries: list[Entry]) -> None:
    raw = signed(batch_entries)
    batch = decode_batch(raw)
    assert list(batch.entries) == batch_entries
    v = Verifier()
    v.add(signer(0).public_key)
    v.verify(batch)  # does not raise


def test_packets_round_trip() -> None:
    raw = signed([Entry(1, signer(0).author, 1, "k", Scope(1, 2), b"x")])
    p = decode_packet(encode_batches_packet([raw, raw]))
    assert p.type is PacketType.BATCHES and p.batches == (raw, raw)
    s = decode_packet(encode_sync_packet({5: 7, 3: 0}))
    assert s.type is PacketType.SYNC and s.floors == ((3, 0), (5, 7))


def test_encoder_refuses_out_of_range_fields() -> None:
    with pytest.raises(CommandPayloadError):
        Entry(0, 1, 1, "k", Scope(0, 0), b"").encode()  # clock 0
    with pytest.raises(CommandPayloadError):
        Entry(1, 1, 1, "k" * 65, Scope(0, 0), b"").encode()
    with pytest.raises(CommandPayloadError):
        encode_batch_body(1, (Entry(1, 2, 1, "k", Scope(0, 0), b""),))  # foreign author


def test_lamport_clock() -> None:
    c = LamportClock()
    assert c.tick() == 1
    c.observe(10)
    assert c.tick() == 11
    c.observe(3)
    assert c.value == 11


# --- fuzzing: malformed bytes give DecodeError, never another exception -------------------
def _decoders_only_raise_decode_error(data: bytes) -> None:
    for decode in (decode_entry, decode_batch, decode_packet):
        with contextlib.suppress(DecodeError):
            decode(data)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decoders_only_raise_decode_error(data)


_VALID_ENTRY = Entry(5, signer(0).author, 3, "theta.editor.select", Scope(9, 8, "f"), b"\x01\x02",
                     EntryId(4, 4))
_VALID_BATCH = signed([_VALID_ENTRY, Entry(6, signer(0).author, 4, "k", Scope(1, 1), b"")])
_VALID_PACKET = encode_batches_packet([_VALID_BATCH])


@settings(max_examples=300)
@given(
    st.sampled_from([_VALID_ENTRY.encode(), _VALID_BATCH, _VALID_PACKET]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.integers(0, 10_000),
    st.binary(max_size=8),
)
def test_fuzz_mutated_valid_bytes(
    base: bytes, flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    mutated = bytes(data[: max(0, len(data) - cut % (len(data) + 1))]) + tail
    _decoders_only_raise_decode_error(mutated)


def test_truncations_are_decode_errors() -> None:
    for n in range(len(_VALID_PACKET)):
        with pytest.raises(DecodeError):
            decode_packet(_VALID_PACKET[:n])
    with pytest.raises(DecodeError):
        decode_entry(_VALID_ENTRY.encode() + b"\x00")
    assert issubclass(DecodeError, ThetaError)
