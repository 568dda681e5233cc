"""theta_net: sessions over QUIC (and WebRTC), a server that hosts a World and a client that
mirrors it. ``theta_net.Server`` and ``theta_net.Client`` are imported on first use, so that
``import theta_net`` (and the ``theta`` command) stay light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client
    from .server import Server

__all__ = ["Client", "Server"]


def __getattr__(name: str) -> Any:
    if name == "Server":
        from .server import Server

        return Server
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'theta_net' has no attribute {name!r}")
