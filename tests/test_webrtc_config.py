"""ICE server configuration and the SDP pre-check: parse what operators write, refuse typos."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_net.webrtc.carrier import FragmentError, FragmentJoiner, fragments
from theta_net.webrtc.ice import IceConfigError, IceServer, ice_servers_from_env, parse_ice_servers
from theta_net.webrtc.sdp import MAX_SDP_BYTES, SdpError, validate_sdp


def test_url_list_with_credentials_and_defaults() -> None:
    servers = parse_ice_servers(
        "stun:stun.example.org, turn:alice:s%40cret@turn.example.org:3479?transport=tcp\n"
        "turns:[2001:db8::1]"
        .replace("turns:[2001:db8::1]", "turns:bob:pw@[2001:db8::1]")
    )
    assert servers == [
        IceServer("stun:stun.example.org:3478"),
        IceServer("turn:turn.example.org:3479?transport=tcp", "alice", "s@cret"),
        IceServer("turns:[2001:db8::1]:5349", "bob", "pw"),
    ]
    assert servers[1].is_turn and not servers[0].is_turn
    assert servers[1].to_browser() == {
        "urls": "turn:turn.example.org:3479?transport=tcp", "username": "alice",
        "credential": "s@cret",
    }


def test_browser_json_form() -> None:
    text = ('[{"urls": ["turn:t.example:3478", "turn:t.example:443?transport=tcp"],'
            ' "username": "u", "credential": "c"}, {"urls": "stun:s.example:19302"}]')
    servers = parse_ice_servers(text)
    assert [s.url for s in servers] == [
        "turn:t.example:3478", "turn:t.example:443?transport=tcp", "stun:s.example:19302"]
    assert servers[0].username == "u" and servers[2].credential is None


def test_env_unset_means_host_candidates_only() -> None:
    assert ice_servers_from_env({}) == []
    assert ice_servers_from_env({"THETA_ICE_SERVERS": "  "}) == []
    assert len(ice_servers_from_env({"THETA_ICE_SERVERS": "stun:a.b"})) == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://example.org", "scheme"),
        ("turn:turn.example.org", "username and a credential"),
        ("stun:u:p@stun.example.org", "no credentials"),
        ("stun:stun.example.org:70000", "port"),
        ("turn:u:p@t.example?transport=sctp", "transport"),
        ("stun:s.example?transport=udp", "TURN only"),
        ("stun:", "not a STUN/TURN URL"),
        ('[{"urls": 5}]', "'urls'"),
        ('[{"username": "x"}]', "'urls'"),
        ("[not json", "JSON"),
        ('[{"urls": "turn:t.example", "username": "u", "credential": 3}]', "'credential'"),
    ],
)
def test_bad_entries_are_named(text: str, problem: str) -> None:
    with pytest.raises(IceConfigError) as info:
        parse_ice_servers(text)
    assert problem in info.value.problem
    assert "THETA_ICE_SERVERS" in str(info.value)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120))
def test_ice_parser_never_crashes(text: str) -> None:
    try:
        servers = parse_ice_servers(text)
    except IceConfigError:
        return
    for server in servers:
        assert server.url.split(":")[0] in {"stun", "stuns", "turn", "turns"}


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
    "a=sctp-port:5000\r\n"
)


def test_valid_offer_passes_and_is_normalised() -> None:
    assert validate_sdp(OFFER.replace("\r\n", "\n")) == OFFER


@pytest.mark.parametrize(
    ("sdp", "problem"),
    [
        (42, "not a string"),
        ("", "v=0"),
        ("hello", "v=0"),
        (OFFER.replace("a=ice-pwd", "a=ice-pw_"), "ice-pwd"),
        (OFFER.replace("m=application 9 UDP/DTLS/SCTP", "m=audio 9 RTP/AVP"), "data-channel"),
        (OFFER.replace("sha-256 AB:", "sha-256 ZZ:"), "fingerprint"),
        (OFFER.replace("s=-", "s=\x00"), "line 3"),
        (OFFER + "a=x:" + "y" * MAX_SDP_BYTES + "\r\n", "too large"),
    ],
)
def test_malformed_sdp_is_refused_with_the_problem(sdp: object, problem: str) -> None:
    with pytest.raises(SdpError) as info:
        validate_sdp(sdp)
    assert problem in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_sdp_check_never_crashes_on_garbage(data: bytes) -> None:
    text = data.decode("latin-1")
    with contextlib.suppress(SdpError):
        validate_sdp(OFFER[: len(OFFER) // 2] + text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_fragment_joiner_takes_any_bytes_and_stays_bounded(pieces: list[bytes]) -> None:
    joiner = FragmentJoiner(max_message=100)
    for piece in pieces:
        try:
            message = joiner.feed(piece)
        except FragmentError as exc:
            assert exc.counter in {"reliable_bad_fragment", "reliable_oversized"}
            assert joiner.buffered == 0
            continue
        assert joiner.buffered <= 100
        if message is not None:
            assert len(message) <= 100 and joiner.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=2, max_value=300))
def test_fragments_round_trip(payload: bytes, size: int) -> None:
    joiner = FragmentJoiner(max_message=1000)
    pieces = fragments(payload, size)
    assert all(len(p) <= size for p in pieces)
    out = [joiner.feed(p) for p in pieces]
    assert out[:-1] == [None] * (len(pieces) - 1) and out[-1] == payload
