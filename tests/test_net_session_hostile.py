"""The sans-I/O session against a hostile peer: fields a well-behaved peer never sends."""

from __future__ import annotations

from theta_ecs.commandlog import author_id
from theta_ecs.wire import envelope as wire
from theta_net.carrier import Channel
from theta_net.client import Client
from theta_net.session import (
    Connected,
    Disconnected,
    RosterReceived,
    Session,
    SessionState,
    drain_events,
    roundtrip,
)

from .net_support import SCHEMA, config, credentials, pair


def welcomed(welcome: wire.Welcome, **client: object) -> Session:
    session = Session.client(config(**client), credentials())
    session.connect(0.0)
    session.datagrams_to_send(0.0)
    header = wire.Header(0, wire.timestamp_us(0.0), schema_hash=SCHEMA.hash)
    session.receive(Channel.RELIABLE, wire.encode_envelope(wire.Envelope(header, welcome)), 0.01)
    return session


def test_a_welcome_with_a_datagram_size_the_client_never_offered_closes_it() -> None:
    for size in (0, 100, 1201, 65_535):
        session = welcomed(wire.Welcome(1, 2, "editor", channels=(0, 1, 2), max_datagram=size))
        assert session.state is SessionState.CLOSED, size
        assert session.stats.malformed == 1
        events = []
        while (event := session.next_event()) is not None:
            events.append(event)
        assert not any(isinstance(e, Connected) for e in events)
        assert isinstance(events[-1], Disconnected) and "max datagram" in events[-1].reason
        assert [c for c, _ in session.datagrams_to_send(0.02)] == [Channel.RELIABLE]  # a Close


def test_a_welcome_negotiates_only_what_the_client_offered() -> None:
    session = welcomed(
        wire.Welcome(1, 2, "editor", features=("delta", "compact-state", "bogus"),
                     voice_codecs=("opus", "pcm-9"), channels=(0, 2, 7), max_datagram=1000,
                     dictionary_ids=(5,)),
        features=("delta",), voice_codecs=("opus",))
    assert session.connected
    neg = session.negotiated
    assert neg is not None
    assert neg.features == ("delta",) and neg.voice_codecs == ("opus",)
    assert neg.dictionary_ids == () and neg.channels == (Channel.STATE, Channel.RELIABLE)
    # compact-state was never offered: state travels in envelopes, so send_state wraps it
    assert not session._compact_state


def _colliding_keys() -> tuple[bytes, bytes]:
    """Two 32-byte keys whose author ids share their low 32 bits (a birthday search)."""
    seen: dict[int, bytes] = {}
    for i in range(1 << 22):
        key = i.to_bytes(32, "little")
        low = author_id(key) & 0xFFFFFFFF
        if low in seen:
            return seen[low], key
        seen[low] = key
    raise AssertionError("no collision found")


def test_a_roster_with_an_unknown_role_is_dropped_and_counted() -> None:
    client, server = pair(creds=credentials())
    client.connect(0.0)
    server.accept(0.0)
    roundtrip(client, server, 0.0)
    drain_events(client)
    header = wire.Header(0, wire.timestamp_us(0.1), schema_hash=SCHEMA.hash)
    for role in (0, 4, 99):
        roster = wire.RosterUpdate(((bytes(32), 2), (bytes(range(32)), role)))
        client.receive(Channel.RELIABLE, wire.encode_envelope(wire.Envelope(header, roster)), 0.1)
    assert client.stats.malformed == 3
    assert not [e for e in drain_events(client) if isinstance(e, RosterReceived)]
    assert client.connected


def test_a_client_skips_roster_members_it_cannot_add_and_counts_them() -> None:
    first, second = _colliding_keys()
    client = Client(SCHEMA, "127.0.0.1", 1, credentials().token)
    client._on_roster(RosterReceived(((first, 2), (second, 2))))  # raised ValueError before
    assert author_id(first) in client.roster and author_id(second) not in client.roster
    assert client.world.telemetry.counters["net.roster_refused"] == 1
