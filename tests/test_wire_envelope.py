"""The wire envelope: round trips, range checks, hostile bytes, and agreement with flatc itself."""

from __future__ import annotations

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

from theta_ecs.errors import ThetaError
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
    SchemaMismatchError,
    SessionAck,
    SessionHello,
    SnapshotChunk,
    decode_envelope,
    encode_envelope,
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
    ComponentDelta(tick=2**32 - 1, baseline=None, payload=bytes(range(256)) * 3),
    ComponentDelta(tick=7, baseline=0, payload=b""),
    ComponentDelta(tick=7, baseline=2**32 - 1, payload=b"\x00"),
    SnapshotChunk(snapshot_id=5, index=0, count=1, checksum=0, data=b"chunk"),
    SnapshotChunk(snapshot_id=2**32 - 1, index=65534, count=65535, checksum=2**32 - 1, data=b""),
    Ack(ack_sequence=1000, ack_bits=2**64 - 1),
    Ack(ack_sequence=0),
    CommandLogEntry(payload=b"\x01signed command\xff"),
    Heartbeat(origin_time=1234.5678, echo_time=1234.4, echo_delay=0.003),
    Heartbeat(origin_time=-1.0),
]

HEADERS = [
    Header(sequence=0),
    Header(sequence=2**32 - 1, timestamp=1e9 + 0.25, compression=Compression.ZSTD,
           schema_hash=HASH, protocol_version=2**16 - 1),
    Header(sequence=77, timestamp=-3.5, compression=Compression.ZSTD_DICTIONARY,
           dictionary_id=2**32 - 1, schema_hash=2**64 - 1),
]


def real_packets() -> list[bytes]:
    return [encode_envelope(Envelope(h, b)) for h in HEADERS for b in BODIES]


PACKETS = real_packets()


def decodes_or_refuses(data: bytes) -> None:
    """The fuzzing property: a valid Envelope (that re-encodes to itself) or an EnvelopeError."""
    try:
        env = decode_envelope(data)
    except EnvelopeError:
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
    assert delta.baseline is None


def test_overhead_is_bounded() -> None:
    """What the envelope adds to a payload, so bandwidth budgets can count it."""
    payload = bytes(500)
    env = Envelope(HEADERS[1], ComponentDelta(tick=1, baseline=3, payload=payload))
    overhead = len(encode_envelope(env)) - len(payload)
    assert overhead <= 120


def test_bytes_like_payloads_are_copied() -> None:
    buf = bytearray(b"abc")
    delta = ComponentDelta(tick=1, baseline=None, payload=buf)  # type: ignore[arg-type]
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
        lambda: Header(sequence=1, timestamp=math.nan),
        lambda: Header(sequence=1, timestamp=math.inf),
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
        lambda: ComponentDelta(tick=1, baseline=-1, payload=b""),
        lambda: ComponentDelta(tick=1, baseline=None, payload="text"),  # type: ignore[arg-type]
        lambda: SnapshotChunk(snapshot_id=1, index=1, count=1, checksum=0, data=b""),
        lambda: SnapshotChunk(snapshot_id=1, index=0, count=0, checksum=0, data=b""),
        lambda: SnapshotChunk(snapshot_id=1, index=0, count=70_000, checksum=0, data=b""),
        lambda: SnapshotChunk(snapshot_id=1, index=0, count=1, checksum=2**32, data=b""),
        lambda: Ack(ack_sequence=1, ack_bits=-1),
        lambda: Ack(ack_sequence=1, ack_bits=2**64),
        lambda: Heartbeat(origin_time=math.nan),
        lambda: Heartbeat(origin_time=0.0, echo_delay=-0.1),
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
    assert isinstance(err, EnvelopeError)
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


@pytest.mark.parametrize("kind", [0, 8, 255])
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
    *, header: bool = True, body: bool = True, extra_header_field: bool = False
) -> bytes:
    """An envelope built by hand with the runtime, to reach states our encoder never writes."""
    b = flatbuffers.Builder(64)
    ack = 0
    if body:
        b.StartObject(2)
        b.PrependUint32Slot(0, 9, 0)
        ack = b.EndObject()
    hdr = 0
    if header:
        b.StartObject(8 if extra_header_field else 6)
        b.PrependUint32Slot(0, 3, 0)
        if extra_header_field:
            b.PrependUint64Slot(7, 12345, 0)  # a field from a newer protocol
        hdr = b.EndObject()
    b.StartObject(3)
    if header:
        b.PrependUOffsetTRelativeSlot(0, hdr, 0)
    if body:
        b.PrependUOffsetTRelativeSlot(2, ack, 0)
        b.PrependUint8Slot(1, 5, 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def test_required_fields_must_be_present() -> None:
    assert decode_envelope(raw_envelope()) == Envelope(Header(3, protocol_version=0), Ack(9))
    with pytest.raises(EnvelopeError, match="header"):
        decode_envelope(raw_envelope(header=False))
    with pytest.raises(EnvelopeError, match="body"):
        decode_envelope(raw_envelope(body=False))


def test_fields_from_a_newer_writer_are_skipped() -> None:
    assert decode_envelope(raw_envelope(extra_header_field=True)).body == Ack(9)


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
            sequence=4242, timestamp=17.25, compression=Compression.ZSTD_DICTIONARY,
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
        "sequence": 4242,
        "timestamp": 17.25,
        "compression": "ZstdDictionary",
        "dictionary_id": 3,
        "schema_hash": HASH,
        "protocol_version": PROTOCOL_VERSION,
    }
    assert doc["body_type"] == "SnapshotChunk"
    assert doc["body"] == {
        "snapshot_id": 99, "index": 2, "count": 5, "checksum": 0xDEADBEEF, "data": [0, 1, 254]
    }


def test_we_read_flatc_built_packets(tmp_path: Path) -> None:
    """flatc's C++ builder lays buffers out differently from Python's: both must decode."""
    source = tmp_path / "hello.json"
    source.write_text(json.dumps({
        "header": {"sequence": 1, "timestamp": 0.5, "schema_hash": HASH, "protocol_version": 1},
        "body_type": "SessionHello",
        "body": {"peer_id": 77, "capabilities": ["zstd", "delta"], "max_datagram": 1200},
    }))
    subprocess.run(
        [flatc(), "-b", "-o", str(tmp_path), str(SCHEMA), str(source)],
        check=True, capture_output=True, timeout=60,
    )
    env = decode_envelope((tmp_path / "hello.bin").read_bytes(), expected_schema_hash=HASH)
    assert env == Envelope(
        Header(sequence=1, timestamp=0.5, schema_hash=HASH),
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
