"""``ipc``: a local transport over a Unix SOCK_SEQPACKET socket pair.

SEQPACKET keeps message boundaries (one ``send`` is one ``receive``d message) and is reliable
and ordered, so both of theta's channel kinds hold: unreliable sends simply never drop. It suits
an engine and a server process on the same host (hand one socket to the child process).
"""

from __future__ import annotations

import socket

from theta_ecs.errors import ThetaError

MAX_MESSAGE = 64 * 1024


class IpcTransportError(ThetaError, OSError):
    """The transport is closed, or a message is larger than the socket accepts."""


class IpcTransport:
    """One end: ``send`` a message, ``receive`` every message that has arrived (non-blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self.closed = False

    def send(self, data: bytes, *, reliable: bool = False) -> None:
        if self.closed:
            raise IpcTransportError("send on a closed ipc transport")
        if len(data) > MAX_MESSAGE:
            raise IpcTransportError(f"message of {len(data)} bytes, the limit is {MAX_MESSAGE}")
        self._sock.send(data)

    def receive(self) -> list[bytes]:
        out: list[bytes] = []
        while not self.closed:
            try:
                data = self._sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                break
            if not data:  # the peer closed its end
                break
            out.append(data)
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()


class IpcTransportFactory:
    """The ``ipc`` entry of ``theta.transports``: ``connect_pair()`` gives two connected ends."""

    def __init__(self, **_options: object) -> None:
        if not hasattr(socket, "AF_UNIX"):
            raise IpcTransportError("the ipc transport needs Unix domain sockets")

    def connect_pair(self) -> tuple[IpcTransport, IpcTransport]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return IpcTransport(a), IpcTransport(b)
