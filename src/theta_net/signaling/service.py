"""The signaling service: WebRTC offers and answers over HTTP, one room per session.

A client (``theta connect``, the browser page) POSTs its complete offer to its session's room,
authenticated with its join token, and gets the host's answer in the response. The host is either
in the same process (``theta serve`` starts the service beside QUIC and answers each room's offers
itself) or elsewhere (``theta signal`` runs the service alone; a host long-polls its room for
offers and posts answers back, authenticated with the shared ``THETA_SIGNALING_TOKEN``).

============================================  ======  ===========================================
route                                         who     what
============================================  ======  ===========================================
``GET /``                                     anyone  the spectator page (``?room=&token=``)
``POST /rooms/{room}/offer``                  client  ``{"type":"offer","sdp":...}`` → answer
``GET /rooms/{room}/next-offer[?wait=s]``     host    long-poll: an offer to answer, or 204
``POST /rooms/{room}/answer/{offer_id}``      host    ``{"type":"answer","sdp":...}`` or
                                                      ``{"error": "...", "status": 4xx}``
``GET /stats``                                anyone  the counters below, as JSON
============================================  ======  ===========================================

Every refusal has an HTTP status and a counter: 400 malformed JSON or SDP, 401 no token,
403 a token the verifier refuses (or a wrong host token), 404 no host in that room, 408 a body
that does not arrive whole in time, 413 a body over the limit, 429 the room's pending offers are
at their bound, 504 no answer in time. A room's bound only limits that room: other sessions are
unaffected by one being flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from theta_ecs.errors import ThetaError

from ..webrtc.sdp import SdpError, validate_sdp

__all__ = [
    "Answerer",
    "OfferRefused",
    "PendingOffer",
    "SignalingLimits",
    "SignalingService",
    "TokenRejected",
    "TokenVerifier",
]


class TokenRejected(ThetaError):
    """A join token the verifier refuses; the message says why (expired, forged, wrong room)."""


class OfferRefused(ThetaError):
    """A host's refusal of one offer, with the HTTP status the client should see."""

    def __init__(self, message: str, status: int = 400, counter: str = "refused_by_host") -> None:
        super().__init__(message)
        self.status = status
        self.counter = counter


#: ``verify(room, token) -> claims``; raises :class:`TokenRejected`.
TokenVerifier = Callable[[str, str], Any]


@dataclass
class PendingOffer:
    """An offer waiting for its host's answer."""

    id: str
    room: str
    sdp: str
    token: str
    claims: Any
    received: float
    answer: asyncio.Future[str] = field(repr=False)


#: An in-process host: turn an offer into an answer SDP (or raise :class:`OfferRefused`).
Answerer = Callable[[PendingOffer], Awaitable[str]]


@dataclass(frozen=True)
class SignalingLimits:
    max_pending_per_room: int = 16  # offers queued or being answered, per room
    max_rooms: int = 64  # rooms hosted at once (only hosts create rooms)
    answer_timeout_s: float = 10.0  # a client waits this long for its answer
    host_poll_s: float = 20.0  # a remote host's long poll returns 204 after this
    host_idle_s: float = 60.0  # a remote host's room closes when it stops polling this long
    max_body_bytes: int = 64 * 1024
    body_timeout_s: float = 10.0  # a body must arrive whole within this (else 408)


class _Room:
    def __init__(self, name: str, answerer: Answerer | None) -> None:
        self.name = name
        self.answerer = answerer  # None: a remote host polls
        self.pending: dict[str, PendingOffer] = {}
        self.queue: asyncio.Queue[PendingOffer] = asyncio.Queue()
        self.last_poll = time.monotonic()
        self.tasks: set[asyncio.Task[None]] = set()


