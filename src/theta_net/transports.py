"""Choosing the network transport: an explicit backend or name, then ``THETA_TRANSPORT``, then
``quic`` (the core's own default, ``loopback``, is an in-process model without sockets)."""

from __future__ import annotations

import os
from typing import Any

from theta_ecs import plugins
from theta_ecs.errors import BackendUnavailableError

from .carrier import TransportBackend

DEFAULT = "quic"


def resolve(transport: TransportBackend | str | None = None, **options: Any) -> TransportBackend:
    """A transport backend: ``transport`` itself, or the entry point it (or the environment,
    or :data:`DEFAULT`) names, made with ``options``."""
    if transport is not None and not isinstance(transport, str):
        return transport
    name = transport or os.environ.get("THETA_TRANSPORT") or DEFAULT
    backend = plugins.create("theta.transports", name, **options)
    if hasattr(backend, "connect_pair") and not hasattr(backend, "listen"):
        # The core's in-process loopback model: serve it through the carrier adapter.
        from .loopback import LoopbackBackend

        backend = LoopbackBackend(backend)
    if not hasattr(backend, "listen") or not hasattr(backend, "connect"):
        raise BackendUnavailableError(
            f"transport {name!r} is not a network transport (it has no listen/connect): "
            "Server and Client need quic or webrtc"
        )
    result: TransportBackend = backend
    return result
