"""The signaling service over real HTTP on 127.0.0.1, with real aiortc offers and answers.

Every kind of bad input gets its status and its counter, and never disturbs another room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

import aiohttp

from theta_net.carrier import Channel
from theta_net.errors import ConnectError
from theta_net.signaling import (
    OfferRefused,
    PendingOffer,
    SignalingConfig,
    SignalingConfigError,
    SignalingLimits,
    SignalingService,
    TokenRejected,
)
from theta_net.signaling.remote import RemoteRoomHost
from theta_net.webrtc import open_offer
from theta_net.webrtc.acceptor import WebRtcAcceptor
from theta_net.webrtc.carrier import WebRtcCarrier
from theta_net.webrtc.connector import SignalingError, connect_webrtc

GOOD = "good-join-token"


def verify(room: str, token: str) -> dict[str, str]:
    if token != GOOD:
        raise TokenRejected("the token's signature does not verify")
    return {"room": room}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_ICE_HOST_ADDRESSES", "127.0.0.1")


def serve(
    body: Callable[[SignalingService, str], Awaitable[None]],
    limits: SignalingLimits | None = None,
    host_token: str | None = None,
) -> None:
    async def main() -> None:
        service = SignalingService(verify, limits=limits, host_token=host_token)
        port = await service.start("127.0.0.1", 0)
        try:
            await body(service, f"http://127.0.0.1:{port}")
        finally:
            await service.stop()

    asyncio.run(main())


async def post(url: str, doc: Any = None, token: str | None = GOOD, raw: bytes | None = None
               ) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": doc}
        async with http.post(url, headers=headers, **kwargs) as response:
            return response.status, await response.json(content_type=None)


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[Channel, bytes]] = []

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        self.got.append((channel, payload))

    def carrier_closed(self, reason: str) -> None:
        pass


def test_offer_answer_through_an_in_process_host_opens_a_carrier() -> None:
    async def body(service: SignalingService, base: str) -> None:
        accepted: list[tuple[WebRtcCarrier, PendingOffer]] = []
        acceptor = WebRtcAcceptor(lambda c, o: accepted.append((c, o)), ice_timeout=10,
                                  counters=service.counters)
        service.host_room("cubes", acceptor)
        sink = Sink()
        client = await connect_webrtc(f"{base}/rooms/cubes", GOOD, sink, timeout=10)
        try:
            for _ in range(200):
                if accepted:
                    break
                await asyncio.sleep(0.02)
            server, offer = accepted[0]
            assert offer.claims == {"room": "cubes"} and offer.room == "cubes"
            server.send(Channel.RELIABLE, b"welcome")
            for _ in range(200):
                if sink.got:
                    break
                await asyncio.sleep(0.01)
            assert sink.got == [(Channel.RELIABLE, b"welcome")]
            assert service.counters["answers_sent"] == 1
            assert service.counters["connected"] == 1
        finally:
            await client.aclose()
            await acceptor.close()
            for carrier, _ in accepted:
                await carrier.aclose()

    serve(body)


def test_bad_input_gets_a_clear_status_and_a_counter() -> None:
    async def body(service: SignalingService, base: str) -> None:
        async def never(offer: PendingOffer) -> str:
            raise OfferRefused("not expected here")

        service.host_room("r", never)
        carrier, offer = await open_offer()
        await carrier.aclose()
        url = f"{base}/rooms/r/offer"
        cases: list[tuple[tuple[int, Any], int, str]] = [
            (await post(url, {"type": "offer", "sdp": offer}, token=None), 401, "missing_token"),
            (await post(url, {"type": "offer", "sdp": offer}, token="forged"), 403, "bad_token"),
            (await post(f"{base}/rooms/nobody/offer", {"type": "offer", "sdp": offer}), 404,
             "no_room"),
            (await post(url, raw=b"{not json"), 400, "bad_json"),
            (await post(url, [1, 2]), 400, "bad_json"),
            (await post(url, {"type": "answer", "sdp": offer}), 400, "malformed_sdp"),
            (await post(url, {"type": "offer", "sdp": "v=0\r\nhello"}), 400, "malformed_sdp"),
            (await post(url, raw=b"x" * (service.limits.max_body_bytes + 10)), 413,
             "body_too_large"),
            (await post(url, {"type": "offer", "sdp": offer}), 400, "refused_by_host"),
        ]
        for (status, doc), expected, counter in cases:
            assert status == expected, (counter, doc)
            assert doc["reason"] == counter and doc["error"]
            assert service.counters[counter] >= 1
        assert service.counters["answers_sent"] == 0

    serve(body)


def test_offer_flood_is_bounded_per_room_and_other_rooms_are_unaffected() -> None:
    limits = SignalingLimits(max_pending_per_room=3, answer_timeout_s=2.5)

    async def body(service: SignalingService, base: str) -> None:
        stall = asyncio.Event()

        async def stalled(offer: PendingOffer) -> str:
            await stall.wait()
            raise OfferRefused("stalled")

        accepted: list[WebRtcCarrier] = []
        acceptor = WebRtcAcceptor(lambda c, o: accepted.append(c))
        service.host_room("flooded", stalled)
        service.host_room("calm", acceptor)
        carrier, offer = await open_offer()
        await carrier.aclose()
        doc = {"type": "offer", "sdp": offer}
        flood = [asyncio.ensure_future(post(f"{base}/rooms/flooded/offer", doc))
                 for _ in range(12)]
        await asyncio.sleep(0.3)
        # while the flooded room is at its bound, the calm room still connects
        client = await connect_webrtc(f"{base}/rooms/calm", GOOD, Sink(), timeout=10)
        results = await asyncio.gather(*flood)
        statuses = sorted(status for status, _ in results)
        assert statuses == [429] * 9 + [504] * 3
        assert service.counters["room_full"] == 9
        assert service.counters["answer_timeout"] == 3
        assert service.counters["answers_sent"] == 1
        assert not service.rooms["flooded"].pending  # nothing left behind
        await client.aclose()
        await acceptor.close()
        for c in accepted:
            await c.aclose()

    serve(body, limits)


def test_a_peer_that_never_completes_ice_is_timed_out_and_counted() -> None:
    async def body(service: SignalingService, base: str) -> None:
        accepted: list[WebRtcCarrier] = []
        acceptor = WebRtcAcceptor(lambda c, o: accepted.append(c), ice_timeout=1.0,
                                  counters=service.counters)
        service.host_room("r", acceptor)
        ghost, offer = await open_offer()
        await ghost.aclose()  # the offer names candidates nobody answers on any more
        status, doc = await post(f"{base}/rooms/r/offer", {"type": "offer", "sdp": offer})
        assert status == 200 and doc["type"] == "answer"
        assert len(acceptor.connecting) == 1
        for _ in range(300):
            if service.counters["ice_timeout"] or service.counters["ice_failed"]:
                break
            await asyncio.sleep(0.02)
        assert service.counters["ice_timeout"] + service.counters["ice_failed"] == 1
        assert not acceptor.connecting and not accepted

    serve(body)


def test_a_remote_host_polls_offers_and_posts_answers() -> None:
    host_token = "h" * 24
    limits = SignalingLimits(host_poll_s=0.3)

    async def body(service: SignalingService, base: str) -> None:
        headers = {"Authorization": f"Bearer {host_token}"}
        accepted: list[WebRtcCarrier] = []
        acceptor = WebRtcAcceptor(lambda c, o: accepted.append(c))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/rooms/remote/next-offer",
                                headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 403
            async with http.get(f"{base}/rooms/remote/next-offer", headers=headers) as r:
                assert r.status == 204  # the poll timed out: nobody offered

            remote = RemoteRoomHost(f"{base}/rooms/remote", host_token, acceptor)
            await remote.start(timeout=0.1)
            client = await connect_webrtc(f"{base}/rooms/remote", GOOD, Sink(), timeout=10)
            assert remote.answered == 1
            await remote.stop()
            refused = RemoteRoomHost(f"{base}/rooms/other", "wrong" * 5, acceptor)
            with pytest.raises(ConnectError):
                await refused.start()
            await refused.stop()
            async with http.post(f"{base}/rooms/remote/answer/999", headers=headers,
                                 json={"type": "answer", "sdp": "x"}) as r:
                assert r.status == 410
        assert client.is_open
        await client.aclose()
        await acceptor.close()
        for c in accepted:
            await c.aclose()

    serve(body, limits, host_token)


def test_client_sees_the_refusal_as_a_typed_error() -> None:
    async def body(service: SignalingService, base: str) -> None:
        with pytest.raises(SignalingError) as info:
            await connect_webrtc(f"{base}/rooms/none", "forged", Sink(), timeout=5)
        assert info.value.status == 403 and "signature" in info.value.reason
        with pytest.raises(SignalingError) as info:
            await connect_webrtc("http://127.0.0.1:9/rooms/x", GOOD, Sink(), timeout=2)
        assert info.value.status == 0

    serve(body)


def test_configuration_from_the_environment() -> None:
    cfg = SignalingConfig.from_env({})
    assert (cfg.host, cfg.port, cfg.room_url, cfg.room) == (
        "127.0.0.1", 8765, "http://127.0.0.1:8765/rooms/default", "default")
    cfg = SignalingConfig.from_env({
        "THETA_SIGNALING_BIND": "0.0.0.0:9000",
        "THETA_SIGNALING_URL": "https://play.example.org/rooms/cubes",
        "THETA_SIGNALING_TOKEN": "t" * 20,
    })
    assert (cfg.port, cfg.room, cfg.host_token) == (9000, "cubes", "t" * 20)
    for env in ({"THETA_SIGNALING_BIND": "nohost"}, {"THETA_SIGNALING_BIND": "a:99999"},
                {"THETA_SIGNALING_URL": "ftp://x/rooms/a"},
                {"THETA_SIGNALING_URL": "http://x/lobby"},
                {"THETA_SIGNALING_TOKEN": "short"}):
        with pytest.raises(SignalingConfigError) as info:
            SignalingConfig.from_env(env)
        assert next(iter(env)) in str(info.value)


def test_theta_signal_runs_alone_and_a_host_serves_its_room_from_elsewhere(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from theta_ecs.cli import main

    assert main(["signal", "--bind", "127.0.0.1:0", "--duration", "0.2"]) == 0
    out = capsys.readouterr()
    assert "listening on http://127.0.0.1:" in out.out and "THETA_SIGNALING_TOKEN" in out.err
    assert main(["signal", "--bind", "nowhere"]) == 2

    from theta_net.webrtc.transport import WebRtcTransport

    host_token = "s" * 20

    async def body(service: SignalingService, base: str) -> None:
        monkeypatch.setenv("THETA_SIGNALING_URL", f"{base}/rooms/cubes")
        monkeypatch.setenv("THETA_SIGNALING_TOKEN", host_token)
        opened: list[WebRtcCarrier] = []

        def accept(carrier: Any) -> Sink:
            opened.append(carrier)
            return Sink()

        listener = await WebRtcTransport().listen("127.0.0.1", 0, accept)
        try:
            client = await WebRtcTransport(token=GOOD).connect("ignored", 1, Sink())
            for _ in range(100):
                if opened:
                    break
                await asyncio.sleep(0.02)
            assert len(opened) == 1 and service.counters["answers_sent"] == 1
            await client.aclose()
        finally:
            await listener.aclose()

    serve(body, host_token=host_token)  # stopping ends the host's 20 s long poll at once
