"""Fuzzing a connected session: whatever bytes arrive on whatever channel, it neither raises
nor changes state except through a well-formed message; every drop is counted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.net_support import credentials, pair
from theta_ecs.serialization.packet import AckPacket, encode_packet
from theta_net.carrier import Channel
from theta_net.session import Session, SessionState, drain_events, roundtrip

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def connected() -> tuple[Session, Session]:
    client, server = pair(creds=credentials())
    client.connect(0.0)
    server.accept(0.0)
    roundtrip(client, server, 0.0)
    drain_events(client), drain_events(server)
    return client, server


CLIENT, SERVER = connected()
CLIENT.send_state(encode_packet(AckPacket(3, 1)), 0.1)
CLIENT.send_commands(b"\x01\x02\x03", 0.1)
CLIENT.send_interest((1.0, 2.0, 3.0), 50.0, 0.1)
REAL = [data for _, data in CLIENT.datagrams_to_send(0.1)]


@FUZZ
@given(st.sampled_from(list(Channel)), st.binary(max_size=600))
def test_random_bytes_on_any_channel(channel: Channel, data: bytes) -> None:
    client, server = connected()
    for side in (client, server):
        before = side.stats.malformed + side.stats.unexpected + side.stats.oversize
        side.receive(channel, data, 1.0)
        events = drain_events(side)
        after = side.stats.malformed + side.stats.unexpected + side.stats.oversize
        assert side.state is SessionState.CONNECTED
        assert after == before + 1 or events, (channel, data)


@FUZZ
@given(st.sampled_from(REAL), st.sampled_from(list(Channel)),
       st.lists(st.integers(0, 10**6), min_size=1, max_size=6), st.integers(0, 10**6))
def test_mangled_real_messages(data: bytes, channel: Channel, flips: list[int], cut: int) -> None:
    buf = bytearray(data)
    for f in flips:
        bit = f % (len(buf) * 8)
        buf[bit // 8] ^= 1 << (bit % 8)
    server = connected()[1]
    server.receive(channel, bytes(buf[: len(buf) - cut % len(buf)]), 1.0)
    server.receive(channel, bytes(buf), 1.0)
    drain_events(server)
    assert server.state in (SessionState.CONNECTED, SessionState.CLOSED)


@FUZZ
@given(st.binary(max_size=400))
def test_handshake_garbage_never_connects(data: bytes) -> None:
    _, server = pair()
    server.accept(0.0)
    server.receive(Channel.RELIABLE, data, 0.1)
    assert server.state is not SessionState.CONNECTED


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.binary(min_size=138, max_size=138).map(
                     lambda b: "theta1." + __import__("base64").urlsafe_b64encode(b).decode())))
def test_token_decoder_refuses_junk_with_token_errors(token: bytes | str) -> None:
    from tests.net_support import AUTHORITY, WALL
    from theta_net.errors import TokenError

    try:
        AUTHORITY.verify(token, WALL)
    except TokenError:
        return
    raise AssertionError("a junk token verified")


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=20), st.lists(st.integers(1, 40), max_size=10))
def test_deframer_returns_exactly_the_framed_messages(messages: list[bytes],
                                                      cuts: list[int]) -> None:
    from theta_net.session import Deframer, frame

    stream = b"".join(frame(m) for m in messages)
    d = Deframer(max_message=64)
    out: list[bytes] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        out += d.feed(stream[pos : pos + cut])
        pos += cut
    out += d.feed(stream[pos:])
    assert out == messages and d.buffered == 0 and not d.failed


@FUZZ
@given(st.binary(max_size=200))
def test_deframer_never_buffers_past_its_limit(junk: bytes) -> None:
    from theta_net.session import Deframer

    d = Deframer(max_message=32)
    for _ in range(3):
        d.feed(junk)
    assert d.failed or d.buffered <= 3 * len(junk)
    assert d.buffered <= 32 + 4 or d.failed


@FUZZ
@given(st.tuples(*[st.floats(width=32, allow_nan=False, allow_infinity=False)] * 3),
       st.floats(width=32, min_value=0.0, allow_infinity=False))
def test_interest_areas_reach_the_server_as_sent(center: tuple[float, float, float],
                                                 radius: float) -> None:
    from theta_net.session import InterestReceived

    client, server = connected()
    client.send_interest(center, radius, 1.0)
    for channel, data in client.datagrams_to_send(1.0):
        server.receive(channel, data, 1.0)
    assert drain_events(server) == [InterestReceived(center, radius)]
