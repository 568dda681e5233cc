"""The answering side of the WebRTC transport: a signaling room's offers become carriers.

Each offer gets a peer connection and an answer right away; the carrier is handed on only once
ICE, DTLS and SCTP are up and its three channels are open. A peer that never gets there (it
vanished, its candidates lead nowhere, it never answers the STUN checks) is closed after
``ice_timeout`` and counted, and the number of connections being set up at once is bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..signaling.service import OfferRefused, PendingOffer
from .carrier import WebRtcCarrier
from .ice import IceServer
from .peer import accept_offer

__all__ = ["WebRtcAcceptor"]

log = logging.getLogger(__name__)


class WebRtcAcceptor:
    """An :data:`~theta_net.signaling.service.Answerer`: ``await acceptor(offer)`` → answer SDP.

    ``accept(carrier, offer)`` is called once the carrier's channels are open.
    """

    def __init__(
        self,
        accept: Callable[[WebRtcCarrier, PendingOffer], Any],
        *,
        ice_servers: Sequence[IceServer] = (),
        ice_timeout: float = 10.0,
        max_connecting: int = 32,
        counters: Counter[str] | None = None,
        max_reliable_message: int = 1 << 20,
    ) -> None:
        self.accept = accept
        self.ice_servers = tuple(ice_servers)
        self.ice_timeout = ice_timeout
        self.max_connecting = max_connecting
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.max_reliable_message = max_reliable_message
        self.connecting: set[WebRtcCarrier] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, offer: PendingOffer) -> str:
        if len(self.connecting) >= self.max_connecting:
            raise OfferRefused(
                f"{len(self.connecting)} WebRTC connections are being set up (the bound)",
                503, "busy",
            )
        carrier, answer = await accept_offer(
            offer.sdp, self.ice_servers, max_reliable_message=self.max_reliable_message
        )
        self.connecting.add(carrier)
        task = asyncio.ensure_future(self._watch(carrier, offer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return answer

    async def _watch(self, carrier: WebRtcCarrier, offer: PendingOffer) -> None:
        try:
            await carrier.wait_open(self.ice_timeout)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            self.connecting.discard(carrier)
            reason = carrier.closed_reason or f"not connected within {self.ice_timeout:g} s"
            self.counters["ice_timeout" if isinstance(exc, asyncio.TimeoutError)
                          else "ice_failed"] += 1
            log.info("WebRTC peer for offer %s gave up: %s", offer.id, reason)
            await carrier.aclose(f"ICE/DTLS did not complete: {reason}")
            return
        except BaseException:
            self.connecting.discard(carrier)
            raise
        self.connecting.discard(carrier)
        self.counters["connected"] += 1
        self.accept(carrier, offer)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for carrier in list(self.connecting):
            await carrier.aclose("shutting down")
