"""Protocol 3's session bodies in the envelope: round trips, flatc agreement, value checks, and
fuzzed decoding (malformed bytes are an EnvelopeError, never another exception)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs.wire import envelope as wire

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "network.fbs"
HEADER = wire.Header(7, 123_456, schema_hash=0x1122334455667788)
BODIES: list[wire.Body] = [
    wire.Hello(0xABCDEF, b"k" * 32, "editor", b"theta1.tok", ("delta", "zstd"), (3, 9),
               ("opus",), (0, 1, 2), 1150, b"n" * 16, b"s" * 64),
    wire.Hello(0, b"", "", b""),
    wire.Welcome(5, 2**63 + 1, "viewer", ("delta",), (9,), ("pcm",), (0, 2), 1100, 250, 10_000,
                 0xABCDEF),
    wire.Refusal(2, "schema hash 0x1 here, 0x2 there", "schema hash", "0x1", "0x2"),
    wire.Close(0, "bye"),
    wire.VoiceData(3, 2**32 - 1, "opus", b"\x01\x02" * 50),
    wire.RosterUpdate(((b"a" * 32, 1), (b"b" * 32, 3))),
    wire.RosterUpdate(()),
    wire.Interest(-12.5, 0.0, 300.25, 150.0),
]
PACKETS = [wire.encode_envelope(wire.Envelope(HEADER, b)) for b in BODIES]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_round_trip(body: wire.Body) -> None:
    env = wire.Envelope(HEADER, body)
    assert wire.decode_envelope(wire.encode_envelope(env)) == env
    assert wire.PROTOCOL_VERSION == 3


def test_hello_signed_bytes_cover_every_field_but_the_signature() -> None:
    hello = BODIES[0]
    assert isinstance(hello, wire.Hello)
    base = hello.signed_bytes(1, 3)
    assert hello.signed_bytes(2, 3) != base and hello.signed_bytes(1, 4) != base
    for field, value in (("role", "admin"), ("token", b"x"), ("nonce", b"m" * 16),
                         ("features", ("delta",)), ("channels", (0, 2)), ("max_datagram", 900),
                         ("dictionary_ids", (3,)), ("public_key", b"j" * 32)):
        changed = wire.Hello(**{**hello.__dict__, field: value})
        assert changed.signed_bytes(1, 3) != base, field
    assert wire.Hello(**{**hello.__dict__, "signature": b""}).signed_bytes(1, 3) == base


@pytest.mark.parametrize("make", [
    lambda: wire.Hello(0, b"k" * 65, "", b""),
    lambda: wire.Hello(0, b"", "", b"t" * 1025),
    lambda: wire.Hello(0, b"", "", b"", channels=(256,)),
    lambda: wire.Hello(0, b"", "", b"", dictionary_ids=tuple(range(65))),
    lambda: wire.Welcome(0, 0, "r" * 33),
    lambda: wire.Refusal(70_000, ""),
    lambda: wire.VoiceData(0, 0, "opus", b"x" * 4097),
    lambda: wire.RosterUpdate(((b"short", 1),)),
    lambda: wire.RosterUpdate.unpack(b"x" * 34),
    lambda: wire.Interest(float("nan"), 0.0, 0.0, 1.0),
    lambda: wire.Interest(0.0, float("inf"), 0.0, 1.0),
    lambda: wire.Interest(0.0, 0.0, 1e39, 1.0),
    lambda: wire.Interest(0.0, 0.0, 0.0, -1.0),
    lambda: wire.Interest(0.0, 0.0, "1", 1.0),  # type: ignore[arg-type]
])
def test_out_of_range_values_are_refused(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(wire.EnvelopeError):
        make()


def test_flatc_reads_the_session_bodies(tmp_path: Path) -> None:
    flatc = shutil.which("flatc")
    if flatc is None:
        pytest.fail("flatc is not on PATH: `make sysdeps` installs flatbuffers-compiler")
    names = []
    for i, data in enumerate(PACKETS):
        (tmp_path / f"p{i}.bin").write_bytes(data)
        names.append(str(tmp_path / f"p{i}.bin"))
    out = tmp_path / "out"
    subprocess.run([flatc, "--json", "--raw-binary", "--strict-json", "-o", str(out),
                    str(SCHEMA), "--", *names], check=True, capture_output=True, timeout=60)
    hello = json.loads((out / "p0.json").read_text())
    assert hello["body_type"] == "Hello"
    assert hello["body"]["role"] == "editor" and hello["body"]["dictionary_ids"] == [3, 9]
    assert hello["body"]["max_datagram"] == 1150 and hello["body"]["channels"] == [0, 1, 2]
    welcome = json.loads((out / "p2.json").read_text())
    assert welcome["body"]["author"] == 2**63 + 1 and welcome["body"]["timeout_ms"] == 10_000
    refusal = json.loads((out / "p3.json").read_text())
    assert refusal["body"]["what"] == "schema hash" and refusal["body"]["code"] == 2
    roster = json.loads((out / "p6.json").read_text())
    assert len(roster["body"]["members"]) == 66
    interest = json.loads((out / "p8.json").read_text())
    assert interest["body_type"] == "Interest"
    assert interest["body"] == {"x": -12.5, "z": 300.25, "radius": 150.0}  # y = 0: the default


def decodes_or_refuses(data: bytes) -> None:
    try:
        env = wire.decode_envelope(data)
    except wire.EnvelopeError:
        return
    assert wire.decode_envelope(wire.encode_envelope(env)) == env


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.sampled_from(PACKETS), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_fuzz_bit_flips_of_session_messages(packet: bytes, flips: list[int]) -> None:
    data = bytearray(packet)
    for f in flips:
        bit = f % (len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
    decodes_or_refuses(bytes(data))


@FUZZ
@given(st.sampled_from(PACKETS), st.integers(0, 10**6), st.binary(min_size=1, max_size=8),
       st.integers(0, 10**6))
def test_fuzz_overwrites_and_truncations(packet: bytes, at: int, junk: bytes, cut: int) -> None:
    data = bytearray(packet)
    pos = at % len(data)
    data[pos : pos + len(junk)] = junk
    decodes_or_refuses(bytes(data[: len(data) - cut % len(data)]))
    decodes_or_refuses(bytes(data))


@FUZZ
@given(st.integers(8, 14), st.binary(max_size=200))
def test_fuzz_session_body_types_over_junk_tables(kind: int, junk: bytes) -> None:
    """A real envelope whose body type is switched to a session body over another table."""
    data = bytearray(PACKETS[4] + junk)
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    data[root + struct.unpack_from("<H", data, vt + 6)[0]] = kind
    decodes_or_refuses(bytes(data))


@FUZZ
@given(st.tuples(*[st.floats(width=32) | st.floats()] * 4))
def test_fuzz_interest_values(values: tuple[float, float, float, float]) -> None:
    """Any four floats: a body is built only from finite 32-bit ones with radius >= 0, and the
    same four float32 patterns written into a real Interest's bytes decode to exactly that body
    or are refused as malformed, never anything else."""
    try:
        body = wire.Interest(*values)
    except wire.EnvelopeError:
        body = None
    if body is not None:
        env = wire.Envelope(HEADER, body)
        assert wire.decode_envelope(wire.encode_envelope(env)) == wire.Envelope(
            HEADER, wire.Interest(*(struct.unpack("<f", struct.pack("<f", v))[0]
                                    for v in values)))
    packet = PACKETS[BODIES.index(wire.Interest(-12.5, 0.0, 300.25, 150.0))]
    data = bytearray(packet)
    for marker, value in zip((-12.5, 300.25, 150.0), (values[0], values[2], values[3])):
        at = data.index(struct.pack("<f", marker))
        try:
            data[at : at + 4] = struct.pack("<f", value)
        except OverflowError:
            data[at : at + 4] = b"\x00\x00\x80\x7f"  # +inf: what a hostile peer could write
    decodes_or_refuses(bytes(data))
