"""The ``auto`` entry of ``theta.transports``: QUIC first, WebRTC when QUIC does not answer.

A client tries the ``quic`` backend for ``fallback_after`` seconds (default 1.5 s, configurable
with ``THETA_FALLBACK_AFTER``); when QUIC cannot load, is refused, or does not answer in time,
it connects through WebRTC signaling at the same host and port number (TCP) or
``THETA_SIGNALING_URL``. What was chosen and why is kept in :attr:`AutoTransport.choice` (and
in telemetry through the handler, when it has ``transport_chosen``).

A server listening with ``auto`` offers both: QUIC on UDP ``port`` and WebRTC signaling on
``signaling_bind`` when given (``theta serve`` gives it: its own port), else on
``THETA_SIGNALING_BIND`` when set, else on TCP ``port``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

from theta_ecs import plugins
from theta_ecs.errors import ThetaError

from ..carrier import Carrier, CarrierHandler
from ..choice import TransportChoice
from ..errors import ConnectError
from ..signaling.config import parse_bind

__all__ = ["DEFAULT_FALLBACK_AFTER", "AutoListener", "AutoTransport", "TransportChoice"]

DEFAULT_FALLBACK_AFTER = 1.5


class AutoListener:
    """QUIC and WebRTC listeners of one server, closed together."""

    def __init__(self, listeners: dict[str, Any]) -> None:
        self.listeners = listeners
        first = next(iter(listeners.values()))
        self.address: tuple[str, int] = first.address

    @property
    def fingerprint_hex(self) -> str:
        """The QUIC certificate's pin (clients of the WebRTC path need none)."""
        return next((str(getattr(v, "fingerprint_hex", "")) for v in self.listeners.values()
                     if getattr(v, "fingerprint_hex", "")), "")

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()


class _Attempt:
    """The handler a primary attempt gets: it forwards to the real handler, except the close of
    an attempt that failed (that connection never belonged to the session)."""

    def __init__(self, handler: CarrierHandler) -> None:
        self.handler = handler
        self.won = False

    def __getattr__(self, name: str) -> Any:  # token, join_token, ... of the real handler
        return getattr(self.handler, name)

    def carrier_received(self, channel: Any, payload: bytes) -> None:
        self.handler.carrier_received(channel, payload)

    def carrier_closed(self, reason: str) -> None:
        if self.won:
            self.handler.carrier_closed(reason)


def _fallback_after() -> float:
    raw = os.environ.get("THETA_FALLBACK_AFTER", "")
    try:
        value = float(raw) if raw else DEFAULT_FALLBACK_AFTER
    except ValueError:
        raise ConnectError(f"THETA_FALLBACK_AFTER={raw!r} is not a number of seconds") from None
    if not 0 < value <= 30:
        raise ConnectError(f"THETA_FALLBACK_AFTER={raw!r} must be in (0, 30] seconds")
    return value


class AutoTransport:
    """Tries ``primary`` (QUIC), then ``fallback`` (WebRTC); backends by name or object."""

    name = "auto"

    def __init__(
        self,
        *,
        primary: Any = "quic",
        fallback: Any = "webrtc",
        fallback_after: float | None = None,
        primary_options: dict[str, Any] | None = None,
        fallback_options: dict[str, Any] | None = None,
        signaling_bind: tuple[str, int] | None = None,
        signaling_any_port: bool = False,
        **shared: Any,
    ) -> None:
        self.fallback_after = fallback_after if fallback_after is not None else _fallback_after()
        self._primary_spec = primary
        self._fallback_spec = fallback
        self._primary_options = {**shared, **(primary_options or {})}
        self._fallback_options = {**shared, **(fallback_options or {})}
        self._primary: Any = None
        self._fallback: Any = None
        self.choice: TransportChoice | None = None
        #: Where a listening server puts its signaling service; ``signaling_any_port``: when
        #: that port is taken, take a free one rather than fail (a default, not a request).
        self.signaling_bind = signaling_bind
        self.signaling_any_port = signaling_any_port

    def _backend(self, which: str) -> Any:
        spec = self._primary_spec if which == "primary" else self._fallback_spec
        cached = self._primary if which == "primary" else self._fallback
        if cached is not None:
            return cached
        if isinstance(spec, str):
            opts = self._primary_options if which == "primary" else self._fallback_options
            backend = plugins.create("theta.transports", spec, **opts)
        else:
            backend = spec
        if which == "primary":
            self._primary = backend
        else:
            self._fallback = backend
        return backend

    @property
    def identity(self) -> Any:
        """The primary's TLS identity (QUIC's certificate): a Server with a state directory
        fills it, so the fingerprint clients pin survives restarts as it does over plain QUIC."""
        return getattr(self._backend("primary"), "identity", False)

    @identity.setter
    def identity(self, value: Any) -> None:
        self._backend("primary").identity = value

    @property
    def primary_name(self) -> str:
        spec = self._primary_spec
        return spec if isinstance(spec, str) else str(getattr(spec, "name", "primary"))

    @property
    def fallback_name(self) -> str:
        spec = self._fallback_spec
        return spec if isinstance(spec, str) else str(getattr(spec, "name", "fallback"))

    async def listen(
        self, host: str, port: int, accept: Callable[[Carrier], CarrierHandler]
    ) -> AutoListener:
        primary = self._backend("primary")
        quic = await primary.listen(host, port, accept)
        bind = os.environ.get("THETA_SIGNALING_BIND", "")
        if self.signaling_bind is not None:
            s_host, s_port = self.signaling_bind
        else:
            s_host, s_port = parse_bind(bind) if bind else (host, quic.address[1])
        fallback = self._backend("fallback")
        try:
            try:
                webrtc = await fallback.listen(s_host, s_port, accept)
            except OSError:
                if not (self.signaling_any_port and s_port):
                    raise
                webrtc = await fallback.listen(s_host, 0, accept)  # the default port is taken
        except BaseException:
            quic.close()
            raise
        return AutoListener({self.primary_name: quic, self.fallback_name: webrtc})

    async def connect(
        self, host: str, port: int, handler: CarrierHandler, *, fingerprint: str = "",
        **options: Any,
    ) -> Carrier:
        start = time.perf_counter()
        error = ""
        try:
            primary = self._backend("primary")
            opts = dict(options)
            if "timeout" in inspect.signature(primary.connect).parameters:
                opts["timeout"] = self.fallback_after  # it cleans up after itself
            attempt = _Attempt(handler)
            carrier: Carrier = await asyncio.wait_for(
                primary.connect(host, port, attempt, fingerprint=fingerprint, **opts),
                self.fallback_after + 0.5,
            )
            attempt.won = True
        except asyncio.TimeoutError:
            reason = f"{self.primary_name} did not answer within {self.fallback_after:g} s"
        except (ThetaError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if time.perf_counter() - start >= self.fallback_after:
                reason = f"{self.primary_name} did not answer within {self.fallback_after:g} s"
            else:
                reason = f"{self.primary_name} failed: {error}"
        else:
            self._chosen(handler, self.primary_name, f"{self.primary_name} answered", start)
            return carrier
        fallback = self._backend("fallback")
        carrier = await fallback.connect(host, port, handler, fingerprint=fingerprint, **options)
        self._chosen(handler, self.fallback_name, reason, start, error)
        return carrier

    def _chosen(
        self, handler: Any, name: str, reason: str, start: float, error: str = ""
    ) -> None:
        self.choice = TransportChoice(name, reason, time.perf_counter() - start, error)
        report = getattr(handler, "transport_chosen", None)
        if callable(report):
            report(self.choice)
