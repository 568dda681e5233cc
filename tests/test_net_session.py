"""The sans-I/O session: handshake, refusals, heartbeats, channels, timers, faults."""

from __future__ import annotations

import pytest

from tests.net_support import AUTHORITY, SCHEMA, admission, config, credentials, pair
from theta_ecs.commandlog import author_id
from theta_ecs.serialization.packet import AckPacket, ChunkRequest, encode_packet
from theta_ecs.wire import envelope as wire
from theta_net.carrier import Channel
from theta_net.errors import MessageTooLargeError, SessionStateError
from theta_net.session import (
    CommandsReceived,
    Connected,
    Disconnected,
    HeartbeatMeasured,
    RefusalCode,
    Refused,
    RosterReceived,
    SessionState,
    StateReceived,
    TokenAuthority,
    VoiceReceived,
    drain_events,
    roundtrip,
    transfer,
)


def connected_pair(**kw: object):  # type: ignore[no-untyped-def]
    client, server = pair(**kw)  # type: ignore[arg-type]
    client.connect(0.0)
    server.accept(0.0)
    roundtrip(client, server, 0.0)
    return client, server


def test_handshake_connects_both_sides_with_the_intersection() -> None:
    creds = credentials("editor")
    client, server = pair(
        client_config=config(features=("delta", "zstd"), dictionary_ids=(7, 9),
                             voice_codecs=("opus", "pcm"), max_datagram=1100),
        server_config=config(features=("zstd", "interest", "delta"), dictionary_ids=(9,),
                             voice_codecs=("pcm",), max_datagram=1200),
        creds=creds,
    )
    client.connect(0.0)
    server.accept(0.0)
    roundtrip(client, server, 0.0)
    s_events = drain_events(server)
    c_events = drain_events(client)
    assert isinstance(s_events[0], Connected) and isinstance(c_events[0], Connected)
    for ev in (s_events[0], c_events[0]):
        assert ev.author == author_id(creds.public_key)
        assert ev.role == "editor"
        neg = ev.negotiated
        assert neg.features == ("zstd", "delta")  # the server's order
        assert neg.dictionary_ids == (9,)
        assert neg.voice_codecs == ("pcm",)
        assert neg.max_datagram == 1100
        assert set(neg.channels) == set(Channel)
    assert client.state is server.state is SessionState.CONNECTED
    assert s_events[0].session_id == c_events[0].session_id > 0


def refused(client_config=None, server_config=None, creds=None, adm=None):  # type: ignore[no-untyped-def]
    client, server = pair(client_config, server_config, creds, adm)
    client.connect(0.0)
    server.accept(0.0)
    roundtrip(client, server, 0.0)
    s_ev = drain_events(server)
    c_ev = drain_events(client)
    assert isinstance(s_ev[0], Refused), s_ev
    assert isinstance(c_ev[0], Refused), c_ev
    assert isinstance(c_ev[-1], Disconnected) and c_ev[-1].by_peer
    assert server.closed and client.closed
    assert s_ev[0] == c_ev[0]
    return c_ev[0]


def test_schema_mismatch_names_both_hashes() -> None:
    from theta_ecs.scenes.crowd import CrowdScene
    from theta_ecs.serialization.schema import ReplicationSchema

    other = ReplicationSchema(CrowdScene.components)
    r = refused(client_config=config(schema=other))
    assert r.code is RefusalCode.SCHEMA_HASH
    assert r.here == f"0x{SCHEMA.hash:016x}" and r.there == f"0x{other.hash:016x}"
    assert r.here in r.reason and r.there in r.reason


def test_manifest_mismatch_names_both_hashes() -> None:
    r = refused(client_config=config(manifest_hash=0x1234))
    assert r.code is RefusalCode.MANIFEST_HASH
    assert (r.here, r.there) == ("0x0000000000abcdef", "0x0000000000001234")


def test_expired_forged_and_missing_tokens_are_refused() -> None:
    assert refused(creds=credentials(ttl=1.0)).code is RefusalCode.TOKEN_EXPIRED
    other = TokenAuthority()
    assert refused(creds=credentials(authority=other)).code is RefusalCode.TOKEN_FORGED
    good = credentials()
    raw = bytearray(good.token.encode())
    raw[-5] = ord("A") if raw[-5] != ord("A") else ord("B")  # flip a signature byte
    from theta_net.session import ClientCredentials

    tampered = ClientCredentials(good.key, raw.decode(), "")
    assert refused(creds=tampered).code in (RefusalCode.TOKEN_FORGED, RefusalCode.TOKEN_MALFORMED)
    assert refused(creds=ClientCredentials(good.key, "", "")).code is RefusalCode.NO_TOKEN
    assert refused(creds=ClientCredentials(good.key, "junk", "")).code is (
        RefusalCode.TOKEN_MALFORMED)


