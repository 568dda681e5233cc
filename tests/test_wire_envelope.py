"""The wire envelope: round trips, range checks, hostile bytes, and agreement with flatc itself."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import flatbuffers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs import errors as theta_errors
from theta_ecs.errors import DecodeError, ThetaError
from theta_ecs.wire import (
    FILE_IDENTIFIER,
    PROTOCOL_VERSION,
    Ack,
    Body,
    CommandLogEntry,
    ComponentDelta,
    Compression,
    Envelope,
    EnvelopeError,
    Header,
    Heartbeat,
    MalformedEnvelopeError,
    SchemaMismatchError,
    SessionAck,
    SessionHello,
    SnapshotChunk,
    decode_envelope,
    encode_envelope,
    timestamp_delta_us,
    timestamp_us,
)
from theta_ecs.wire.envelope import MAX_CAPABILITIES, MAX_ENVELOPE_BYTES

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "network.fbs"
GENERATED = ROOT / "src" / "theta_ecs" / "_generated" / "network"
HASH = 0xFEDC_BA98_7654_3210

BODIES: list[Body] = [
    SessionHello(peer_id=2**64 - 1, capabilities=("zstd", "delta", "interest"), max_datagram=1200),
    SessionHello(peer_id=0),
    SessionAck(peer_id=9, accepted=False, capabilities=(), reason="schema différent ✗"),
    SessionAck(peer_id=9, accepted=True, capabilities=("zstd",)),
    ComponentDelta(baseline_distance=0, payload=bytes(range(256)) * 3),
    ComponentDelta(baseline_distance=7, payload=b""),
    ComponentDelta(baseline_distance=2**32 - 1, payload=b"\x00"),
    SnapshotChunk(snapshot_id=5, index=0, count=1, checksum=0, data=b"chunk"),
    SnapshotChunk(snapshot_id=2**32 - 1, index=65534, count=65535, checksum=2**32 - 1, data=b""),
    Ack(ack_sequence=1000, ack_bits=2**64 - 1),
    Ack(ack_sequence=0),
    CommandLogEntry(payload=b"\x01signed command\xff"),
    Heartbeat(echo_timestamp_us=1_234_400_000, echo_delay_us=3000),
    Heartbeat(echo_timestamp_us=2**32 - 1, echo_delay_us=2**32 - 1),
    Heartbeat(),
]

HEADERS = [
    Header(sequence=0),
    Header(sequence=2**32 - 1, timestamp_us=2**32 - 1, compression=Compression.ZSTD,
           schema_hash=HASH, protocol_version=2**16 - 1),
    Header(sequence=77, timestamp_us=3_500_000, compression=Compression.ZSTD_DICTIONARY,
           dictionary_id=2**32 - 1, schema_hash=2**64 - 1),
]


def real_packets() -> list[bytes]:
    return [encode_envelope(Envelope(h, b)) for h in HEADERS for b in BODIES]


PACKETS = real_packets()


def decodes_or_refuses(data: bytes) -> None:
    """The fuzzing property: a valid Envelope (that re-encodes to itself) or a
    MalformedEnvelopeError, which is both an EnvelopeError and the core's one DecodeError."""
    try:
        env = decode_envelope(data)
    except DecodeError as exc:
        assert isinstance(exc, MalformedEnvelopeError) and isinstance(exc, EnvelopeError)
        return
    assert isinstance(env, Envelope)
    assert decode_envelope(encode_envelope(env)) == env


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("header", HEADERS, ids=lambda h: f"seq{h.sequence}")
@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_round_trip(header: Header, body: Body) -> None:
    env = Envelope(header, body)
    data = encode_envelope(env)
    assert isinstance(data, bytes) and data[4:8] == FILE_IDENTIFIER
    assert decode_envelope(data) == env
    assert decode_envelope(bytearray(data)) == env
    assert decode_envelope(memoryview(data)) == env


