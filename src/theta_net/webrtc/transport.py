"""The ``webrtc`` entry of ``theta.transports``: WebRTC carriers opened through signaling.

``listen(host, port, accept)`` starts the signaling service on TCP ``host:port`` and answers
the offers of its room in this process (so QUIC on UDP port P and WebRTC signaling on TCP port
P can share one number). ``connect(host, port, handler)`` POSTs an offer to
``THETA_SIGNALING_URL`` when set, else to ``http://host:port/rooms/<room>``, authenticated with
the client's join token.

Join tokens are checked twice, as over QUIC: the signaling service verifies the token before a
peer connection is spent on the offer, and the session verifies it again in the Hello (with the
key proof and the role).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..carrier import Carrier, CarrierHandler
from ..errors import ConnectError, TokenError
from ..session.tokens import TokenVerifier
from ..signaling.config import DEFAULT_ROOM, SignalingConfig, room_url
from ..signaling.remote import RemoteRoomHost
from ..signaling.service import PendingOffer, SignalingLimits, SignalingService, TokenRejected
from .acceptor import WebRtcAcceptor
from .carrier import WebRtcCarrier
from .connector import connect_webrtc
from .ice import IceServer, ice_servers_from_env

__all__ = ["WebRtcListener", "WebRtcTransport", "token_checker"]


def token_checker(
    verifier: TokenVerifier | None, wall_clock: Callable[[], float] = time.time
) -> Callable[[str, str], Any]:
    """The signaling service's token check from the session's verifier (None: the service only
    checks the token's form and leaves the signature to the host's session)."""
    from ..session.tokens import peek

    def check(room: str, token: str) -> Any:
        try:
            if verifier is None:
                claims = peek(token)
                if wall_clock() >= claims.expires_at:
                    raise TokenRejected("the token has expired")
                return claims
            return verifier.verify(token, wall_clock())
        except TokenError as exc:
            raise TokenRejected(str(exc)) from None

    return check


class WebRtcListener:
    """A listening signaling service whose room is answered by this process."""

    def __init__(
        self, service: SignalingService, acceptor: WebRtcAcceptor, room: str,
        remote: RemoteRoomHost | None = None,
    ) -> None:
        self.service = service
        self.remote = remote
        self.acceptor = acceptor
        self.room = room
        self.address = ("127.0.0.1", 0)
        self.carriers: set[WebRtcCarrier] = set()
        self._closing: asyncio.Task[None] | None = None

    @property
    def counters(self) -> Counter[str]:
        return self.service.counters

    @property
    def room_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/rooms/{self.room}"

    def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.aclose())

    async def aclose(self) -> None:
        for carrier in list(self.carriers):
            await carrier.aclose("server shutting down")
        await self.acceptor.close()
        if self.remote is not None:
            await self.remote.stop()
        await self.service.stop()


class WebRtcTransport:
    """Opens WebRTC carriers: the ``webrtc`` transport backend."""

    name = "webrtc"

    def __init__(
        self,
        *,
        token: str = "",
        tokens: TokenVerifier | None = None,
        room: str | None = None,
        ice_servers: Sequence[IceServer] | None = None,
        ice_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        max_connections: int = 256,
        max_message: int = 1 << 20,
        limits: SignalingLimits | None = None,
        page_config: Callable[[], dict[str, Any]] | None = None,
        signaling: SignalingConfig | None = None,
    ) -> None:
        self.signaling = signaling or SignalingConfig.from_env()
        self.token = token
        self.tokens = tokens
        self.room = room or (self.signaling.room if self.signaling.url else DEFAULT_ROOM)
        self.ice_servers = list(ice_servers) if ice_servers is not None else ice_servers_from_env()
        self.ice_timeout = ice_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_message = max_message
        self.limits = limits
        self.page_config = page_config
        self.listener: WebRtcListener | None = None
        self._host_config: Any = None

    async def listen(
        self, host: str, port: int, accept: Callable[[Carrier], CarrierHandler]
    ) -> WebRtcListener:
        """Start a signaling service on TCP ``host:port`` answering this process's room, or,
        when ``THETA_SIGNALING_URL`` and ``THETA_SIGNALING_TOKEN`` are both set, host the
        room on that (standalone) service instead."""
        service = SignalingService(
            token_checker(self.tokens), host_token=self.signaling.host_token,
            limits=self.limits, page_config=self._page_config,
        )
        listener: WebRtcListener | None = None
        # the page speaks the session: it needs the host's hashes (a Server's session config)
        self._host_config = getattr(getattr(accept, "__self__", None), "session_config", None)

        def opened(carrier: WebRtcCarrier, offer: PendingOffer) -> None:
            assert listener is not None
            if len(listener.carriers) >= self.max_connections:
                service.count("refused_full")
                carrier.close("server full")
                return
            carriers = listener.carriers
            carriers.add(carrier)
            carrier.attach(accept(carrier))

            def forget() -> None:
                if carrier.closed_reason is not None:
                    carriers.discard(carrier)

            carrier.pc.on("connectionstatechange", forget)

        acceptor = WebRtcAcceptor(
            opened, ice_servers=self.ice_servers, ice_timeout=self.ice_timeout,
            counters=service.counters, max_reliable_message=self.max_message,
        )
        if self.signaling.url and self.signaling.host_token:
            remote = RemoteRoomHost(self.signaling.url, self.signaling.host_token, acceptor)
            await remote.start()
            listener = WebRtcListener(service, acceptor, self.room, remote)
            base, _ = room_url(self.signaling.url)
            parts = urlsplit(base)
            listener.address = (parts.hostname or host, parts.port or 80)
        else:
            service.host_room(self.room, acceptor)
            bound = await service.start(host, port)
            listener = WebRtcListener(service, acceptor, self.room)
            listener.address = (host, bound)
        self.listener = listener
        return listener

    def _page_config(self) -> dict[str, Any]:
        from theta_ecs.wire.envelope import PROTOCOL_VERSION

        out: dict[str, Any] = {
            "protocol_version": PROTOCOL_VERSION,
            "room_url": f"rooms/{self.room}",
            "ice_servers": [s.to_browser() for s in self.ice_servers],
        }
        cfg = self._host_config
        if cfg is not None:
            out["schema_hash"] = str(cfg.schema.hash)
            out["manifest_hash"] = str(cfg.manifest_hash)
        if self.page_config is not None:
            out.update(self.page_config())
        return out

    def room_url_for(self, host: str, port: int) -> str:
        return self.signaling.url or f"http://{host}:{port}/rooms/{self.room}"

    async def connect(
        self, host: str, port: int, handler: CarrierHandler, *, fingerprint: str = "",
        timeout: float | None = None, token: str = "",
    ) -> WebRtcCarrier:
        """A carrier to the host through signaling; ``token`` (or the transport's, or the
        handler's ``join_token``) authenticates the offer. The WebRTC path is authenticated by
        DTLS fingerprints in the signaled SDP, so ``fingerprint`` (a QUIC certificate pin) has
        no role here: the session's token check is what admits the client."""
        join_token = token or self.token or str(
            getattr(handler, "join_token", "") or getattr(handler, "token", "") or ""
        )
        if not join_token:
            join_token = os.environ.get("THETA_JOIN_TOKEN", "")
        url = self.room_url_for(host, port)
        try:
            return await connect_webrtc(
                url, join_token, handler, ice_servers=self.ice_servers,
                timeout=timeout or self.connect_timeout, max_reliable_message=self.max_message,
            )
        except asyncio.TimeoutError:
            raise ConnectError(f"no WebRTC connection through {url} in "
                               f"{timeout or self.connect_timeout:g} s") from None
