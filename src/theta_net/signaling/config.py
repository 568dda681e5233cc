"""Where the signaling service listens and how clients and hosts reach it (environment).

=========================  =========================================  =========================
variable                   meaning                                    default
=========================  =========================================  =========================
``THETA_SIGNALING_BIND``   ``host:port`` the service listens on       ``127.0.0.1:8765``
``THETA_SIGNALING_URL``    the room URL clients POST offers to        ``http://<bind>/rooms/``
                           (``http(s)://host:port/rooms/<room>``)     ``default``
``THETA_SIGNALING_TOKEN``  the secret a remote host presents to take  none: no remote hosts
                           its room's offers (``theta signal``)
=========================  =========================================  =========================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from theta_ecs.errors import ThetaError

__all__ = ["DEFAULT_BIND", "DEFAULT_ROOM", "SignalingConfig", "SignalingConfigError"]

DEFAULT_BIND = "127.0.0.1:8765"
DEFAULT_ROOM = "default"


class SignalingConfigError(ThetaError, ValueError):
    """A signaling setting that cannot be used; names the variable and the value."""

    def __init__(self, variable: str, value: str, problem: str) -> None:
        super().__init__(f"{variable}={value!r}: {problem}")
        self.variable = variable
        self.value = value
        self.problem = problem


def parse_bind(value: str, variable: str = "THETA_SIGNALING_BIND") -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SignalingConfigError(variable, value, "expected host:port (port 0..65535)")
    return host, int(port)


def room_url(url: str, variable: str = "THETA_SIGNALING_URL") -> tuple[str, str]:
    """``(base, room)`` of a room URL ``http(s)://host:port/rooms/<room>``."""
    parts = urlsplit(url.strip())
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SignalingConfigError(variable, url, "expected http(s)://host:port/rooms/<room>")
    if len(segments) != 2 or segments[0] != "rooms":
        raise SignalingConfigError(variable, url, "the path must be /rooms/<room>")
    return f"{parts.scheme}://{parts.netloc}", segments[1]


@dataclass(frozen=True)
class SignalingConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    url: str = ""
    host_token: str | None = None

    @property
    def room_url(self) -> str:
        return self.url or f"http://{self.host}:{self.port}/rooms/{DEFAULT_ROOM}"

    @property
    def room(self) -> str:
        return room_url(self.room_url)[1]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SignalingConfig:
        env = os.environ if environ is None else environ
        host, port = parse_bind(env.get("THETA_SIGNALING_BIND", DEFAULT_BIND))
        url = env.get("THETA_SIGNALING_URL", "").strip()
        if url:
            room_url(url)
        token = env.get("THETA_SIGNALING_TOKEN") or None
        if token is not None and len(token) < 16:
            raise SignalingConfigError("THETA_SIGNALING_TOKEN", "…", "use at least 16 characters")
        return cls(host, port, url, token)