def test_values_come_back_typed() -> None:
    env = decode_envelope(PACKETS[-1])
    assert env.header.compression is Compression.ZSTD_DICTIONARY
    assert env.header.protocol_version == PROTOCOL_VERSION
    delta = decode_envelope(encode_envelope(Envelope(HEADERS[0], BODIES[4]))).body
    assert isinstance(delta, ComponentDelta) and type(delta.payload) is bytes
    assert delta.baseline_distance == 0 and delta.baseline(HEADERS[0].sequence) is None


# The most the envelope adds to a body's bytes, over every alignment of the payload's end
# (protocol 1, header as a table: 104 to 124 bytes; ~83.5 on average for a delta now).
OVERHEAD_LIMITS: list[tuple[Body, int]] = [
    (ComponentDelta(baseline_distance=6, payload=bytes(500)), 87),
    (ComponentDelta(baseline_distance=0, payload=bytes(500)), 83),
    (SnapshotChunk(snapshot_id=9, index=1, count=3, checksum=7, data=bytes(1100)), 103),
    (CommandLogEntry(payload=bytes(100)), 83),
    (Ack(ack_sequence=100, ack_bits=0xFFFF), 80),
    (Heartbeat(echo_timestamp_us=5, echo_delay_us=7), 80),
]


@pytest.mark.parametrize(("body", "limit"), OVERHEAD_LIMITS, ids=lambda v: type(v).__name__)
def test_overhead_is_bounded(body: Body, limit: int) -> None:
    """What the envelope adds to a payload, so bandwidth budgets can count it."""
    field = next((f for f in ("payload", "data") if hasattr(body, f)), None)
    for extra in range(8 if field else 1):
        sized = body
        if field is not None:
            sized = dataclasses.replace(body, **{field: bytes(len(getattr(body, field)) + extra)})
        size = len(getattr(sized, field)) if field else 0
        assert len(encode_envelope(Envelope(HEADERS[2], sized))) - size <= limit


def test_header_is_a_fixed_size_struct_inline_in_the_root() -> None:
    """24 bytes, 8-byte aligned, inline in the root table: no vtable or offset of its own."""
    env = Envelope(HEADERS[2], Ack(1))
    data = encode_envelope(env)
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    at = root + struct.unpack_from("<H", data, vt + 4)[0]
    assert at % 8 == 0
    version, comp, seq, stamp, dict_id, schema = struct.unpack_from("<HBxIIIQ", data, at)
    h = env.header
    assert (version, comp, seq, stamp, dict_id, schema) == (
        h.protocol_version, h.compression, h.sequence, h.timestamp_us, h.dictionary_id,
        h.schema_hash,
    )


def test_baseline_distance_round_trips_absolute_sequences() -> None:
    assert ComponentDelta.against(100, None, b"x") == ComponentDelta(0, b"x")
    assert ComponentDelta.against(100, 94, b"x") == ComponentDelta(6, b"x")
    assert ComponentDelta(6, b"x").baseline(100) == 94
    # Across the 2^32 wrap of the sequence, both ways.
    wrapped = ComponentDelta.against(3, 2**32 - 2, b"")
    assert wrapped.baseline_distance == 5 and wrapped.baseline(3) == 2**32 - 2
    assert ComponentDelta.against(2**32 - 1, 0, b"").baseline(2**32 - 1) == 0
    with pytest.raises(EnvelopeError, match="own baseline"):
        ComponentDelta.against(5, 5, b"")
    with pytest.raises(EnvelopeError):
        ComponentDelta.against(2**32, 1, b"")
    with pytest.raises(EnvelopeError):
        ComponentDelta(6, b"").baseline(-1)


