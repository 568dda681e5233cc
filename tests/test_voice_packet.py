"""The voice packet and report formats: round trips, every malformation named, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_voice.errors import VoicePacketError
from theta_voice.packet import HEADER, MAX_PAYLOAD, VoicePacket, VoiceReport, is_report

packets = st.builds(
    VoicePacket,
    stream_id=st.integers(0, 2**32 - 1), seq=st.integers(0, 2**32 - 1),
    timestamp=st.integers(0, 2**32 - 1), payload=st.binary(min_size=1, max_size=MAX_PAYLOAD),
    codec=st.sampled_from(["pcm", "opus"]), frame_ms=st.sampled_from([10, 20, 40, 60]),
    speech=st.booleans(), start=st.booleans(), fec=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(packets)
def test_round_trip(packet: VoicePacket) -> None:
    data = packet.encode()
    assert len(data) == HEADER.size + len(packet.payload)
    assert VoicePacket.decode(data) == packet
    assert not is_report(data)


def _good() -> bytes:
    return VoicePacket(1, 2, 3, b"\x01\x02\x03").encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "truncated"),
    (_good()[:10], "truncated"),
    (_good()[:-1], "truncated"),
    (_good() + b"x", "oversized"),
    (b"\x51" + _good()[1:], "magic"),
    (b"\xa2" + _good()[1:], "version"),
    (_good()[:1] + b"\x80" + _good()[2:], "flags"),
    (_good()[:2] + b"\x09" + _good()[3:], "codec"),
    (_good()[:3] + b"\x19" + _good()[4:], "frame_ms"),
    (_good()[:16] + b"\x00\x00", "oversized"),
    (_good()[:16] + b"\xff\xff" + b"\x00" * 65535, "oversized"),
])
def test_malformed_packets_name_the_fault(data: bytes, reason: str) -> None:
    with pytest.raises(VoicePacketError) as err:
        VoicePacket.decode(data)
    assert err.value.reason == reason


def test_encode_refuses_what_cannot_travel() -> None:
    with pytest.raises(VoicePacketError, match="payload"):
        VoicePacket(1, 2, 3, b"x" * (MAX_PAYLOAD + 1)).encode()
    with pytest.raises(VoicePacketError):
        VoicePacket(2**32, 2, 3, b"x").encode()
    with pytest.raises(VoicePacketError):
        VoicePacket(1, 2, 3, b"x", frame_ms=25).encode()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_decode_raises_only_packet_errors(data: bytes) -> None:
    for blob in (data, _good()[:18] + data, _good()[:16] + len(data).to_bytes(2, "big") + data):
        try:
            VoicePacket.decode(blob)
        except VoicePacketError as err:
            assert err.reason
        with contextlib.suppress(VoicePacketError):
            VoiceReport.decode(blob)


def test_report_round_trip() -> None:
    report = VoiceReport(77, 0.125, 45)
    data = report.encode()
    assert is_report(data)
    back = VoiceReport.decode(data)
    assert back.stream_id == 77 and back.delay_ms == 45 and abs(back.loss - 0.125) < 1e-4
    with pytest.raises(VoicePacketError):
        VoiceReport.decode(data[:-1])


def test_errors_are_the_cores_decode_error_and_pickle() -> None:
    import pickle

    from theta_ecs.errors import DecodeError

    with pytest.raises(DecodeError) as info:
        VoicePacket.decode(b"\x00")
    err = info.value
    assert isinstance(err, VoicePacketError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is VoicePacketError and str(back) == str(err)
    assert (back.reason, back.expected, back.actual) == ("truncated", 18, 1)
