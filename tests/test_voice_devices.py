"""Capture and playback: the ring buffer the audio callback uses, the null source, and real
PortAudio streams on the ALSA null device (which does not pace: callbacks run flat out)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from theta_ecs import plugins
from theta_ecs.interfaces import AudioSink, AudioSource
from theta_voice.devices import NullAudioSource, RingBuffer


def test_ring_buffer_wraps_and_counts() -> None:
    ring = RingBuffer(10, channels=2)
    assert ring.write(np.arange(16, dtype=np.int16).reshape(8, 2)) == 8
    out = np.empty((5, 2), np.int16)
    assert ring.read_into(out) == 5 and out[0, 0] == 0 and out[4, 1] == 9
    assert ring.write(np.full((6, 2), 7, np.int16)) == 6  # wraps around the end
    assert ring.write(np.full((4, 2), 9, np.int16)) == 1  # full: 3 frames overrun
    assert (ring.overruns, ring.overrun_frames) == (1, 3)
    out = np.empty((12, 2), np.int16)
    assert ring.read_into(out) == 10
    assert list(out[:3, 0]) == [10, 12, 14] and out[9, 0] == 9 and not out[10:].any()
    assert (ring.underruns, ring.underrun_frames) == (1, 2)
    assert len(ring.read(5)) == 0


def test_null_source_replays_a_recording() -> None:
    sig = np.arange(2000, dtype=np.int16)
    src = NullAudioSource(signal=sig)
    assert isinstance(src, AudioSource)
    assert np.array_equal(np.concatenate([src.read(960), src.read(960), src.read(960)]), sig)
    looped = NullAudioSource(signal=sig[:100], loop=True)
    assert len(looped.read(250)) == 250
    assert np.array_equal(looped.read(100), np.r_[sig[50:100], sig[:50]])
    # A loop much shorter than a read (a click track) was read by recursion, one level per
    # repetition: RecursionError for 24,000 samples of a 3-sample signal.
    click = NullAudioSource(signal=sig[:3], loop=True)
    assert np.array_equal(click.read(24_000), np.resize(sig[:3], 24_000))
    src.close()
    assert len(src.read(10)) == 0


def _open(group: str, **kw: object) -> object:
    try:
        return plugins.create(group, "sounddevice", **kw)
    except plugins.BackendUnavailableError as exc:  # pragma: no cover
        pytest.fail(f"sounddevice backend unavailable (make sysdeps sets it up): {exc}")


def test_sounddevice_sink_plays_through_the_ring() -> None:
    sink = _open("theta.audio_sinks", channels=2, device_rate=44_100)
    assert isinstance(sink, AudioSink)
    try:
        assert sink.device_rate == 44_100  # the engine side stays 48 kHz: soxr resamples
        sink.play(np.full((4800, 2), 1000, np.int16))
        deadline = time.monotonic() + 2.0
        while sink.callbacks < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sink.callbacks >= 5
        assert sink.underruns >= 1  # the null device drains faster than real time
        sink.play(np.zeros(960, np.int16))  # mono is spread to both channels
    finally:
        sink.close()
    with pytest.raises(Exception, match="close"):
        sink.play(np.zeros(960, np.int16))


def test_sounddevice_source_captures_at_48k() -> None:
    source = _open("theta.audio_sources", device_rate=44_100, buffer_ms=100)
    assert isinstance(source, AudioSource)
    try:
        deadline = time.monotonic() + 2.0
        got = 0
        while got < 4800 and time.monotonic() < deadline:
            time.sleep(0.005)
            chunk = source.read(4800)
            assert chunk.dtype == np.int16 and chunk.ndim == 1
            got += len(chunk)
        assert got >= 4800 and source.callbacks > 0
        time.sleep(0.02)
        assert source.overruns > 0  # nobody read for a while: the ring was full, counted
    finally:
        source.close()


def test_theta_voice_imports_no_other_backend() -> None:
    """Voice travels through the core's interfaces: theta_voice never imports theta_net or
    theta_xr (and the core never imports theta_voice)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src"
    for package, forbidden in (("theta_voice", ("theta_net", "theta_xr")),
                               ("theta_ecs", ("theta_voice",))):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    assert not name.startswith(forbidden), f"{path} imports {name}"