def test_timestamps_are_wrapping_microseconds() -> None:
    assert timestamp_us(0.0) == 0
    assert timestamp_us(1.5) == 1_500_000
    assert timestamp_us(4294.967296) == 0  # 2^32 us later: wrapped
    assert timestamp_us(-0.000001) == 2**32 - 1
    assert timestamp_delta_us(timestamp_us(4295.0), timestamp_us(4294.9)) == 100_000
    assert timestamp_delta_us(5, 2**32 - 5) == 10
    assert timestamp_delta_us(2**32 - 5, 5) == -10
    for bad in (math.nan, math.inf, 1e307):
        with pytest.raises(EnvelopeError):
            timestamp_us(bad)
    with pytest.raises(EnvelopeError):
        timestamp_delta_us(2**32, 0)


def test_bytes_like_payloads_are_copied() -> None:
    buf = bytearray(b"abc")
    delta = ComponentDelta(baseline_distance=0, payload=buf)  # type: ignore[arg-type]
    buf[0] = 0
    assert delta.payload == b"abc" and type(delta.payload) is bytes


# -- the dataclasses refuse what the wire cannot carry ------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: Header(sequence=-1),
        lambda: Header(sequence=2**32),
        lambda: Header(sequence=True),
        lambda: Header(sequence=1.0),  # type: ignore[arg-type]
        lambda: Header(sequence=1, timestamp_us=-1),
        lambda: Header(sequence=1, timestamp_us=2**32),
        lambda: Header(sequence=1, timestamp_us=1.5),  # type: ignore[arg-type]
        lambda: Header(sequence=1, compression=7),  # type: ignore[arg-type]
        lambda: Header(sequence=1, compression=Compression.ZSTD_DICTIONARY),  # no dictionary id
        lambda: Header(sequence=1, dictionary_id=3),  # a dictionary without dictionary compression
        lambda: Header(sequence=1, schema_hash=2**64),
        lambda: Header(sequence=1, protocol_version=2**16),
        lambda: SessionHello(peer_id=-5),
        lambda: SessionHello(peer_id=1, capabilities="zstd"),  # type: ignore[arg-type]
        lambda: SessionHello(peer_id=1, capabilities=("",)),
        lambda: SessionHello(peer_id=1, capabilities=("x" * 65,)),
        lambda: SessionHello(peer_id=1, capabilities=(b"zstd",)),  # type: ignore[arg-type]
        lambda: SessionHello(peer_id=1, capabilities=("c",) * (MAX_CAPABILITIES + 1)),
        lambda: SessionHello(peer_id=1, max_datagram=70_000),
        lambda: SessionAck(peer_id=1, accepted=1),  # type: ignore[arg-type]
        lambda: SessionAck(peer_id=1, accepted=False, reason="nul\x00inside"),
        lambda: SessionAck(peer_id=1, accepted=False, reason="x" * 513),
        lambda: SessionAck(peer_id=1, accepted=False, reason="\ud800"),
        lambda: ComponentDelta(baseline_distance=-1, payload=b""),
        lambda: ComponentDelta(baseline_distance=2**32, payload=b""),
        lambda: ComponentDelta(baseline_distance=None, payload=b""),  # type: ignore[arg-type]
        lambda: ComponentDelta(baseline_distance=0, payload="text"),  # type: ignore[arg-type]
        lambda: SnapshotChunk(snapshot_id=1, index=1, count=1, checksum=0, data=b""),
        lambda: SnapshotChunk(snapshot_id=1, index=0, count=0, checksum=0, data=b""),
        lambda: SnapshotChunk(snapshot_id=1, index=0, count=70_000, checksum=0, data=b""),
        lambda: SnapshotChunk(snapshot_id=1, index=0, count=1, checksum=2**32, data=b""),
        lambda: Ack(ack_sequence=1, ack_bits=-1),
        lambda: Ack(ack_sequence=1, ack_bits=2**64),
        lambda: Heartbeat(echo_timestamp_us=-1),
        lambda: Heartbeat(echo_timestamp_us=0.5),  # type: ignore[arg-type]
        lambda: Heartbeat(echo_delay_us=2**32),
        lambda: Envelope(header=Ack(1), body=Ack(1)),  # type: ignore[arg-type]
        lambda: Envelope(header=Header(1), body=b"raw"),  # type: ignore[arg-type]
    ],
)
def test_out_of_range_values_are_refused(make: object) -> None:
    with pytest.raises(EnvelopeError) as info:
        make()  # type: ignore[operator]
    assert isinstance(info.value, ThetaError) and isinstance(info.value, ValueError)


