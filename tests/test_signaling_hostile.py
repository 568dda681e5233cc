"""The signaling service against hostile bodies and queries on 127.0.0.1: a clear 4xx and a
counter, never a 500 or a request that never returns."""

from __future__ import annotations

import asyncio

import aiohttp

from theta_net.signaling.service import PendingOffer, SignalingLimits, SignalingService

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:abcd\r\n"
       "a=ice-pwd:abcdefghijklmnopqrstuv\r\na=setup:actpass\r\n"
       "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n")


async def _answer(offer: PendingOffer) -> str:
    return "v=0\r\n"


def test_deeply_nested_json_is_a_400_and_counted() -> None:
    async def main() -> None:
        service = SignalingService(lambda room, token: {}, host_token="host")
        service.host_room("r", _answer)
        port = await service.start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                offer = {"Authorization": "Bearer t"}
                for body in ("[" * 60_000, '{"type": "offer", "sdp": ' + "[" * 60_000 + "}"):
                    async with http.post(f"{base}/rooms/r/offer", data=body,
                                         headers=offer) as resp:
                        assert resp.status == 400
                        assert (await resp.json())["reason"] == "bad_json"
                host = {"Authorization": "Bearer host"}
                async with http.get(f"{base}/rooms/q/next-offer?wait=0", headers=host) as resp:
                    assert resp.status == 204  # a remote host's room, and an offer in it
                post = asyncio.ensure_future(http.post(
                    f"{base}/rooms/q/offer", headers=offer,
                    json={"type": "offer", "sdp": SDP}))
                async with http.get(f"{base}/rooms/q/next-offer?wait=2", headers=host) as resp:
                    offer_id = (await resp.json())["id"]
                async with http.post(f"{base}/rooms/q/answer/{offer_id}", headers=host,
                                     data="[" * 60_000) as resp:
                    assert resp.status == 400
                post.cancel()
            assert service.counters["bad_json"] == 3
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_nan_long_poll_is_refused_not_held_forever() -> None:
    async def main() -> None:
        service = SignalingService(lambda room, token: {}, host_token="host")
        port = await service.start()
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{port}/rooms/q/next-offer?wait=nan",
                    headers={"Authorization": "Bearer host"},
                    timeout=aiohttp.ClientTimeout(total=3)) as resp:
                assert resp.status == 400
                assert (await resp.json())["reason"] == "bad_query"
            assert service.counters["bad_query"] == 1
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_body_that_never_arrives_is_a_408_not_a_request_held_forever() -> None:
    async def main() -> None:
        service = SignalingService(lambda room, token: {}, host_token="host",
                                   limits=SignalingLimits(body_timeout_s=0.3))
        service.host_room("r", _answer)
        port = await service.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /rooms/r/offer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 3)
            assert status.split()[1] == b"408"
            assert service.counters["body_timeout"] == 1
            writer.close()
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(main(), 20))
