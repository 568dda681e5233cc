"""Voice sessions over the core's loopback transport: speech flows between participants, several
speakers mix with per-listener mute, volume and spatial pan, reports feed FEC back, hostile
datagrams are dropped and counted, diagnostics land in Telemetry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs import World, plugins
from theta_ecs.backends.loopback import LinkModel, LoopbackNetwork, ManualClock
from theta_ecs.interfaces import Transport
from theta_ecs.stdcomponents import Position, Rotation
from theta_ecs.telemetry import Telemetry
from theta_voice.corpus import speech_clip
from theta_voice.diagnostics import COUNTERS, GAUGES
from theta_voice.errors import VoiceConfigError
from theta_voice.mixer import VoiceMixer, pan_gains, spatial_gain
from theta_voice.packet import VoicePacket
from theta_voice.session import VoiceSession, pump

F = 0.02


@pytest.fixture(scope="module")
def voices() -> tuple[np.ndarray, np.ndarray]:
    return speech_clip(sentences=1, seed=0).clean, speech_clip(sentences=1, seed=4).clean


def run_call(sessions: list[VoiceSession], links: dict[int, list[Transport]],
             signals: dict[int, np.ndarray], clock: ManualClock, seconds: float,
             ) -> dict[int, np.ndarray]:
    """Everyone talks (their signal) and listens, in 20 ms steps, over the loopback links."""
    heard: dict[int, list[np.ndarray]] = {i: [] for i in range(len(sessions))}
    for k in range(int(seconds / F)):
        clock.advance(F)
        now = clock.now
        for i, session in enumerate(sessions):
            sig = signals.get(i)
            if sig is not None and (k + 1) * 960 <= len(sig):
                session.capture(sig[k * 960:(k + 1) * 960], now)
            pump(links[i], session, now)
        for i, session in enumerate(sessions):
            heard[i].append(session.pop(now))
    return {i: np.concatenate(v) for i, v in heard.items()}


def two_party(model: LinkModel | None = None) -> tuple[
        list[VoiceSession], dict[int, list[Transport]], ManualClock]:
    clock = ManualClock()
    net = LoopbackNetwork(model or LinkModel(latency_s=0.01), clock=clock)
    a_end, b_end = net.pair()
    sessions = [VoiceSession(1), VoiceSession(2)]
    return sessions, {0: [a_end], 1: [b_end]}, clock


def test_speech_flows_both_ways(voices: tuple[np.ndarray, np.ndarray]) -> None:
    sessions, links, clock = two_party()
    heard = run_call(sessions, links, {0: voices[0], 1: voices[1]}, clock, 3.0)
    for me, other in ((0, 1), (1, 0)):
        mono = heard[me].astype(float).sum(axis=1)
        assert np.std(mono) > 0.3 * np.std(voices[other][: len(mono)])
        rx = sessions[me].streams[sessions[other].sender.stream_id].diagnostics()
        assert rx.packets_good > 100 and rx.packets_lost == 0 and rx.interruptions == 0
        assert rx.current_delay_ms <= 60


def test_three_speakers_mix_with_mute_and_volume(voices: tuple[np.ndarray, np.ndarray]) -> None:
    clock = ManualClock()
    net = LoopbackNetwork(LinkModel(), clock=clock)
    s = [VoiceSession(10 + i) for i in range(3)]
    ab, ba = net.pair()
    cb, bc = net.pair()
    links = {0: [ab], 1: [ba, bc], 2: [cb]}
    s[1].mixer.set_volume(10, 0.5)
    heard = run_call(s, links, {0: voices[0], 2: voices[1]}, clock, 2.0)
    assert set(s[1].streams) == {10, 12}
    both = heard[1].astype(float)
    s[1].mixer.mute(12)
    heard_muted = run_call(s, links, {0: voices[0], 2: voices[1]}, clock, 1.0)[1].astype(float)
    assert np.std(heard_muted) < np.std(both)
    with pytest.raises(VoiceConfigError):
        s[1].mixer.set_volume(10, -1.0)


def test_spatial_gain_and_pan_from_ecs_positions() -> None:
    world = World()
    listener = world.spawn({Position: np.array([0, 0, 0], np.float32),
                            Rotation: np.array([0, 0, 0, 1], np.float32)})
    right = world.spawn({Position: np.array([2, 0, 0], np.float32)})
    far_left = world.spawn({Position: np.array([-20, 0, 0], np.float32)})
    mixer = VoiceMixer()
    mixer.update_from_world(world, listener, {1: right, 2: far_left})
    l1, r1 = mixer.gains(1)
    l2, r2 = mixer.gains(2)
    assert r1 > 0.9 * (l1 + r1) and l2 > 0.9 * (l2 + r2)  # hard right, hard left
    assert (l1 ** 2 + r1 ** 2) > (l2 ** 2 + r2 ** 2)  # nearer is louder
    # Turn the listener 180 degrees about y: right becomes left.
    world.set(listener, Rotation, np.array([0, 1, 0, 0], np.float32))
    mixer.update_from_world(world, listener, {1: right, 2: far_left})
    l1, r1 = mixer.gains(1)
    assert l1 > 0.9 * (l1 + r1)
    mixer.push(1, np.full(960, 1000, np.int16), 0.0)
    out = mixer.pop(0.0)
    assert out.shape == (960, 2) and out[:, 0].mean() > out[:, 1].mean()
    assert spatial_gain(0.5) == 1.0 and spatial_gain(100.0) == 0.0
    assert pan_gains(0.0)[0] == pytest.approx(pan_gains(0.0)[1])


def test_mixer_queue_is_bounded_and_saturates() -> None:
    mixer = VoiceMixer(max_queue_frames=4, spatial=False)
    for _ in range(100):
        mixer.push(1, np.full(960, 30_000, np.int16), 0.0)
        mixer.push(2, np.full(960, 30_000, np.int16), 0.0)
    assert mixer.dropped_samples == 2 * 96 * 960
    out = mixer.pop(0.0)
    assert out.max() == 32767 and mixer.clipped_samples > 0


def test_reports_feed_loss_back_to_the_encoder(voices: tuple[np.ndarray, np.ndarray]) -> None:
    sessions, links, clock = two_party(LinkModel(latency_s=0.01, loss=0.15, seed=3))
    run_call(sessions, links, {0: voices[0]}, clock, 3.0)
    assert sessions[0].reports_received >= 1
    assert sessions[0].sender.codec.encoder.expected_loss_percent >= 8


def test_hostile_datagrams_are_dropped_and_counted() -> None:
    session = VoiceSession(1, max_streams=4)
    good = VoicePacket(9, 0, 0, b"\x08" * 20).encode()
    session.receive(good[:-3], 0.0)
    session.receive(b"\xb1garbage", 0.0)
    session.receive(b"\x00" * 40, 0.0)
    session.receive(VoicePacket(1, 0, 0, b"x").encode(), 0.0)  # our own stream echoed back
    for sid in range(100, 200):  # a flood of stream ids
        session.receive(VoicePacket(sid, 0, 0, b"\x08" * 20).encode(), 0.0)
    assert len(session.streams) == 4
    assert session.dropped["truncated"] == 2 and session.dropped["magic"] == 1
    assert session.dropped["own_stream"] == 1 and session.dropped["too_many_streams"] == 96
    telemetry = Telemetry()
    session.export(telemetry)
    session.export(telemetry)
    assert telemetry.counters["voice.dropped.too_many_streams"] == 96
    # Opus garbage inside a well-formed packet: concealed and counted, never raised.
    for seq in range(1, 30):
        session.receive(VoicePacket(100, seq, seq * 960, b"\xff\xff\xff").encode(), seq * F)
        session.pop(seq * F)
    assert session.streams[100].decode_errors > 0


def test_diagnostics_export_to_telemetry(voices: tuple[np.ndarray, np.ndarray]) -> None:
    sessions, links, clock = two_party()
    run_call(sessions, links, {0: voices[0]}, clock, 1.0)
    telemetry = Telemetry()
    sessions[1].export(telemetry)
    rx = "voice.rx.1."
    assert telemetry.counters[rx + "packets_good"] > 20
    assert rx + "current_delay_ms" in telemetry.gauges
    good = telemetry.counters[rx + "packets_good"]
    run_call(sessions, links, {0: voices[0][48_000:]}, clock, 0.5)
    sessions[1].export(telemetry)
    assert telemetry.counters[rx + "packets_good"] > good  # increments, not double counts
    sessions[0].export(telemetry)
    assert telemetry.gauges["voice.tx.1.speech_ratio"] > 0.3
    names = {k.rsplit(".", 1)[1] for k in (*telemetry.counters, *telemetry.gauges)
             if k.startswith("voice.rx.")}
    assert names <= COUNTERS | GAUGES
    snap = sessions[1].diagnostics()[1].to_dict()
    assert snap["direction"] == "rx" and snap["stream_id"] == 1


def test_audio_source_group() -> None:
    assert plugins.GROUPS["theta.audio_sources"].env_var == "THETA_AUDIO_SOURCE"
    source = plugins.create("theta.audio_sources", "null")
    from theta_ecs.interfaces import AudioSource

    assert isinstance(source, AudioSource) and len(source.read(960)) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_fuzz_receive_never_raises(datagrams: list[bytes]) -> None:
    session = VoiceSession(1, max_streams=2)
    header = VoicePacket(5, 0, 0, b"\x08").encode()[:16]
    for i, data in enumerate(datagrams):
        session.receive(data, i * F)
        session.receive(header + len(data).to_bytes(2, "big") + data, i * F)
        assert session.pop(i * F).shape == (960, 2)
    assert len(session.streams) <= 2


def test_prometheus_export_of_every_stream(voices: tuple[np.ndarray, np.ndarray]) -> None:
    prometheus = pytest.importorskip("theta_ecs.prometheus", reason="theta[metrics] extra")
    from theta_ecs.metrics import load_declarations

    load_declarations()
    sessions, links, clock = two_party()
    exporter = prometheus.MetricsExporter()
    sessions[1].watch_metrics(exporter)  # before the remote stream exists: watched on arrival
    run_call(sessions, links, {0: voices[0]}, clock, 1.0)
    text = exporter.render().decode()
    good = [line for line in text.splitlines()
            if line.startswith("theta_voice_good_packets_total{")]
    rx = [line for line in good if 'direction="rx"' in line and 'stream="1"' in line]
    assert len(rx) == 1
    value = float(rx[0].rsplit(" ", 1)[1])
    assert value == sessions[1].streams[1].diagnostics().packets_good > 20
    assert 'theta_voice_buffer_delay_seconds{direction="rx",stream="1"}' in text
    assert "theta_undeclared" not in text  # every voice field is declared


class PacedSource:
    """A microphone that delivers a recording in real time, in 7 ms device blocks."""

    sample_rate = 48_000

    def __init__(self, signal: np.ndarray, clock: ManualClock) -> None:
        self.signal, self.clock, self.pos = signal, clock, 0

    def read(self, max_samples: int) -> np.ndarray:
        block = 336  # 7 ms
        due = int(self.clock.now * 48_000) // block * block
        out = self.signal[self.pos: min(due, self.pos + max_samples)]
        self.pos += len(out)
        return out

    def close(self) -> None:
        pass


def test_capture_from_a_source_and_play_to_a_sink(voices: tuple[np.ndarray, np.ndarray]) -> None:
    clock = ManualClock()
    net = LoopbackNetwork(LinkModel(latency_s=0.005), clock=clock)
    a_end, b_end = net.pair()
    alice, bob = VoiceSession(1), VoiceSession(2)
    mic = PacedSource(voices[0][:48_000], clock)
    speaker = plugins.create("theta.audio_sinks", "null")
    captured = 0
    for _ in range(60):
        clock.advance(0.02)
        captured += alice.capture_from(mic, clock.now)
        pump(a_end, alice, clock.now)
        pump(b_end, bob, clock.now)
        bob.play_to(speaker, clock.now)
    assert captured == 50 and len(alice._mic) == 0
    assert speaker.samples_played == 60 * 960
    rx = bob.streams[1].diagnostics()
    assert rx.packets_good >= 45 and rx.interruptions == 0
    # A source that delivers a recording all at once is paced to half a second per call.
    burst = VoiceSession(3)
    assert burst.capture_from(plugins.create("theta.audio_sources", "null",
                                             signal=voices[0][:48_000]), 1.0) == 25


def test_a_stream_follows_its_speaker_into_another_format(
        voices: tuple[np.ndarray, np.ndarray]) -> None:
    """A forged first packet in another codec must not mute the real speaker for good, nor may a
    speaker who rejoins with 40 ms frames under the same stream id go unheard: three packets in
    a row in one other format replace the stream (the listener's volume for it stays)."""
    from theta_voice.stream import VoiceSender

    signal = np.resize(voices[0], 48_000 * 8)
    listener = VoiceSession(1)
    listener.mixer.set_volume(5, 0.5)
    listener.receive(VoicePacket(5, 0, 0, b"\x00" * 960, codec="pcm", frame_ms=10).encode(), 0.0)
    speaker = VoiceSender(5, initial_seq=0, initial_timestamp=0)
    for k in range(100):
        now = 1.0 + (k + 1) * F
        listener.receive(speaker.push(signal[k * 960:(k + 1) * 960], now) or b"", now)
        listener.pop(now)
    assert listener.streams[5].codec_name == "opus"
    assert listener.streams[5].diagnostics().packets_good > 90
    rejoined = VoiceSender(5, frame_ms=40)
    for k in range(50):
        now = 5.0 + (k + 1) * 0.04
        listener.receive(rejoined.push(signal[k * 1920:(k + 1) * 1920], now) or b"", now)
        listener.pop(now)
    stream = listener.streams[5]
    assert stream.buffer.frame_ms == 40 and stream.diagnostics().packets_good > 40
    assert listener.dropped["format_change"] == 2 and listener.mixer.speaker(5).volume == 0.5
    # One stray packet in another format between good ones changes nothing.
    listener.receive(VoicePacket(5, 0, 0, b"\x00" * 960, codec="pcm", frame_ms=10).encode(), 7.1)
    assert listener.streams[5] is stream and stream.mismatched == 1


def test_reports_carry_the_loss_of_the_last_interval() -> None:
    """After a long clean stretch, loss that starts now is reported as it is (RTCP's fraction
    lost per interval), not diluted into the whole call's average where FEC never sees it."""
    from theta_voice.packet import VoiceReport, is_report
    from theta_voice.stream import VoiceSender

    listener = VoiceSession(1, codec="pcm", frame_ms=10)
    speaker = VoiceSender(5, codec="pcm", frame_ms=10, vad="always_on")
    rng = np.random.default_rng(7)
    frame = np.zeros(480, np.int16)
    reports = []
    for k in range(6_000):  # 60 s: 50 clean, then 10 with 20 % loss
        now = (k + 1) * 0.01
        data = speaker.push(frame, now)
        if not (k >= 5_000 and rng.random() < 0.2):
            listener.receive(data or b"", now)
        listener.pop(now)
        reports += [VoiceReport.decode(d) for d in listener.datagrams_to_send(now) if is_report(d)]
    assert listener.streams[5].loss_rate < 0.05  # the call's average
    assert 0.12 < reports[-1].loss < 0.3
    assert all(r.loss == 0.0 for r in reports[:45])


def test_fec_follows_the_worst_listener_in_a_mesh() -> None:
    """Two listeners report on our stream each second, one losing 10 %, one nothing: the
    encoder keeps its FEC for the lossy one, and lets go once that listener's loss is gone."""
    from theta_voice.packet import VoiceReport

    me = VoiceSession(1)
    encoder = me.sender.codec.encoder
    for t in range(5):
        me.receive(VoiceReport(1, 0.10).encode(), float(t))
        me.receive(VoiceReport(1, 0.0).encode(), t + 0.01)
        assert encoder.expected_loss_percent == 10
    for t in range(5, 9):
        me.receive(VoiceReport(1, 0.0).encode(), float(t))
        me.receive(VoiceReport(1, 0.0).encode(), t + 0.01)
    assert encoder.expected_loss_percent == 0


def test_a_pcm_sender_refuses_frames_no_packet_can_carry() -> None:
    """20 ms of PCM is 1,920 bytes, over the 1,275-byte payload: refused when the sender is
    made, not by a VoicePacketError out of every capture."""
    from theta_voice.stream import VoiceSender

    with pytest.raises(VoiceConfigError) as err:
        VoiceSession(1, codec="pcm")
    assert err.value.setting == "frame_ms" and err.value.actual == 20
    sender = VoiceSender(1, codec="pcm", frame_ms=10)
    assert sender.push(np.zeros(480, np.int16), 0.01) is not None


def test_a_non_finite_position_does_not_silence_the_mix() -> None:
    """One speaker's NaN position (a peer's bad replicated state) made its gains NaN, and the
    NaN spread through the sum to every speaker of the listener's mix."""
    mixer = VoiceMixer()
    mixer.set_position(1, (1.0, 0.0, 0.0))
    mixer.set_position(2, (float("nan"), 0.0, 0.0))
    mixer.push(1, np.full(960, 1000, np.int16), 0.0)
    mixer.push(2, np.full(960, 1000, np.int16), 0.0)
    out = mixer.pop(0.0)
    assert out[:, 1].min() > 1000  # both speakers heard; speaker 1 to the right
    assert all(np.isfinite(mixer.gains(2))) and mixer.unplaced_gains >= 1
    mixer.set_listener((0.0, 0.0, 0.0), (float("inf"), 0.0, 0.0, 1.0))
    assert all(np.isfinite(mixer.gains(1)))


def test_encode_time_is_per_frame_encoded() -> None:
    """In ``vad`` mode silence is not encoded: encode_ms divided the encoder's time by every
    captured frame, so a quiet microphone made encoding look ever cheaper."""
    from theta_voice.stream import VoiceSender

    sender = VoiceSender(1, mode="vad", vad="push_to_talk")
    loud = (np.sin(np.arange(960) * 0.05) * 8000).astype(np.int16)
    sender.vad.pressed = True  # type: ignore[attr-defined]
    for k in range(10):
        sender.push(loud, k * F)
    sender.vad.pressed = False  # type: ignore[attr-defined]
    for k in range(10, 1000):
        sender.push(loud, k * F)
    encoded = sender.codec.encoder.frames_encoded
    assert encoded == 11  # ten, and the one that tells the talkspurt ended
    expected = 1e3 * sender.encode_seconds / encoded
    assert sender.diagnostics().encode_ms == pytest.approx(expected)


@pytest.mark.parametrize("junk", [None, 17, 1.5, "\xb1text", ["\xb1"]])
def test_a_datagram_that_is_not_bytes_is_dropped_and_counted(junk: object) -> None:
    session = VoiceSession(1)
    session.receive(junk, 0.0)  # type: ignore[arg-type]
    assert session.dropped["type"] == 1 and not session.streams


def test_no_report_before_anything_played() -> None:
    """A stream whose first packet only just arrived has seen no loss yet: a 0 % report then made
    the sender switch FEC off (libopus writes none at 0 % expected loss) for the call's first
    second. The sender keeps its configured expected loss until a report has evidence."""
    from theta_voice.packet import VoiceReport, is_report
    from theta_voice.stream import VoiceSender

    listener, speaker = VoiceSession(1), VoiceSender(5, initial_seq=0, initial_timestamp=0)
    tone = (np.sin(np.arange(960) * 0.05) * 8000).astype(np.int16)
    listener.receive(speaker.push(tone, 0.02) or b"", 0.02)
    assert not [d for d in listener.datagrams_to_send(0.02) if is_report(d)]
    listener.pop(0.2)
    reports = [VoiceReport.decode(d) for d in listener.datagrams_to_send(1.1) if is_report(d)]
    assert [(r.stream_id, r.loss) for r in reports] == [(5, 0.0)]


def test_a_speaker_back_under_the_same_id_is_counted_from_zero(
        voices: tuple[np.ndarray, np.ndarray]) -> None:
    """A speaker's stream expires and the speaker comes back under the same id: telemetry got
    none of the new stream's counts until they passed the old stream's totals (the exporter
    kept the old ones), and expired streams' entries piled up in it."""
    from theta_voice.stream import VoiceSender

    listener = VoiceSession(1, stream_timeout=1.0)
    telemetry = Telemetry()

    def talk(start: float, frames: int) -> None:
        speaker = VoiceSender(5)
        for k in range(frames):
            now = start + (k + 1) * F
            listener.receive(speaker.push(voices[0][k * 960:(k + 1) * 960], now) or b"", now)
            listener.pop(now)
        listener.export(telemetry)

    talk(0.0, 100)
    first = telemetry.counters["voice.rx.5.packets_good"]
    listener.pop(9.9)  # the stream played out and went idle
    listener.receive(VoicePacket(6, 0, 0, b"\x08" * 20).encode(), 10.0)  # 5 expires meanwhile
    assert 5 not in listener.streams
    assert not [k for k in listener._exporter._last if k.startswith("voice.rx.5.")]
    talk(11.0, 60)
    assert telemetry.counters["voice.rx.5.packets_good"] - first >= 50
