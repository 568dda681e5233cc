"""The Opus codec through pyogg's libopus handle: settings, round trip, PLC, FEC, fuzzing."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs import plugins
from theta_ecs.interfaces import VoiceCodec
from theta_voice.corpus import speech_clip
from theta_voice.errors import OpusError, VoiceConfigError, VoiceDecodeError
from theta_voice.opus import OpusCodec, OpusDecoder, OpusEncoder, has_fec, is_dtx, opus_version


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speech_clip(sentences=1).clean


def test_registered_and_protocol() -> None:
    codec = plugins.create("theta.voice_codecs", "opus")
    assert isinstance(codec, VoiceCodec)
    assert (codec.sample_rate, codec.frame_samples) == (48_000, 960)
    assert opus_version().startswith("libopus")


def test_ctl_settings_reach_libopus() -> None:
    enc = OpusEncoder(bitrate=24_000, expected_loss=0.1)
    assert enc.bitrate == 24_000
    assert enc.expected_loss_percent == 10
    enc.set_expected_loss(0.5)  # capped as WebRTC caps it
    assert enc.expected_loss_percent == 20
    enc.set_bitrate(48_000)
    assert enc.bitrate == 48_000
    assert enc.lookahead_samples == 312  # 6.5 ms at 48 kHz


@pytest.mark.parametrize("frame_ms", [10, 20, 40, 60])
def test_round_trip_keeps_speech(speech: np.ndarray, frame_ms: int) -> None:
    codec = OpusCodec(frame_ms=frame_ms)
    n = codec.frame_samples
    frames = speech[: len(speech) // n * n].reshape(-1, n)
    out = np.concatenate([codec.decode(codec.encode(f)) for f in frames])
    delay = 312
    x = speech[: len(out) - delay].astype(float)
    y = out[delay:].astype(float)
    # Same waveform up to coding noise: strongly correlated, similar energy.
    assert np.corrcoef(x, y)[0, 1] > 0.8
    assert 0.5 < np.std(y) / np.std(x) < 1.5


def test_bad_settings_raise_typed_errors() -> None:
    with pytest.raises(VoiceConfigError) as err:
        OpusEncoder(frame_ms=25)
    assert err.value.expected == (10, 20, 40, 60) and err.value.actual == 25
    with pytest.raises(VoiceConfigError):
        OpusEncoder(sample_rate=44_100)
    with pytest.raises(VoiceConfigError):
        OpusEncoder(bitrate=1_000)
    with pytest.raises(VoiceConfigError):
        OpusCodec().encode(np.zeros(100, np.int16))


def test_plc_and_fec(speech: np.ndarray) -> None:
    enc = OpusEncoder(expected_loss=0.2)
    frames = speech[: 960 * 100].reshape(-1, 960)
    packets = [enc.encode(f) for f in frames]
    clean = OpusDecoder()
    reference = [clean.decode(p) for p in packets]  # what an undamaged stream decodes to
    dec_fec, dec_plc = OpusDecoder(), OpusDecoder()
    err_fec = err_plc = 0.0
    for i, p in enumerate(packets[:-1]):
        if i % 5 == 4:  # every fifth packet lost
            a = dec_fec.decode_fec(packets[i + 1])
            b = dec_plc.decode(None)
            err_fec += float(np.sum((a.astype(float) - reference[i]) ** 2))
            err_plc += float(np.sum((b.astype(float) - reference[i]) ** 2))
        else:
            dec_fec.decode(p)
            dec_plc.decode(p)
    assert dec_fec.frames_fec == 19 and dec_plc.frames_concealed == 19
    assert err_fec < 0.5 * err_plc  # FEC rebuilds the lost frames far better than concealment


def test_dtx_marks_silence() -> None:
    enc = OpusEncoder(dtx=True)
    sizes = [len(enc.encode(np.zeros(960, np.int16))) for _ in range(30)]
    assert is_dtx(b"\x00") and not is_dtx(b"\x00" * 3)
    assert sum(s <= 2 for s in sizes) >= 15


def test_decoder_refuses_wrong_inputs() -> None:
    dec = OpusDecoder()
    with pytest.raises(VoiceDecodeError) as err:
        dec.decode(b"")
    assert err.value.actual == 0
    with pytest.raises(VoiceDecodeError):
        dec.decode(b"\x00" * 1276)
    with pytest.raises(VoiceDecodeError):
        dec.decode("text")  # type: ignore[arg-type]
    with pytest.raises(OpusError) as oerr:
        dec.decode(b"\xff\xff\xff")
    assert oerr.value.code < 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=1400))
def test_fuzz_decoder_never_crashes(data: bytes) -> None:
    dec = OpusDecoder()
    try:
        out = dec.decode(data)
    except VoiceDecodeError:
        pass
    else:
        assert out.shape == (960,) and out.dtype == np.int16
    # The decoder is still usable afterwards.
    assert dec.decode(None).shape == (960,)
    with contextlib.suppress(VoiceDecodeError):
        dec.decode_fec(data)


@pytest.mark.parametrize("frame_ms", [10, 20, 40, 60])
def test_has_fec_sees_whether_libopus_wrote_fec(speech: np.ndarray, frame_ms: int) -> None:
    """libopus writes FEC only with an expected loss above 0 (and for frames after speech):
    a packet flagged FEC without it is rebuilt by plain concealment."""
    n = 48 * frame_ms
    frames = speech[: len(speech) // n * n].reshape(-1, n)
    for loss, lo, hi in ((0.0, 0.0, 0.0), (0.1, 0.3, 0.95)):
        enc = OpusEncoder(frame_ms=frame_ms, expected_loss=loss)
        share = float(np.mean([has_fec(enc.encode(f)) for f in frames]))
        assert lo <= share <= hi, (loss, share)
    assert not has_fec(b"") and not has_fec(b"\xf8\xff\xfe")  # nothing; a CELT-only packet


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1400))
def test_fuzz_has_fec_never_crashes(data: bytes) -> None:
    assert has_fec(data) in (True, False)
