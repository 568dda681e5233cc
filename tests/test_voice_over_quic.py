"""Voice over real QUIC on 127.0.0.1: theta_voice sessions pumped over theta_net clients' voice
channels, relayed by the server (an SFU). Real Opus speech (espeak-ng), scored with wideband PESQ;
mute and volume at the listener; a flooding speaker limited and counted while others still talk;
a forged stream id refused at the server (envelope) and at the listener (inner packet)."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs.interfaces import SourcedTransport, Transport
from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_ecs.wire import envelope as wire
from theta_ecs.world import World
from theta_net.carrier import Channel
from theta_net.client import Client
from theta_net.server import ClientInfo, Server
from theta_net.session import ClientCredentials, Session, SessionConfig
from theta_net.voice import VoiceChannelError, VoiceRelayConfig, voice_stream_id
from theta_voice.corpus import speech_clip
from theta_voice.packet import VoicePacket
from theta_voice.quality import pesq_wb
from theta_voice.session import VoiceSession, pump

from . import aio_support
from .aio_support import until

pytest.importorskip("pesq", reason="PESQ needs the pesq package (dev extra)")

SCHEMA = ReplicationSchema(CubesScene.components)
ROOT = Path(__file__).resolve().parents[1]
FRAME = 960  # 20 ms at 48 kHz


run = partial(aio_support.run, timeout=90)


class Call:
    """A server (a small cubes scene) and clients connected over QUIC, each ticking."""

    def __init__(self, **server_kw: object) -> None:
        scene = CubesScene(8, seed=1)
        self.server = Server(scene.world, SCHEMA, step=scene.step, port=0, rate=30.0,
                             **server_kw)  # type: ignore[arg-type]
        self.clients: list[Client] = []
        self.tasks: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        await self.server.start()
        self.tasks.append(asyncio.ensure_future(self.server.run()))

    async def join(self, **kw: object) -> Client:
        client = Client(SCHEMA, "127.0.0.1", self.server.port, self.server.issue_token("editor"),
                        rate=30, **kw)  # type: ignore[arg-type]
        self.clients.append(client)
        self.tasks.append(asyncio.ensure_future(client.run()))
        await until(lambda: client.connected and client.voice.stream_id != 0, what="a join")
        return client

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.server.close()
        for t in self.tasks:
            t.cancel()


async def talk(speech: npt.NDArray[np.int16], speaker: VoiceSession,
               parties: list[tuple[Client, VoiceSession]], tail_s: float = 0.6,
               each_tick: Callable[[int, float], None] | None = None,
               ) -> dict[int, list[npt.NDArray[np.int16]]]:
    """``speech`` captured by ``speaker`` in real time (a frame every 20 ms), every party pumped
    and every listener's mix popped as a device would (a frame per 20 ms of wall time); returns
    each listener's output frames."""
    loop = asyncio.get_running_loop()
    frames = speech[: len(speech) // FRAME * FRAME].reshape(-1, FRAME)
    out: dict[int, list[npt.NDArray[np.int16]]] = {id(vs): [] for _, vs in parties}
    t0 = loop.time()
    for k in range(len(frames) + round(tail_s / 0.02)):
        await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - loop.time()))
        now = loop.time()
        if k < len(frames):
            speaker.capture(frames[k], now)
        if each_tick is not None:
            each_tick(k, now)
        for client, vs in parties:
            pump(client.voice, vs, now)
            # A device pulls a frame every 20 ms whatever the loop's lateness: catch up.
            frames_due = int((now - t0) / 0.02)
            while vs is not speaker and len(out[id(vs)]) < frames_due:
                out[id(vs)].append(vs.pop(now))
    return out


