"""A host whose room lives on a standalone signaling service (``theta signal``): long-poll the
room for offers, answer each in this process, post the answer back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..errors import ConnectError
from .service import Answerer, OfferRefused, PendingOffer

__all__ = ["RemoteRoomHost"]

log = logging.getLogger(__name__)


class RemoteRoomHost:
    """Serves ``room_url``'s offers with ``answerer``; ``start()`` begins polling."""

    def __init__(self, room_url: str, host_token: str, answerer: Answerer,
                 retry_s: float = 1.0) -> None:
        self.room_url = room_url.rstrip("/")
        self.host_token = host_token
        self.answerer = answerer
        self.retry_s = retry_s
        self.answered = 0
        self.refused = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self, timeout: float = 5.0) -> None:
        """Register the room and begin polling; :class:`ConnectError` when the service cannot
        be reached or refuses this host."""
        import aiohttp

        headers = {"Authorization": f"Bearer {self.host_token}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
                http.get(f"{self.room_url}/next-offer?wait=0", headers=headers) as r,
            ):
                if r.status == 403:
                    raise ConnectError(f"{self.room_url}: the service refused this host "
                                       "(THETA_SIGNALING_TOKEN)")
                if r.status not in (200, 204):
                    raise ConnectError(f"{self.room_url}: the service answered {r.status}")
                if r.status == 200:  # an offer was already waiting: answer it
                    doc = await r.json()
                    task = asyncio.ensure_future(self._answer_once(doc))
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ConnectError(f"{self.room_url}: signaling unreachable ({exc!r})") from None
        self._task = asyncio.ensure_future(self._run())

    async def _answer_once(self, doc: dict[str, Any]) -> None:
        import aiohttp

        headers = {"Authorization": f"Bearer {self.host_token}"}
        async with aiohttp.ClientSession() as http:
            await self._answer(http, headers, doc)

    async def _run(self) -> None:
        import aiohttp

        headers = {"Authorization": f"Bearer {self.host_token}"}
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{self.room_url}/next-offer", headers=headers) as r:
                        if r.status == 403:
                            log.warning("%s: the service refused this host", self.room_url)
                            return
                        if r.status != 200:
                            continue
                        doc: Any = await r.json()
                    task = asyncio.ensure_future(self._answer(http, headers, doc))
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)
                except (aiohttp.ClientError, ValueError, KeyError) as exc:
                    self.errors += 1
                    log.info("signaling poll failed: %s", exc)
                    await asyncio.sleep(self.retry_s)

    async def _answer(self, http: Any, headers: dict[str, str], doc: dict[str, Any]) -> None:
        offer = PendingOffer(str(doc["id"]), "", str(doc["sdp"]), str(doc.get("token", "")),
                             None, time.monotonic(),
                             asyncio.get_running_loop().create_future())
        try:
            body: dict[str, Any] = {"type": "answer", "sdp": await self.answerer(offer)}
            self.answered += 1
        except OfferRefused as exc:
            body = {"error": str(exc), "status": exc.status}
            self.refused += 1
        except ValueError as exc:  # a malformed SDP (SdpError, aiortc's parser)
            body = {"error": str(exc), "status": 400}
            self.refused += 1
        with contextlib.suppress(Exception):
            async with http.post(f"{self.room_url}/answer/{offer.id}", headers=headers,
                                 json=body):
                pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