class SignalingService:
    """The aiohttp application and its rooms; ``await start(host, port)`` to listen."""

    def __init__(
        self,
        verify_token: TokenVerifier,
        *,
        host_token: str | None = None,
        limits: SignalingLimits | None = None,
        page_config: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.verify_token = verify_token
        self.host_token = host_token
        self.limits = limits or SignalingLimits()
        self.page_config = page_config or dict
        self.counters: Counter[str] = Counter()
        self.rooms: dict[str, _Room] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port: int | None = None
        self.app = web.Application(client_max_size=self.limits.max_body_bytes)
        self.app.add_routes(
            [
                web.get("/", self._page),
                web.get("/theta.js", self._script),
                web.get("/config", self._config),
                web.get("/stats", self._stats),
                web.post("/rooms/{room}/offer", self._offer),
                web.get("/rooms/{room}/next-offer", self._next_offer),
                web.post("/rooms/{room}/answer/{offer_id}", self._answer),
            ]
        )

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except BaseException:  # the port is taken (or the address is not ours): nothing left
            await self._runner.cleanup()
            self._runner = None
            raise
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        self._stopping.set()  # long polls return now rather than at their timeout
        for room in list(self.rooms.values()):
            self._close_room(room)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def host_room(self, room: str, answerer: Answerer) -> None:
        """Answer ``room``'s offers in this process with ``answerer``."""
        self.rooms[room] = _Room(room, answerer)

    def unhost_room(self, room: str) -> None:
        if room in self.rooms:
            self._close_room(self.rooms[room])

    def _close_room(self, room: _Room) -> None:
        self.rooms.pop(room.name, None)
        for offer in room.pending.values():
            if not offer.answer.done():
                offer.answer.set_exception(OfferRefused("the host left the room", 404, "no_host"))
        for task in room.tasks:
            task.cancel()

    def count(self, counter: str, amount: int = 1) -> None:
        """Add to a counter (hosts report what happens after the answer, e.g. ICE timeouts)."""
        self.counters[counter] += amount

    # -- helpers ---------------------------------------------------------------------------------
    def _refuse(self, status: int, counter: str, message: str) -> web.Response:
        self.counters[counter] += 1
        return web.json_response({"error": message, "reason": counter}, status=status)

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:].strip():
            return header[7:].strip()
        return None

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            doc = await asyncio.wait_for(request.json(), self.limits.body_timeout_s)
        except asyncio.TimeoutError:  # a length announced, then the bytes trickle or never come
            return self._refuse(408, "body_timeout",
                                f"no whole body within {self.limits.body_timeout_s:g} s")
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "body_too_large",
                                f"body over {self.limits.max_body_bytes} bytes")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._refuse(400, "bad_json", "the body is not JSON")
        except RecursionError:  # "[[[[..." within the body limit: deeper than json can nest
            return self._refuse(400, "bad_json", "the body's JSON nests too deeply")
        if not isinstance(doc, dict):
            return self._refuse(400, "bad_json", "the body must be a JSON object")
        return doc

    def _host_allowed(self, request: web.Request) -> bool:
        token = self._bearer(request)
        return (
            self.host_token is not None
            and token is not None
            and hmac.compare_digest(token.encode(), self.host_token.encode())
        )

    # -- pages -----------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        text = resources.files("theta_net.signaling").joinpath("static/index.html").read_text()
        return web.Response(text=text, content_type="text/html")

    async def _script(self, request: web.Request) -> web.Response:
        text = resources.files("theta_net.signaling").joinpath("static/theta.js").read_text()
        return web.Response(text=text, content_type="application/javascript")

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(self.page_config())

    async def _stats(self, request: web.Request) -> web.Response:
        rooms = {name: len(room.pending) for name, room in self.rooms.items()}
        return web.json_response({"counters": dict(self.counters), "pending": rooms})

    # -- clients ---------------------------------------------------------------------------------
    async def _offer(self, request: web.Request) -> web.Response:
        self.counters["offers_received"] += 1
        name = request.match_info["room"]
        token = self._bearer(request)
        if token is None:
            return self._refuse(401, "missing_token", "an Authorization: Bearer <join token> "
                                "header is required")
        try:
            claims = self.verify_token(name, token)
        except TokenRejected as exc:
            return self._refuse(403, "bad_token", str(exc))
        room = self.rooms.get(name)
        if room is None:
            return self._refuse(404, "no_room", f"no host serves room {name!r}")
        doc = await self._json(request)
        if isinstance(doc, web.Response):
            return doc
        if doc.get("type") != "offer":
            return self._refuse(400, "malformed_sdp", "type must be 'offer'")
        try:
            sdp = validate_sdp(doc.get("sdp"), "offer")
        except SdpError as exc:
            return self._refuse(400, "malformed_sdp", str(exc))
        if len(room.pending) >= self.limits.max_pending_per_room:
            return self._refuse(429, "room_full", f"room {name!r} has "
                                f"{len(room.pending)} offers pending (the bound)")
        offer = PendingOffer(
            id=f"{next(self._ids)}", room=name, sdp=sdp, token=token, claims=claims,
            received=time.monotonic(), answer=asyncio.get_running_loop().create_future(),
        )
        room.pending[offer.id] = offer
        try:
            if room.answerer is not None:
                task = asyncio.ensure_future(self._answer_locally(room.answerer, offer))
                room.tasks.add(task)
                task.add_done_callback(room.tasks.discard)
            else:
                room.queue.put_nowait(offer)
            try:
                answer = await asyncio.wait_for(
                    asyncio.shield(offer.answer), self.limits.answer_timeout_s
                )
            except asyncio.TimeoutError:
                return self._refuse(504, "answer_timeout", f"no answer within "
                                    f"{self.limits.answer_timeout_s} s")
            except OfferRefused as exc:
                return self._refuse(exc.status, exc.counter, str(exc))
        finally:
            room.pending.pop(offer.id, None)
            if not offer.answer.done():
                offer.answer.cancel()
        self.counters["answers_sent"] += 1
        return web.json_response({"type": "answer", "sdp": answer})

    async def _answer_locally(self, answerer: Answerer, offer: PendingOffer) -> None:
        try:
            answer = await answerer(offer)
        except OfferRefused as exc:
            result: BaseException | str = exc
        except SdpError as exc:
            result = OfferRefused(str(exc), 400, "malformed_sdp")
        except ValueError as exc:  # aiortc's SDP parser
            result = OfferRefused(f"malformed SDP: {exc}", 400, "malformed_sdp")
        else:
            result = answer
        if offer.answer.done():
            return
        if isinstance(result, BaseException):
            offer.answer.set_exception(result)
        else:
            offer.answer.set_result(result)

    # -- remote hosts ----------------------------------------------------------------------------
    async def _next_offer(self, request: web.Request) -> web.Response:
        if not self._host_allowed(request):
            return self._refuse(403, "bad_host_token", "a host needs the THETA_SIGNALING_TOKEN")
        name = request.match_info["room"]
        room = self.rooms.get(name)
        if room is None:
            self._expire_rooms()
            if len(self.rooms) >= self.limits.max_rooms:
                return self._refuse(429, "too_many_rooms", f"{len(self.rooms)} rooms hosted "
                                    "(the bound)")
            room = self.rooms[name] = _Room(name, None)
        if room.answerer is not None:
            return self._refuse(409, "room_taken", f"room {name!r} is hosted in-process")
        room.last_poll = time.monotonic()
        try:  # ?wait=0 registers the room and returns at once (a host's first call)
            wait = min(float(request.query.get("wait", self.limits.host_poll_s)),
                       self.limits.host_poll_s)
        except ValueError:
            return self._refuse(400, "bad_query", "wait must be a number of seconds")
        if math.isnan(wait):  # min() keeps a NaN, and a NaN timeout waited forever
            return self._refuse(400, "bad_query", "wait must be a number of seconds, not NaN")
        while True:
            getter = asyncio.ensure_future(room.queue.get())
            stopping = asyncio.ensure_future(self._stopping.wait())
            done, _ = await asyncio.wait({getter, stopping}, timeout=max(wait, 0.0),
                                         return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if getter not in done:  # the poll's time is up, or the service is stopping
                getter.cancel()
                room.last_poll = time.monotonic()
                return web.Response(status=204)
            offer = getter.result()
            room.last_poll = time.monotonic()
            if offer.answer.done():  # its client gave up already
                continue
            return web.json_response({"id": offer.id, "type": "offer", "sdp": offer.sdp,
                                      "token": offer.token})

    async def _answer(self, request: web.Request) -> web.Response:
        if not self._host_allowed(request):
            return self._refuse(403, "bad_host_token", "a host needs the THETA_SIGNALING_TOKEN")
        room = self.rooms.get(request.match_info["room"])
        offer = room.pending.get(request.match_info["offer_id"]) if room else None
        if offer is None or offer.answer.done():
            return self._refuse(410, "answer_too_late", "that offer is no longer pending")
        doc = await self._json(request)
        if isinstance(doc, web.Response):
            return doc
        if "error" in doc:
            status = doc.get("status", 400)
            status = status if isinstance(status, int) and 400 <= status < 500 else 400
            offer.answer.set_exception(OfferRefused(str(doc["error"])[:500], status))
            return web.json_response({"ok": True})
        try:
            sdp = validate_sdp(doc.get("sdp"), "answer")
        except SdpError as exc:
            return self._refuse(400, "malformed_answer", str(exc))
        offer.answer.set_result(sdp)
        return web.json_response({"ok": True})

    def _expire_rooms(self) -> None:
        now = time.monotonic()
        for room in list(self.rooms.values()):
            if room.answerer is None and now - room.last_poll > self.limits.host_idle_s:
                with contextlib.suppress(Exception):
                    self._close_room(room)