def mono(frames: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    return np.concatenate(frames)[:, 0] if frames else np.zeros(0, np.int16)


def rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_voice_channel_is_a_core_transport_and_refuses_misuse() -> None:
    client = Client(SCHEMA, "127.0.0.1", 1, "")
    assert isinstance(client.voice, Transport) and isinstance(client.voice, SourcedTransport)
    assert client.voice.stream_id == 0  # not connected
    client.voice.send(b"\x00" * 40)  # dropped and counted, not raised
    assert client.world.telemetry.counters["net.voice.send_dropped"] == 1
    with pytest.raises(VoiceChannelError):
        client.voice.send(b"x", reliable=True)
    assert [voice_stream_id(s) for s in (1, 2, 65535, 65536)] == [1, 2, 65535, 1]


def test_listeners_hear_the_speaker_over_quic_with_mute_and_volume() -> None:
    clip = speech_clip(sentences=2, seed=2)

    async def main() -> None:
        call = Call()
        await call.start()
        try:
            a, b, c, d = [await call.join() for _ in range(4)]
            va, vb, vc, vd = (VoiceSession(x.voice.stream_id) for x in (a, b, c, d))
            sa = a.voice.stream_id
            vc.mixer.set_volume(sa, 0.5)
            vd.mixer.mute(sa)
            out = await talk(clip.clean, va, [(a, va), (b, vb), (c, vc), (d, vd)])
            heard_b, heard_c, heard_d = (mono(out[id(v)]) for v in (vb, vc, vd))
            score = pesq_wb(clip.clean, heard_b)
            assert score > 3.0, f"PESQ-WB {score:.2f} over QUIC on a clean loopback"
            rx = vb.streams[sa].diagnostics()
            assert rx.packets_good > 0.95 * len(clip.clean) / FRAME, rx
            assert rx.packets_lost <= 2 and rx.interruptions == 0, rx
            ratio = rms(heard_c) / rms(heard_b)
            assert 0.45 < ratio < 0.55, f"volume 0.5 gave an RMS ratio of {ratio:.3f}"
            assert rms(heard_d) == 0.0  # muted
            # The muted listener still receives (mute is the listener's choice, not the relay's).
            muted_rx = vd.streams[sa].diagnostics()
            assert muted_rx.packets_received >= 0.95 * va.sender.packets_sent, muted_rx
            st = call.server.voice.stats
            assert st.forged == st.rate_dropped == st.listener_dropped == 0, st
            # Every packet a speaker sent went to three listeners; reports come back from each.
            assert st.relayed >= 3 * va.sender.packets_sent, (st, va.sender.packets_sent)
            assert va.reports_received >= 3, va.reports_received
            tel = call.server.world.telemetry.counters
            assert tel["net.voice.relayed"] == st.relayed
            assert b.world.telemetry.counters["net.voice.delivered"] >= rx.packets_good
        finally:
            call.close()

    run(main)


def test_a_speaker_that_reconnects_is_heard_under_its_new_stream() -> None:
    clip = speech_clip(sentences=1, seed=3)
    half = len(clip.clean) // 2 // FRAME * FRAME

    async def main() -> None:
        call = Call()
        await call.start()
        try:
            a, b = await call.join(), await call.join()
            va, vb = VoiceSession(a.voice.stream_id), VoiceSession(b.voice.stream_id)
            first = a.voice.stream_id
            await talk(clip.clean[:half], va, [(a, va), (b, vb)], tail_s=0.2)
            assert a.carrier is not None
            a.carrier.close("the network went away")
            await until(lambda: a.connected and a.voice.stream_id not in (0, first),
                        what="the reconnection")
            second = a.voice.stream_id
            await talk(clip.clean[half:], va, [(a, va), (b, vb)], tail_s=0.3)
            assert va.sender.stream_id == second  # pump followed the relay's binding
            heard = vb.streams[second].diagnostics()
            assert heard.packets_good > 0.9 * (len(clip.clean) - half) / FRAME, heard
            assert vb.streams[first].diagnostics().packets_good > 0.9 * half / FRAME
            assert vb.dropped["forged_stream"] <= 2  # frames captured before the new binding
            assert call.server.voice.stats.forged == 0
        finally:
            call.close()

    run(main)


def test_a_flooder_is_limited_and_a_forged_stream_refused_while_others_talk() -> None:
    clip = speech_clip(sentences=1, seed=5)
    relay = VoiceRelayConfig(bytes_per_s=12_000, packets_per_s=120, burst_s=0.25)

    async def main() -> None:
        call = Call(voice=relay)
        await call.start()
        try:
            a, listener = await call.join(), await call.join()
            # The flooder's own session would hold it to its budget: lift it, as a hostile
            # client would.
            flood_cfg = replace(SessionConfig(SCHEMA, voice_codecs=("opus",)),
                                voice_bytes_per_s=1e9)
            flooder = await call.join(session_config=flood_cfg)
            deaf = await call.join(session_config=SessionConfig(SCHEMA))  # no voice negotiated
            va, vl, vf = (VoiceSession(x.voice.stream_id) for x in (a, listener, flooder))
            sa, sf = a.voice.stream_id, flooder.voice.stream_id
            junk = VoicePacket(sf, 1, 0, b"\x55" * 600).encode()
            seq = iter(range(10, 1_000_000))

            def attack(k: int, now: float) -> None:
                for _ in range(4):  # 200 datagrams/s, 124 kB/s: ten times the byte budget
                    flooder.voice.send(junk)
                if k % 10 == 0:
                    # The envelope claims the speaker's stream: refused by the server.
                    assert flooder.session is not None
                    flooder.session.send_voice(sa, next(seq), "opus", junk, now)
                    # The envelope is the flooder's but the packet inside claims the speaker's
                    # stream: relayed, and refused by the listener's voice session.
                    forged = VoicePacket(sa, next(seq), 960 * k, b"\x66" * 60).encode()
                    flooder.voice.send(forged)
                    flooder._flush()

            out = await talk(clip.clean, va, [(a, va), (listener, vl), (flooder, vf)],
                             each_tick=attack)
            st = call.server.voice.stats
            tel = call.server.world.telemetry.counters
            seconds = len(out[id(vl)]) * 0.02
            assert st.rate_dropped > 0.7 * 200 * seconds, st
            assert tel["net.voice.rate_dropped"] == st.rate_dropped
            assert st.forged >= 0.9 * seconds * 5 and tel["net.voice.forged"] == st.forged
            assert vl.dropped["forged_stream"] > 0
            # What reached the listener from the flooder stayed within its budget.
            assert sf in vl.streams
            got = vl.streams[sf].diagnostics().packets_received
            assert got <= 120 * (seconds + 0.5), got
            # The honest speaker is unaffected: every packet played, quality intact.
            rx = vl.streams[sa].diagnostics()
            assert rx.packets_lost <= 2 and rx.interruptions == 0 and rx.packets_duplicate == 0
            score = pesq_wb(clip.clean, mono(out[id(vl)]))
            assert score > 3.0, f"PESQ-WB {score:.2f} beside a flooder; {rx}"
            # A client that negotiated no voice is skipped (counted) and sends nothing.
            assert st.no_voice > 0 and not deaf.voice.receive()
            deaf.voice.send(junk)
            assert deaf.world.telemetry.counters["net.voice.send_dropped"] >= 1
        finally:
            call.close()

    run(main)


def _imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_theta_voice_never_imports_theta_net_nor_the_reverse() -> None:
    assert "theta_net" not in _imports(ROOT / "src" / "theta_voice")
    assert "theta_voice" not in _imports(ROOT / "src" / "theta_net")
    code = ("import sys, theta_voice.session, theta_voice.stream, theta_voice.opus; "
            "print(sorted(m for m in sys.modules if m.startswith('theta_net')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "[]"


# -- the relay, sans-I/O, fed hostile voice ------------------------------------------------------
class _Carrier:
    """A carrier that keeps what the server sends (the relay's fan-out, seen without sockets)."""

    max_datagram_size = 1200

    def __init__(self) -> None:
        self.sent: list[tuple[Channel, bytes]] = []
        self.closed = False

    def send(self, channel: Channel, payload: bytes) -> bool:
        self.sent.append((channel, payload))
        return True

    def unreliable_budget(self) -> int:
        return 1 << 20

    def close(self, reason: str = "") -> None:
        self.closed = True


def _joined(server: Server, now: float) -> tuple[Session, _Carrier, ClientInfo]:
    carrier = _Carrier()
    info = server._accept(carrier)
    creds = ClientCredentials.from_seed(os.urandom(32), server.issue_token("editor"))
    session = Session.client(SessionConfig(SCHEMA, voice_codecs=("opus",)), creds)
    session.connect(now)
    for channel, data in session.datagrams_to_send(now):
        info.carrier_received(channel, data)
    for channel, data in carrier.sent:
        session.receive(channel, data, now)
    carrier.sent.clear()
    assert session.connected and server.clients[session.session_id] is info
    return session, carrier, info


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(max_size=300).map(lambda b: ("raw", b)),
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
              st.sampled_from(["opus", "pcm", "", "x" * 40]), st.binary(max_size=900),
              st.booleans()).map(lambda t: ("voice", t)),
), max_size=40))
def test_the_relay_drops_and_counts_hostile_voice_and_forwards_only_the_speakers_own(
        items: list[tuple[str, object]]) -> None:
    server = Server(World(), SCHEMA, voice=VoiceRelayConfig(bytes_per_s=3000, packets_per_s=20))
    speaker, _, info = _joined(server, 1.0)
    listener, to_listener, _ = _joined(server, 1.0)
    pending = _Carrier()
    server._accept(pending)  # connected, no hello yet: not admitted, hears nothing
    own = voice_stream_id(speaker.session_id)
    now, sent_ok = 1.0, 0
    for kind, item in items:
        now += 0.01
        if kind == "raw":
            assert isinstance(item, bytes)
            info.carrier_received(Channel.VOICE, item)
            continue
        stream, seq, codec, payload, honest = item  # type: ignore[misc]
        env = wire.VoiceData(own if honest else stream, seq, codec, payload)
        data = wire.encode_envelope(wire.Envelope(wire.Header(seq, 0, schema_hash=SCHEMA.hash),
                                                  env))
        info.carrier_received(Channel.VOICE, data)
        sent_ok += 1
    st_ = server.voice.stats
    faults = server.faults()
    assert st_.received + st_.forged + faults["malformed"] + faults["oversize"] >= sent_ok
    forwarded = [wire.decode_envelope(d).body for ch, d in to_listener.sent
                 if ch is Channel.VOICE]
    assert len(forwarded) == st_.relayed <= st_.received - st_.rate_dropped
    for body in forwarded:
        assert isinstance(body, wire.VoiceData) and body.stream == own
        assert body.codec == "opus"  # the only codec the listener negotiated
    assert st_.relayed_bytes == sum(len(b.payload) for b in forwarded)  # type: ignore[union-attr]
    assert st_.relayed_bytes <= 3000 * 0.25 + 3000 * (now - 1.0) + 1
    assert listener.connected and server.clients
    assert not pending.sent
