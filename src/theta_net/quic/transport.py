"""The ``quic`` carrier: aioquic glue, kept thin (the protocol lives in theta_net.session).

* ``STATE`` and ``VOICE`` are QUIC DATAGRAM frames (``max_datagram_frame_size`` set on both
  sides), each payload behind one byte naming its channel. An unreliable payload goes out only
  when the congestion controller has room for it (:meth:`QuicCarrier.unreliable_budget`); what
  is held by the window or the pacer longer than ``max_datagram_age`` (50 ms) is dropped
  (``stale_dropped``), so a slow path gets the newest state, never a backlog of old state, and
  memory stays bounded.
* ``RELIABLE`` is one bidirectional stream (the client's first, id 0), each message framed by a
  4-byte length (:mod:`theta_net.session.framing`). A frame over ``max_message`` closes the
  connection; so does a peer that lets more than ``max_send_buffer`` bytes pile up unread.
* TLS: the server presents a certificate (self-signed and made at start-up unless given); the
  client verifies it by its pinned SHA-256 fingerprint before any session byte is sent.
  ALPN ``theta/3`` names the protocol.

* A peer may open the one reliable stream and nothing else (aioquic grants 128 of each kind by
  default, and buffers up to ``max_stream_data`` of out-of-order data on each: a few tiny
  packets, one byte at the end of each stream's window, made a server hold ~1 MiB apiece). A
  second stream is a QUIC STREAM_LIMIT_ERROR: the connection closes and ``bad_streams`` counts it.
* A full server (``max_connections``) makes room for a newcomer by closing its oldest connection
  whose TLS handshake has not completed (``half_open_evicted``): Initial packets with fresh
  connection ids, a few hundred datagrams from one socket, otherwise held every slot for the
  idle timeout; then its oldest connection with no admitted session (TLS done, no hello
  answered). Only when every connection holds an admitted session is a newcomer refused.

aioquic exposes no public API for the congestion window, the queued datagrams, a stream's send
buffer or the stream limits it grants: this module reads ``_loss``, ``_datagrams_pending`` and
``_streams`` and sets ``_local_max_streams_*`` (aioquic 1.x), in one place each.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode, pull_quic_header

from ..carrier import Carrier, CarrierHandler, Channel
from ..errors import ConnectError, FingerprintMismatchError
from ..session.framing import Deframer, frame
from .certs import ServerIdentity

__all__ = ["ALPN", "QuicCarrier", "QuicListener", "QuicStats", "QuicTransport"]

ALPN = "theta/3"
#: Bytes a DATAGRAM frame costs inside a 1200-byte QUIC packet besides its payload (short header
#: with an 8-byte connection id, packet number, AEAD tag, frame type and length): what is left is
#: the largest unreliable payload a carrier offers.
DATAGRAM_OVERHEAD = 48
_CHANNEL_BYTES = {Channel.STATE: b"\x00", Channel.VOICE: b"\x01"}
_UNRELIABLE_BY_BYTE = {0: Channel.STATE, 1: Channel.VOICE}


@dataclass
class QuicStats:
    """What this carrier dropped or refused (all counted, nothing raised)."""

    datagrams_sent: int = 0
    datagrams_received: int = 0
    stale_dropped: int = 0  # unreliable payloads the congestion window had no room for
    oversize_dropped: int = 0
    bad_datagrams: int = 0  # unknown channel byte or empty
    bad_streams: int = 0  # data on a stream other than the reliable one
    oversize_frames: int = 0  # a reliable frame over max_message (connection closed)
    unread_closes: int = 0  # the peer let max_send_buffer pile up (connection closed)
    udp_bytes_sent: int = 0  # UDP payloads, QUIC framing included (client side: every byte;
    udp_datagrams_sent: int = 0  # server side: the server endpoint's socket is shared)
    udp_bytes_received: int = 0
    extra: dict[str, int] = field(default_factory=dict)


#: Datagrams read per wake-up at most (asyncio reads one per wake-up: a loop busy with ticks
#: would fall behind its socket and queue seconds of packets in the kernel).
DRAIN_BATCH = 512
#: Receive buffers stay shallow: a peer that cannot keep up should lose datagrams (which QUIC's
#: congestion control sees) rather than read seconds-old state from a deep queue.
SERVER_SOCKET_BUFFER = 1 << 20
CLIENT_SOCKET_BUFFER = 256 << 10


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _limit_streams(quic: QuicConnection) -> None:
    """Grant the peer the streams theta uses and no more (before the handshake announces them):
    a client opens the one bidirectional reliable stream; a server opens none."""
    for limit, value in ((quic._local_max_streams_bidi, 0 if quic.configuration.is_client else 1),
                         (quic._local_max_streams_uni, 0)):
        limit.value = limit.sent = value


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    """Fail ``future`` and mark its exception retrieved at once: whoever awaits it still gets
    the error, and nobody awaiting it (a connect that timed out or was cancelled) leaves no
    "Future exception was never retrieved" behind, even when the loop ends before the done
    callbacks would have run."""
    if not future.done():
        future.set_exception(error)
        future.exception()


def _drain(sock: socket.socket | None, handle: Callable[[bytes, Any], None]) -> None:
    """Read what else is waiting on ``sock`` now, up to DRAIN_BATCH datagrams."""
    if sock is None:
        return
    for _ in range(DRAIN_BATCH):
        try:
            data, addr = sock.recvfrom(65_536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        handle(data, addr)


def _udp_socket(host: str, port: int, family: int, buffer: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _DrainingQuicServer(QuicServer):
    """aioquic's server endpoint, reading every waiting datagram per wake-up, and counting the
    datagrams that are not QUIC at all (aioquic drops them silently)."""

    sock: socket.socket | None = None
    not_quic = 0

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._one(data, addr)
        _drain(self.sock, self._one)

    def _one(self, data: bytes | str, addr: Any) -> None:
        try:
            pull_quic_header(Buffer(data=cast(bytes, data)),
                             host_cid_length=self._configuration.connection_id_length)
        except ValueError:
            self.not_quic += 1
            return
        super().datagram_received(data, addr)


class _CountingTransport:
    """A datagram transport that counts the UDP payload bytes it sends (QUIC framing included:
    what goes on the wire, less the IP and UDP headers)."""

    def __init__(self, transport: asyncio.DatagramTransport, stats: QuicStats) -> None:
        self._transport = transport
        self._stats = stats

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._stats.udp_bytes_sent += len(data)
        self._stats.udp_datagrams_sent += 1
        self._transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _QuicProtocol(QuicConnectionProtocol):
    """aioquic's asyncio protocol for one connection; forwards its events to the carrier."""

    carrier: QuicCarrier
    sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        counted = _CountingTransport(cast(asyncio.DatagramTransport, transport),
                                     self.carrier.stats)
        super().connection_made(cast(asyncio.BaseTransport, counted))

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._count(data, addr)
        _drain(self.sock, self._count)

    def _count(self, data: bytes | str, addr: Any) -> None:
        self.carrier.stats.udp_bytes_received += len(data)
        super().datagram_received(data, addr)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        self.carrier._on_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.carrier._notify_closed(str(exc) if exc else "transport closed")


