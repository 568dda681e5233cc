"""ICE servers (STUN/TURN) from configuration: ``THETA_ICE_SERVERS``.

Two spellings are accepted, because operators copy them from two places:

* URLs separated by commas or whitespace, credentials in the userinfo part:
  ``stun:stun.example.org:3478, turn:alice:s3cret@turn.example.org:3478?transport=udp``
* the browser's JSON form, a list of ``{"urls": ..., "username": ..., "credential": ...}``.

Everything is validated up front (scheme, host, port, TURN credentials) so that a typo fails at
start-up with the offending entry named, not as an ICE failure minutes later.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from theta_ecs.errors import ThetaError

__all__ = [
    "ENV_VAR",
    "HOST_ADDRESSES_VAR",
    "IceConfigError",
    "IceServer",
    "host_addresses_from_env",
    "ice_servers_from_env",
    "parse_ice_servers",
    "restrict_host_addresses",
]

ENV_VAR = "THETA_ICE_SERVERS"
#: Which local addresses offer host candidates (comma-separated; unset: every interface but
#: loopback, aioice's default). Tests set 127.0.0.1 so that nothing listens beyond loopback.
HOST_ADDRESSES_VAR = "THETA_ICE_HOST_ADDRESSES"
_SCHEMES = {"stun": 3478, "stuns": 5349, "turn": 3478, "turns": 5349}
_TRANSPORTS = {"udp", "tcp"}
# scheme:[user[:password]@]host[:port][?transport=udp|tcp]; host may be an [IPv6] literal.
_URL = re.compile(
    r"^(?P<scheme>[a-zA-Z]+):(?://)?(?:(?P<user>[^:@/?\s]*)(?::(?P<password>[^@/?\s]*))?@)?"
    r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[A-Za-z]+))?$"
)


class IceConfigError(ThetaError, ValueError):
    """An ICE server entry that cannot be used; names the entry and what is wrong with it."""

    def __init__(self, entry: str, problem: str) -> None:
        super().__init__(f"{ENV_VAR}: {entry!r}: {problem}")
        self.entry = entry
        self.problem = problem


@dataclass(frozen=True)
class IceServer:
    """One validated STUN or TURN server."""

    url: str  # normalised: scheme:host:port[?transport=...], credentials removed
    username: str | None = None
    credential: str | None = None

    @property
    def is_turn(self) -> bool:
        return self.url.startswith("turn")

    def to_rtc(self) -> Any:
        """The aiortc ``RTCIceServer`` for this entry."""
        from aiortc import RTCIceServer

        return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)

    def to_browser(self) -> dict[str, str]:
        """The entry as a browser's ``RTCIceServer`` dictionary (for the spectator page)."""
        out = {"urls": self.url}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


def _parse_url(raw: str, username: str | None, credential: str | None) -> IceServer:
    m = _URL.match(raw.strip())
    if m is None:
        raise IceConfigError(raw, "not a STUN/TURN URL (scheme:host[:port][?transport=udp|tcp])")
    scheme = m["scheme"].lower()
    if scheme not in _SCHEMES:
        raise IceConfigError(raw, f"scheme {scheme!r} is not one of {sorted(_SCHEMES)}")
    port = int(m["port"]) if m["port"] else _SCHEMES[scheme]
    if not 1 <= port <= 65535:
        raise IceConfigError(raw, f"port {port} outside 1..65535")
    transport = m["transport"]
    if transport is not None:
        if transport.lower() not in _TRANSPORTS:
            raise IceConfigError(raw, f"transport {transport!r} is not udp or tcp")
        if scheme.startswith("stun"):
            raise IceConfigError(raw, "?transport= applies to TURN only")
    user = unquote(m["user"]) if m["user"] else None
    password = unquote(m["password"]) if m["password"] is not None else None
    if user is not None and username is not None and user != username:
        raise IceConfigError(raw, "two different usernames (in the URL and beside it)")
    username = username if username is not None else user
    credential = credential if credential is not None else password
    if scheme.startswith("turn"):
        if not username or not credential:
            raise IceConfigError(raw, "a TURN server needs a username and a credential")
    elif username is not None or credential is not None:
        raise IceConfigError(raw, "a STUN server takes no credentials")
    url = f"{scheme}:{m['host']}:{port}"
    if transport is not None:
        url += f"?transport={transport.lower()}"
    return IceServer(url=url, username=username, credential=credential)


def _from_json(text: str) -> list[IceServer]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IceConfigError(text[:60], f"not valid JSON ({exc.msg} at {exc.pos})") from None
    if isinstance(doc, Mapping):
        doc = [doc]
    if not isinstance(doc, list):
        raise IceConfigError(text[:60], "JSON must be a list of {urls, username, credential}")
    servers: list[IceServer] = []
    for item in doc:
        if not isinstance(item, Mapping) or "urls" not in item:
            raise IceConfigError(str(item)[:60], "each JSON entry needs 'urls'")
        urls = item["urls"]
        urls = [urls] if isinstance(urls, str) else urls
        username, credential = item.get("username"), item.get("credential")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls) or not urls:
            raise IceConfigError(str(item)[:60], "'urls' must be a string or a list of strings")
        for name, value in (("username", username), ("credential", credential)):
            if value is not None and not isinstance(value, str):
                raise IceConfigError(str(item)[:60], f"{name!r} must be a string")
        servers.extend(_parse_url(u, username, credential) for u in urls)
    return servers


def parse_ice_servers(text: str) -> list[IceServer]:
    """Every server in ``text`` (URL list or JSON); empty text means none (host candidates)."""
    text = text.strip()
    if not text:
        return []
    if text[0] in "[{":
        return _from_json(text)
    return [_parse_url(part, None, None) for part in re.split(r"[\s,]+", text) if part]


def ice_servers_from_env(environ: Mapping[str, str] | None = None) -> list[IceServer]:
    """The servers named by ``THETA_ICE_SERVERS`` (none when unset)."""
    env = os.environ if environ is None else environ
    return parse_ice_servers(env.get(ENV_VAR, ""))


def host_addresses_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The addresses named by ``THETA_ICE_HOST_ADDRESSES``, validated (empty when unset)."""
    import ipaddress

    env = os.environ if environ is None else environ
    out = []
    for part in re.split(r"[\s,]+", env.get(HOST_ADDRESSES_VAR, "").strip()):
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_address(part)))
        except ValueError:
            raise IceConfigError(part, f"{HOST_ADDRESSES_VAR} takes IP addresses") from None
    return out


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates on ``addresses`` only (all but loopback when empty).

    aioice reads its interface list through one module function and has no option for it, so
    this replaces that function for the process; the setting is process-wide by nature.
    """
    from aioice import ice as aioice_ice

    original = getattr(aioice_ice, "_theta_original_get_host_addresses", None)
    if original is None:
        original = aioice_ice.get_host_addresses
        aioice_ice._theta_original_get_host_addresses = original  # type: ignore[attr-defined]
    if not addresses:
        aioice_ice.get_host_addresses = original
        return
    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice_ice.get_host_addresses = get_host_addresses