def test_role_claim_above_the_token_is_refused_and_below_is_granted() -> None:
    r = refused(creds=credentials("viewer", claim="admin"))
    assert r.code is RefusalCode.ROLE and (r.here, r.there) == ("viewer", "admin")
    client, server = connected_pair(creds=credentials("admin", claim="viewer"))
    assert server.role == client.role == "viewer"


def test_replayed_hello_is_refused() -> None:
    adm = admission()
    client, server = pair(adm=adm)
    client.connect(0.0)
    server.accept(0.0)
    hello = client.datagrams_to_send(0.0)
    for ch, data in hello:
        server.receive(ch, data, 0.0)
    assert server.connected
    replay = pair(adm=adm)[1]
    replay.accept(0.0)
    for ch, data in hello:
        replay.receive(ch, data, 0.0)
    (ev,) = [e for e in drain_events(replay) if isinstance(e, Refused)]
    assert ev.code is RefusalCode.REPLAY


def test_pinned_fingerprint_mismatch_is_refused() -> None:
    r = refused(creds=credentials(fingerprint=b"\x01" * 32),
                adm=admission(fingerprint=b"\x02" * 32))
    assert r.code is RefusalCode.FINGERPRINT
    assert (r.here, r.there) == ("02" * 32, "01" * 32)


def test_channels_without_state_are_refused_and_small_datagrams_too() -> None:
    r = refused(client_config=config(channels=(Channel.RELIABLE,)))
    assert r.code is RefusalCode.CHANNELS
    r = refused(client_config=config(max_datagram=100))
    assert r.code is RefusalCode.DATAGRAM_SIZE and (r.here, r.there) == ("1200", "100")


def test_server_full_is_refused() -> None:
    r = refused(adm=admission(room=lambda: False))
    assert r.code is RefusalCode.SERVER_FULL


def test_handshake_timeout_refuses_a_silent_client() -> None:
    _, server = pair()
    server.accept(0.0)
    assert server.get_timer() == pytest.approx(5.0)
    server.handle_timer(4.9)
    assert server.state is SessionState.HANDSHAKE
    server.handle_timer(5.0)
    (ev, end) = drain_events(server)
    assert isinstance(ev, Refused) and ev.code is RefusalCode.HANDSHAKE_TIMEOUT
    assert isinstance(end, Disconnected) and server.closed


def test_channels_carry_state_commands_voice_and_roster_with_byte_counters() -> None:
    client, server = connected_pair()
    drain_events(client), drain_events(server)
    ack = encode_packet(AckPacket(5, 0b11))
    request = encode_packet(ChunkRequest(9, (1, 3)))
    client.send_state(ack, 0.1)
    client.send_state(request, 0.1)
    client.send_commands(b"\x01command bytes", 0.1)
    assert client.send_voice(1, 42, "pcm", b"\x00" * 320, 0.1) is False  # no common codec
    server.send_roster(((b"k" * 32, 2),), 0.1)
    roundtrip(client, server, 0.1)
    got = drain_events(server)
    states = [e.packet for e in got if isinstance(e, StateReceived)]
    assert states == [ack, request]
    assert [e.packet for e in got if isinstance(e, CommandsReceived)] == [b"\x01command bytes"]
    assert [e.members for e in drain_events(client) if isinstance(e, RosterReceived)] == [
        ((b"k" * 32, 2),)]
    sent = client.stats.bytes_sent
    assert sent["STATE"] > 0 and sent["RELIABLE"] > 0
    assert server.stats.bytes_received["STATE"] == sent["STATE"]
    assert server.stats.bytes_received["RELIABLE"] == client.stats.bytes_sent["RELIABLE"]


def test_voice_flows_within_its_budget_and_is_dropped_beyond() -> None:
    client, server = connected_pair(
        client_config=config(voice_codecs=("opus",), voice_bytes_per_s=2000.0),
        server_config=config(voice_codecs=("opus",)),
    )
    drain_events(server)
    sent = sum(client.send_voice(0, i, "opus", b"v" * 100, 1.0) for i in range(40))
    assert 10 <= sent < 40
    assert client.stats.voice_over_budget == 40 - sent
    transfer(client, server, 1.0)
    voices = [e for e in drain_events(server) if isinstance(e, VoiceReceived)]
    assert [v.sequence for v in voices] == list(range(sent))
    assert voices[0].payload == b"v" * 100 and voices[0].codec == "opus"