class QuicCarrier:
    """One QUIC connection as a :class:`theta_net.carrier.Carrier`."""

    def __init__(
        self,
        quic: QuicConnection,
        *,
        accept: Callable[[Carrier], CarrierHandler] | None = None,
        handler: CarrierHandler | None = None,
        fingerprint: str = "",
        max_message: int = 1 << 20,
        max_send_buffer: int = 8 << 20,
        max_datagram_age: float = 0.05,
        on_close: Callable[[QuicCarrier], None] | None = None,
    ) -> None:
        _limit_streams(quic)
        self.protocol = _QuicProtocol(quic)
        self.protocol.carrier = self
        self._quic = quic
        self._accept = accept
        self.handler = handler
        self.expected_fingerprint = fingerprint.lower().replace(":", "")
        self.peer_fingerprint = ""
        self.max_message = max_message
        self.max_send_buffer = max_send_buffer
        self.max_datagram_size = quic.configuration.max_datagram_size - DATAGRAM_OVERHEAD - 1
        self.stats = QuicStats()
        self.closed = False
        self.close_reason = ""
        self._on_close = on_close
        self._deframer = Deframer(max_message)
        self._stream_id: int | None = None
        self._loop = asyncio.get_running_loop()
        self.opened_at = self._loop.time()
        self._verified: asyncio.Future[None] = self._loop.create_future()
        self._verified.add_done_callback(_retrieve)  # a failure nobody awaits is not an error
        self._flush_scheduled = False
        self._queued_at: deque[float] = deque()
        self.max_datagram_age = max_datagram_age

    # -- Carrier -------------------------------------------------------------------------------
    def send(self, channel: Channel, payload: bytes) -> bool:
        if self.closed:
            return False
        if channel is Channel.RELIABLE:
            if self._stream_id is None:
                self._stream_id = self._quic.get_next_available_stream_id()
            self._quic.send_stream_data(self._stream_id, frame(payload))
            if self._send_buffered() > self.max_send_buffer:
                self.stats.unread_closes += 1
                self.close("the peer does not read its reliable stream")
                return False
            self._schedule_flush()
            return True
        if len(payload) > self.max_datagram_size:
            self.stats.oversize_dropped += 1
            return False
        self._drop_stale()
        if len(payload) + 1 > self.unreliable_budget():
            self.stats.stale_dropped += 1
            return False
        self._quic.send_datagram_frame(_CHANNEL_BYTES[channel] + payload)
        self._queued_at.append(self._loop.time())
        self.stats.datagrams_sent += 1
        # A datagram fills a packet of its own: send it now rather than one loop turn later.
        if self.protocol._transport is not None:
            self.protocol.transmit()
        return True

    def _drop_stale(self) -> None:
        """Datagrams the congestion window or the pacer held longer than ``max_datagram_age``
        are stale (newer state follows): drop them rather than send them late."""
        pending, times = self._quic._datagrams_pending, self._queued_at
        while len(times) > len(pending):  # aioquic sends from the left
            times.popleft()
        limit = self._loop.time() - self.max_datagram_age
        while times and times[0] < limit:
            times.popleft()
            pending.popleft()
            self.stats.stale_dropped += 1

    def unreliable_budget(self) -> int:
        """Congestion window minus bytes in flight and datagrams already queued."""
        loss = self._quic._loss
        queued = sum(len(d) for d in self._quic._datagrams_pending)
        return max(0, int(loss.congestion_window - loss.bytes_in_flight) - queued)

    def close(self, reason: str = "") -> None:
        if self.closed:
            return
        if self.protocol._transport is not None:
            self.protocol.transmit()  # what is queued (a Refusal, a Close) goes out first
        self.closed = True
        self.close_reason = reason
        _fail(self._verified, ConnectError(reason or "closed"))  # a connect waiting gives up now
        self._quic.close(error_code=0, reason_phrase=reason[:100])
        if self.protocol._transport is not None:
            self.protocol.transmit()
        self._notify_closed(reason or "closed")

    # -- pumping -------------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Transmit what is queued (reliable sends are coalesced into one transmit per loop
        turn; datagrams go at once)."""
        self._flush_scheduled = False
        if self.protocol._transport is None:
            return
        self.protocol.transmit()
        self._drop_stale()

    def _send_buffered(self) -> int:
        if self._stream_id is None:
            return 0
        stream = self._quic._streams.get(self._stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    # -- aioquic events ------------------------------------------------------------------------
    def _on_event(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.DatagramFrameReceived):
            data = event.data
            channel = _UNRELIABLE_BY_BYTE.get(data[0]) if data else None
            if channel is None or self.handler is None:
                self.stats.bad_datagrams += 1
                return
            self.stats.datagrams_received += 1
            self.handler.carrier_received(channel, data[1:])
        elif isinstance(event, events.StreamDataReceived):
            self._on_stream(event)
        elif isinstance(event, events.HandshakeCompleted):
            self._on_handshake()
        elif isinstance(event, events.ConnectionTerminated):
            if event.error_code == QuicErrorCode.STREAM_LIMIT_ERROR:
                self.stats.bad_streams += 1  # the peer opened a stream it was not granted
            self.closed = True
            reason = event.reason_phrase or f"connection closed (code {event.error_code})"
            self.close_reason = self.close_reason or reason
            _fail(self._verified, ConnectError(reason))
            self._notify_closed(reason)
            transport = self.protocol._transport
            if self._quic.configuration.is_client and transport is not None:
                # A client's carrier owns its UDP socket: the connection is over, so is it.
                self._loop.call_soon(transport.close)

    def _on_stream(self, event: events.StreamDataReceived) -> None:
        if self._stream_id is None and not self._quic.configuration.is_client:
            self._stream_id = event.stream_id
        if event.stream_id != self._stream_id or self.handler is None:
            self.stats.bad_streams += 1
            return
        for message in self._deframer.feed(event.data):
            if self.closed or self.handler is None:
                return
            self.handler.carrier_received(Channel.RELIABLE, message)
        if self._deframer.failed:
            self.stats.oversize_frames += 1
            self.close(self._deframer.failed)

    def _on_handshake(self) -> None:
        if self._quic.configuration.is_client:
            cert = getattr(self._quic.tls, "_peer_certificate", None)
            der = cert.public_bytes(_DER) if cert is not None else b""
            self.peer_fingerprint = hashlib.sha256(der).hexdigest()
            if self.expected_fingerprint and self.peer_fingerprint != self.expected_fingerprint:
                error = FingerprintMismatchError(self.expected_fingerprint, self.peer_fingerprint)
                _fail(self._verified, error)
                self.close("certificate fingerprint mismatch")
                return
        elif self._accept is not None and self.handler is None:
            self.handler = self._accept(self)
        if not self._verified.done():
            self._verified.set_result(None)

    def _notify_closed(self, reason: str) -> None:
        self.closed = True
        handler, self.handler = self.handler, None
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None
        if handler is not None:
            handler.carrier_closed(reason)

    @property
    def handshake_done(self) -> bool:
        """The TLS handshake completed (and, on a client, the certificate was verified)."""
        return self._verified.done() and not self._verified.exception()

    async def wait_verified(self) -> None:
        await asyncio.shield(self._verified)


from cryptography.hazmat.primitives.serialization import Encoding as _Encoding  # noqa: E402

_DER = _Encoding.DER


def _fault_fields(stats: QuicStats) -> dict[str, int]:
    return {"stale_dropped": stats.stale_dropped, "oversize_dropped": stats.oversize_dropped,
            "bad_datagrams": stats.bad_datagrams, "bad_streams": stats.bad_streams,
            "oversize_frames": stats.oversize_frames, "unread_closes": stats.unread_closes}


class QuicListener:
    """A listening QUIC server (``Listener``): the address it bound and its open carriers."""

    def __init__(self, server: QuicServer, address: tuple[str, int], identity: ServerIdentity):
        self._server = server
        self.address = address
        self.identity = identity
        self.carriers: set[QuicCarrier] = set()
        self.refused_connections = 0
        self.half_open_evicted = 0
        #: Set by the server: whether a carrier's session has yet to be admitted (no hello
        #: answered); such a carrier may make room for a newcomer too, after TLS half-opens.
        self.unadmitted: Callable[[QuicCarrier], bool] | None = None
        self._retired: dict[str, int] = {}
        self.closed = False

    @property
    def fingerprint_hex(self) -> str:
        return self.identity.fingerprint_hex

    def retire(self, carrier: QuicCarrier) -> None:
        for name, n in _fault_fields(carrier.stats).items():
            self._retired[name] = self._retired.get(name, 0) + n

    def fault_counts(self) -> dict[str, int]:
        """The carriers' drops (live and closed connections) and the listener's own."""
        total = dict(self._retired)
        for carrier in self.carriers:
            for name, n in _fault_fields(carrier.stats).items():
                total[name] = total.get(name, 0) + n
        total["not_quic"] = self.not_quic
        total["connections_refused"] = self.refused_connections
        total["half_open_evicted"] = self.half_open_evicted
        return total

    def evict_half_open(self) -> bool:
        """Close the oldest connection whose TLS handshake has not completed, else the oldest
        whose session is not admitted yet (True if one was): a full server makes room for a
        newcomer that way, so a burst of Initial packets, each with a fresh connection id, or of
        TLS handshakes never followed by a hello, cannot lock clients out for the whole idle
        (or handshake) timeout."""
        half_open = [c for c in self.carriers if not c.closed and not c.handshake_done]
        if not half_open and self.unadmitted is not None:
            unadmitted = self.unadmitted
            half_open = [c for c in self.carriers if not c.closed and unadmitted(c)]
        if not half_open:
            return False
        victim = min(half_open, key=lambda c: c.opened_at)
        self.half_open_evicted += 1
        victim.close("evicted: the server was full and the TLS handshake had not completed")
        return True

    @property
    def not_quic(self) -> int:
        """Datagrams that were not QUIC packets (dropped)."""
        return self._server.not_quic if isinstance(self._server, _DrainingQuicServer) else 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for carrier in list(self.carriers):
            carrier.close("server shutting down")
        self._server.close()


class QuicTransport:
    """The ``quic`` entry of ``theta.transports``: opens QUIC carriers."""

    name = "quic"

    def __init__(
        self,
        *,
        identity: ServerIdentity | None = None,
        max_connections: int = 256,
        max_message: int = 1 << 20,
        idle_timeout: float = 15.0,
        max_datagram_size: int = 1200,
        max_send_buffer: int = 8 << 20,
        connect_timeout: float = 5.0,
    ) -> None:
        self.identity = identity
        self.max_send_buffer = max_send_buffer
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_message = max_message
        self.idle_timeout = idle_timeout
        self.max_datagram_size = max_datagram_size

    def _config(self, is_client: bool) -> QuicConfiguration:
        cfg = QuicConfiguration(
            is_client=is_client, alpn_protocols=[ALPN], max_datagram_frame_size=65536,
            idle_timeout=self.idle_timeout, max_datagram_size=self.max_datagram_size,
        )
        if is_client:
            # The server's certificate is self-signed: it is checked against the pinned
            # fingerprint (QuicCarrier._on_handshake) before any session byte goes out.
            cfg.verify_mode = ssl.CERT_NONE
        return cfg

    async def listen(
        self, host: str, port: int, accept: Callable[[Carrier], CarrierHandler]
    ) -> QuicListener:
        identity = self.identity or ServerIdentity.load_or_create(None, host)
        self.identity = identity
        cfg = self._config(False)
        cfg.certificate = identity.certificate
        cfg.private_key = identity.private_key
        loop = asyncio.get_running_loop()
        listener: QuicListener | None = None

        def forget(carrier: QuicCarrier) -> None:
            if listener is not None:
                listener.carriers.discard(carrier)
                listener.retire(carrier)

        def create(quic: QuicConnection, stream_handler: Any = None) -> QuicConnectionProtocol:
            assert listener is not None
            carrier = QuicCarrier(quic, accept=accept, max_message=self.max_message,
                                  max_send_buffer=self.max_send_buffer, on_close=forget)
            if len(listener.carriers) >= self.max_connections and not listener.closed:
                listener.evict_half_open()
            if len(listener.carriers) >= self.max_connections or listener.closed:
                listener.refused_connections += 1
                carrier._accept = None
                quic.close(error_code=0x2, reason_phrase="server full")
                return carrier.protocol
            listener.carriers.add(carrier)
            return carrier.protocol

        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        udp = _udp_socket(host, port, infos[0][0], SERVER_SOCKET_BUFFER)
        _, server = await loop.create_datagram_endpoint(
            lambda: _DrainingQuicServer(configuration=cfg, create_protocol=create), sock=udp,
        )
        server.sock = udp
        bound = udp.getsockname()
        listener = QuicListener(server, (bound[0], bound[1]), identity)
        return listener

    async def connect(
        self, host: str, port: int, handler: CarrierHandler, *, fingerprint: str = "",
        timeout: float | None = None,
    ) -> QuicCarrier:
        loop = asyncio.get_running_loop()
        cfg = self._config(True)
        cfg.server_name = host
        quic = QuicConnection(configuration=cfg)
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                           flags=socket.AI_NUMERICHOST if _is_ip(host) else 0)
        except OSError as exc:
            raise ConnectError(f"cannot resolve {host}: {exc}") from exc
        addr = infos[0][4]
        udp = _udp_socket("::" if infos[0][0] == socket.AF_INET6 else "0.0.0.0", 0, infos[0][0],
                          CLIENT_SOCKET_BUFFER)
        carrier = QuicCarrier(quic, handler=handler, fingerprint=fingerprint,
                              max_message=self.max_message)
        carrier.protocol.sock = udp
        transport, _ = await loop.create_datagram_endpoint(lambda: carrier.protocol, sock=udp)
        carrier.protocol.connect(addr)
        timeout = self.connect_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(carrier.wait_verified(), timeout)
        except asyncio.TimeoutError:
            carrier.close("handshake timed out")
            transport.close()
            raise ConnectError(f"no QUIC handshake with {host}:{port} in {timeout:g} s") from None
        except BaseException:  # failed, or cancelled by a caller's own timeout: leave nothing
            carrier.close("connect abandoned")
            transport.close()
            raise
        return carrier