def test_encode_refuses_non_envelopes() -> None:
    with pytest.raises(EnvelopeError):
        encode_envelope(Ack(1))  # type: ignore[arg-type]


# -- schema hash -------------------------------------------------------------------------------
def test_schema_hash_is_checked_when_asked() -> None:
    data = encode_envelope(Envelope(Header(1, schema_hash=HASH), Ack(1)))
    assert decode_envelope(data, expected_schema_hash=HASH).header.schema_hash == HASH
    assert decode_envelope(data).header.schema_hash == HASH
    with pytest.raises(SchemaMismatchError) as info:
        decode_envelope(data, expected_schema_hash=HASH ^ 1)
    err = info.value
    assert type(err) is theta_errors.SchemaMismatchError  # the one class every decoder raises
    assert not isinstance(err, EnvelopeError)  # a mismatch is not a malformed envelope
    assert (err.expected, err.actual) == (HASH ^ 1, HASH)
    assert f"{HASH:016x}" in str(err)


# -- hostile bytes -------------------------------------------------------------------------------
def test_every_truncation_is_refused_or_only_cut_padding() -> None:
    for data in PACKETS:
        original = decode_envelope(data)
        for cut in range(len(data)):
            try:
                env = decode_envelope(data[:cut])
            except EnvelopeError:
                continue
            # Only alignment padding after the last object may go: nothing that was read.
            assert not any(data[cut:]) and len(data) - cut < 4
            assert env == original


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 7, b"\x00" * 8, b"\x08\x00\x00\x00THNW", b"\xff\xff\xff\x7fTHNW" + bytes(64)],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(data)


def test_wrong_file_identifier_is_refused() -> None:
    data = bytearray(PACKETS[0])
    data[4:8] = b"XXXX"
    with pytest.raises(EnvelopeError, match="identifier"):
        decode_envelope(bytes(data))


def test_non_bytes_and_oversize_are_refused() -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope("text")  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="limit"):
        decode_envelope(PACKETS[0] + bytes(MAX_ENVELOPE_BYTES))


def body_type_offset(data: bytes) -> int:
    """Where the Envelope's body_type byte lives (slot 1 of the root table)."""
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    return int(root + struct.unpack_from("<H", data, vt + 4 + 2)[0])


@pytest.mark.parametrize("kind", [0, 15, 255])  # 15: the first body type protocol 3 lacks
def test_unknown_or_missing_union_type_is_refused(kind: int) -> None:
    data = bytearray(encode_envelope(Envelope(HEADERS[1], Ack(5))))
    data[body_type_offset(bytes(data))] = kind
    with pytest.raises(EnvelopeError, match="body"):
        decode_envelope(bytes(data))


def test_union_type_swapped_for_another_known_table_is_still_safe() -> None:
    """A body whose type byte lies: the verifier checks it against the claimed table's layout."""
    for packet in PACKETS:
        off = body_type_offset(packet)
        for kind in range(1, 8):
            data = bytearray(packet)
            data[off] = kind
            decodes_or_refuses(bytes(data))