def test_heartbeats_measure_rtt_and_loss() -> None:
    client, server = connected_pair()
    drain_events(client)
    t = 0.0
    measured: list[HeartbeatMeasured] = []
    for i in range(40):
        t += 0.25
        client.handle_timer(t)
        # client -> server takes 31.25 ms, server -> client 15.625 ms; every 4th client
        # heartbeat is lost (the server echoes an older one, held longer: still 46.9 ms)
        for ch, data in client.datagrams_to_send(t):
            if not (ch is Channel.STATE and i % 4 == 3):
                server.receive(ch, data, t + 0.03125)
        server.handle_timer(t + 0.03125)
        for ch, data in server.datagrams_to_send(t + 0.03125):
            client.receive(ch, data, t + 0.046875)
        measured += [e for e in drain_events(client) if isinstance(e, HeartbeatMeasured)]
    assert measured
    last = measured[-1]
    # The echo delay is subtracted: the RTT is the path's 46.9 ms, not the 250 ms interval.
    assert last.srtt == pytest.approx(0.046875, abs=0.001)
    assert last.rttvar < 0.01
    assert server.loss.loss == pytest.approx(0.25, abs=0.05)
    assert client.loss.loss == 0.0


def test_silence_times_out_after_ten_seconds() -> None:
    client, _server = connected_pair()
    drain_events(client)
    assert client.get_timer() is not None
    client.handle_timer(9.9)
    assert client.connected
    client.handle_timer(10.0)
    (ev,) = [e for e in drain_events(client) if isinstance(e, Disconnected)]
    assert "timeout" in ev.reason and not ev.by_peer
    assert client.closed and client.get_timer() is None


def test_close_reaches_the_peer() -> None:
    client, server = connected_pair()
    drain_events(server)
    client.close(1.0, "bye")
    assert client.closed
    roundtrip(client, server, 1.0)
    (ev,) = drain_events(server)
    assert isinstance(ev, Disconnected) and ev.by_peer and ev.reason == "bye"
    client.close(2.0)  # idempotent


def test_misuse_raises_and_illegal_transitions_are_refused() -> None:
    client, server = pair()
    with pytest.raises(SessionStateError):
        client.send_state(encode_packet(AckPacket(1, 0)), 0.0)
    with pytest.raises(SessionStateError):
        server.connect(0.0)
    client.connect(0.0)
    with pytest.raises(SessionStateError) as info:
        client.connect(0.0)
    assert info.value.state == "handshake"
    client, server = connected_pair(client_config=config(max_reliable_message=400))
    with pytest.raises(MessageTooLargeError) as too:
        client.send_commands(b"x" * 401, 0.0)
    assert (too.value.size, too.value.limit) == (401, 400)


def test_peer_faults_are_counted_not_raised() -> None:
    _client, server = connected_pair()
    drain_events(server)
    stats = server.stats
    server.receive(Channel.STATE, b"garbage!", 1.0)
    server.receive(Channel.RELIABLE, b"\x00" * 40, 1.0)
    server.receive(Channel.VOICE, b"THNWTHNW", 1.0)
    server.receive(Channel.STATE, b"x" * 70_000, 1.0)
    # a well-formed message the state does not expect: a second hello
    hello = wire.encode_envelope(wire.Envelope(
        wire.Header(0, schema_hash=SCHEMA.hash),
        wire.Hello(0, b"k" * 32, "", b"t", nonce=b"n" * 16)))
    server.receive(Channel.RELIABLE, hello, 1.0)
    assert stats.malformed == 3 and stats.oversize == 1 and stats.unexpected == 1
    assert server.connected and drain_events(server) == []
    server.close(2.0)
    server.receive(Channel.STATE, b"late", 2.0)
    assert stats.after_close == 1


def test_token_issue_and_verify_round_trip() -> None:
    token = AUTHORITY.issue("admin", now=100.0, ttl=50.0, fingerprint=b"\x07" * 32)
    claims = AUTHORITY.verify(token, 120.0)
    assert claims.role.name == "ADMIN" and claims.expires_at == 150
    assert claims.fingerprint_hex == "07" * 32
    from theta_net.errors import TokenExpiredError, TokenMalformedError

    with pytest.raises(TokenExpiredError) as exp:
        AUTHORITY.verify(token, 151.0)
    assert (exp.value.expires_at, exp.value.now) == (150, 151.0)
    with pytest.raises(TokenMalformedError):
        AUTHORITY.issue("wizard", now=0.0)
