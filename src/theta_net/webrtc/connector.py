"""The offering side: open a carrier to a room through the signaling service (one POST)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..errors import ConnectError
from .carrier import CarrierHandler, WebRtcCarrier
from .ice import IceServer
from .peer import complete_offer, open_offer

__all__ = ["SignalingError", "connect_webrtc"]


class SignalingError(ConnectError):
    """The signaling service refused the offer or could not be reached; says which and why."""

    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"signaling at {url}: {status or 'unreachable'}: {reason}")
        self.url = url
        self.status = status
        self.reason = reason


async def connect_webrtc(
    room_url: str,
    token: str,
    handler: CarrierHandler | None = None,
    *,
    ice_servers: Sequence[IceServer] = (),
    timeout: float = 10.0,
    max_reliable_message: int = 1 << 20,
) -> WebRtcCarrier:
    """A carrier to the host of ``room_url`` (``http://host:port/rooms/<room>``), channels open.

    Raises :class:`SignalingError` (with the service's HTTP status and message) or
    ``TimeoutError`` when the channels are not open within ``timeout`` seconds.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    carrier, offer = await open_offer(
        ice_servers, handler=handler, max_reliable_message=max_reliable_message
    )
    url = room_url.rstrip("/") + "/offer"
    try:
        client_timeout = aiohttp.ClientTimeout(total=max(deadline - loop.time(), 0.1))
        async with aiohttp.ClientSession(timeout=client_timeout) as http:
            try:
                async with http.post(
                    url, json={"type": "offer", "sdp": offer},
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    doc: Any = await response.json(content_type=None)
                    if response.status != 200:
                        reason = doc.get("error", "") if isinstance(doc, dict) else str(doc)
                        raise SignalingError(url, response.status, reason)
            except aiohttp.ClientError as exc:
                raise SignalingError(url, 0, str(exc) or type(exc).__name__) from None
            except ValueError:
                raise SignalingError(url, response.status, "the reply is not JSON") from None
        if not isinstance(doc, dict) or doc.get("type") != "answer":
            raise SignalingError(url, 200, "the reply is not an answer")
        await complete_offer(carrier, str(doc.get("sdp", "")))
        await carrier.wait_open(max(deadline - loop.time(), 0.01))
    except BaseException:
        await carrier.aclose("could not connect")
        raise
    return carrier