def raw_envelope(
    *, header: bool = True, body: bool = True, extra_field: bool = False
) -> bytes:
    """An envelope built by hand with the runtime, to reach states our encoder never writes."""
    b = flatbuffers.Builder(64)
    ack = 0
    if body:
        b.StartObject(2)
        b.PrependUint32Slot(0, 9, 0)
        ack = b.EndObject()
    b.StartObject(5 if extra_field else 3)
    if extra_field:
        b.PrependUint64Slot(4, 12345, 0)  # a field from a newer protocol
    if header:
        b.Prep(8, 24)
        b.PrependUint64(HASH)
        b.PrependUint32(0)  # dictionary_id
        b.PrependUint32(1_000)  # timestamp_us
        b.PrependUint32(3)  # sequence
        b.Pad(1)
        b.PrependUint8(0)  # compression
        b.PrependUint16(0)  # protocol_version
        b.PrependStructSlot(0, b.Offset(), 0)
    if body:
        b.PrependUOffsetTRelativeSlot(2, ack, 0)
        b.PrependUint8Slot(1, 5, 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def test_required_fields_must_be_present() -> None:
    assert decode_envelope(raw_envelope()) == Envelope(
        Header(3, timestamp_us=1_000, schema_hash=HASH, protocol_version=0), Ack(9)
    )
    with pytest.raises(EnvelopeError, match="header"):
        decode_envelope(raw_envelope(header=False))
    with pytest.raises(EnvelopeError, match="body"):
        decode_envelope(raw_envelope(body=False))


def test_fields_from_a_newer_writer_are_skipped() -> None:
    assert decode_envelope(raw_envelope(extra_field=True)).body == Ack(9)


def header_slot(data: bytes) -> tuple[int, int]:
    """Where the root table's vtable entry for the header lives, and the offset it holds."""
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    return vt + 4, int(struct.unpack_from("<H", data, vt + 4)[0])


@pytest.mark.parametrize("shift", [-4, -1, 1, 2, 4, 8, 1000])
def test_a_header_struct_out_of_place_is_refused(shift: int) -> None:
    """The struct must be whole inside its table and 8-byte aligned."""
    data = bytearray(encode_envelope(Envelope(HEADERS[1], Ack(5))))
    entry, off = header_slot(bytes(data))
    struct.pack_into("<H", data, entry, off + shift)
    with pytest.raises(EnvelopeError, match="Envelope field 0"):
        decode_envelope(bytes(data))


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@FUZZ
@given(st.integers(0, 4096), st.binary(max_size=300))
def test_fuzz_random_bytes_behind_a_plausible_prefix(root: int, rest: bytes) -> None:
    decodes_or_refuses(struct.pack("<I", root) + FILE_IDENTIFIER + rest)


@FUZZ
@given(st.sampled_from(PACKETS), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_fuzz_bit_flips_of_real_packets(packet: bytes, flips: list[int]) -> None:
    data = bytearray(packet)
    for f in flips:
        bit = f % (len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
    decodes_or_refuses(bytes(data))


@FUZZ
@given(
    st.sampled_from(PACKETS),
    st.integers(0, 10**6),
    st.binary(min_size=1, max_size=8),
    st.integers(0, 10**6),
)
def test_fuzz_overwrites_and_truncations(packet: bytes, at: int, junk: bytes, cut: int) -> None:
    data = bytearray(packet)
    pos = at % len(data)
    data[pos : pos + len(junk)] = junk
    decodes_or_refuses(bytes(data[: len(data) - cut % len(data)]))
    decodes_or_refuses(bytes(data))


# -- flatc agrees ----------------------------------------------------------------------------------
def flatc() -> str:
    path = shutil.which("flatc")
    if path is None:
        pytest.fail("flatc is not on PATH: `make sysdeps` installs Debian's flatbuffers-compiler")
    return path


def test_flatc_reads_our_packet(tmp_path: Path) -> None:
    env = Envelope(
        Header(
            sequence=4242, timestamp_us=17_250_000, compression=Compression.ZSTD_DICTIONARY,
            dictionary_id=3, schema_hash=HASH, protocol_version=PROTOCOL_VERSION,
        ),
        SnapshotChunk(snapshot_id=99, index=2, count=5, checksum=0xDEADBEEF, data=b"\x00\x01\xfe"),
    )
    packet = tmp_path / "packet.bin"
    packet.write_bytes(encode_envelope(env))
    out = tmp_path / "out"
    subprocess.run(
        [flatc(), "--json", "--raw-binary", "--strict-json", "-o", str(out), str(SCHEMA), "--",
         str(packet)],
        check=True, capture_output=True, timeout=60,
    )
    doc = json.loads((out / "packet.json").read_text())
    assert doc["header"] == {
        "protocol_version": PROTOCOL_VERSION,
        "compression": "ZstdDictionary",
        "sequence": 4242,
        "timestamp_us": 17_250_000,
        "dictionary_id": 3,
        "schema_hash": HASH,
    }
    assert doc["body_type"] == "SnapshotChunk"
    assert doc["body"] == {
        "snapshot_id": 99, "index": 2, "count": 5, "checksum": 0xDEADBEEF, "data": [0, 1, 254]
    }


def test_flatc_reads_every_body_kind(tmp_path: Path) -> None:
    """flatc's own reader takes every packet we write: header struct, union and each body."""
    names = []
    for i, data in enumerate(PACKETS):
        (tmp_path / f"p{i}.bin").write_bytes(data)
        names.append(str(tmp_path / f"p{i}.bin"))
    out = tmp_path / "out"
    subprocess.run(
        [flatc(), "--json", "--raw-binary", "--strict-json", "-o", str(out), str(SCHEMA), "--",
         *names],
        check=True, capture_output=True, timeout=60,
    )
    for i, data in enumerate(PACKETS):
        env = decode_envelope(data)
        doc = json.loads((out / f"p{i}.json").read_text())
        h = env.header
        assert doc["header"]["sequence"] == h.sequence
        assert doc["header"]["timestamp_us"] == h.timestamp_us
        assert doc["header"]["schema_hash"] == h.schema_hash
        assert doc["body_type"] == type(env.body).__name__
        if isinstance(env.body, ComponentDelta):
            assert doc["body"].get("baseline_distance", 0) == env.body.baseline_distance
            assert bytes(doc["body"].get("payload", [])) == env.body.payload


def test_we_read_flatc_built_packets(tmp_path: Path) -> None:
    """flatc's C++ builder lays buffers out differently from Python's: both must decode."""
    source = tmp_path / "hello.json"
    source.write_text(json.dumps({
        "header": {
            "protocol_version": PROTOCOL_VERSION, "compression": "None", "sequence": 1,
            "timestamp_us": 500_000, "dictionary_id": 0, "schema_hash": HASH,
        },
        "body_type": "SessionHello",
        "body": {"peer_id": 77, "capabilities": ["zstd", "delta"], "max_datagram": 1200},
    }))
    subprocess.run(
        [flatc(), "-b", "-o", str(tmp_path), str(SCHEMA), str(source)],
        check=True, capture_output=True, timeout=60,
    )
    env = decode_envelope((tmp_path / "hello.bin").read_bytes(), expected_schema_hash=HASH)
    assert env == Envelope(
        Header(sequence=1, timestamp_us=500_000, schema_hash=HASH),
        SessionHello(peer_id=77, capabilities=("zstd", "delta"), max_datagram=1200),
    )


def test_generated_code_matches_the_schema(tmp_path: Path) -> None:
    """The checked-in code is what flatc makes of schemas/network.fbs today (regenerate if not)."""
    subprocess.run(
        [flatc(), "--python", "-o", str(tmp_path), str(SCHEMA)],
        check=True, capture_output=True, timeout=60,
    )
    fresh = tmp_path / "theta_ecs" / "_generated" / "network"
    names = sorted(p.name for p in fresh.glob("*.py"))
    assert names == sorted(p.name for p in GENERATED.glob("*.py"))
    _, mismatch, errors = filecmp.cmpfiles(fresh, GENERATED, names, shallow=False)
    assert not mismatch and not errors, f"regenerate: {mismatch + errors}"
