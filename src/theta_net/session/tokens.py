"""Join tokens: a server's signed permission for one role until an expiry.

A token is ``theta1.<base64url>`` of a fixed 74-byte body and its Ed25519 signature (64 bytes)
under the server's token key (domain-separated, so no other theta signature can pass as one):

====== ===== =================================================================
bytes  field meaning
====== ===== =================================================================
1      ver   token format, 1
1      role  the :class:`theta_ecs.commandlog.Role` granted (the command log enforces it)
8      iat   issued at, unix seconds
8      exp   expires at, unix seconds
16     id    random, names the token in logs
32     fp    SHA-256 of the server's certificate (DER), or zeros: clients pin it
8      srv   the token key's id (first 8 bytes of SHA-256 of its public key)
====== ===== =================================================================

Verification is pure: the caller passes the wall-clock time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from theta_ecs.commandlog import Role

from ..errors import TokenExpiredError, TokenForgedError, TokenMalformedError

__all__ = ["TOKEN_PREFIX", "JoinToken", "TokenAuthority", "TokenVerifier", "parse_role"]

TOKEN_PREFIX = "theta1."
DOMAIN = b"theta.net.join-token.v1\x00"
_BODY = struct.Struct("<BBQQ16s32s8s")
_SIG = 64
TOKEN_BYTES = _BODY.size + _SIG
_VERSION = 1


def parse_role(name: str) -> Role:
    """``"editor"`` → Role.EDITOR; a clear error for anything else."""
    try:
        return Role[name.strip().upper()]
    except KeyError:
        known = ", ".join(r.name.lower() for r in Role)
        raise TokenMalformedError(f"unknown role {name!r} (known: {known})") from None


def _key_id(public_key: bytes) -> bytes:
    return hashlib.sha256(b"theta.token-key\x00" + public_key).digest()[:8]


@dataclass(frozen=True)
class JoinToken:
    """A verified token's claims."""

    role: Role
    issued_at: int
    expires_at: int
    token_id: bytes
    fingerprint: bytes  # 32 bytes; all zeros when the token pins no certificate

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex() if any(self.fingerprint) else ""


def decode_text(token: str | bytes) -> bytes:
    """The raw bytes of a token given as text (``theta1.…``) or already raw."""
    if isinstance(token, bytes) and not token.startswith(TOKEN_PREFIX.encode()):
        return token
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else token
    text = text.strip()
    if not text.startswith(TOKEN_PREFIX):
        raise TokenMalformedError(f"a join token starts with {TOKEN_PREFIX!r}")
    body = text[len(TOKEN_PREFIX):]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise TokenMalformedError("a join token's body is not base64url") from None


def encode_text(raw: bytes) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def peek(token: str | bytes) -> JoinToken:
    """The claims of a token WITHOUT verifying it (a client reads its pinned fingerprint)."""
    raw = decode_text(token)
    if len(raw) != TOKEN_BYTES:
        raise TokenMalformedError(f"a join token has {TOKEN_BYTES} bytes, not {len(raw)}")
    ver, role, iat, exp, tid, fp, _kid = _BODY.unpack_from(raw)
    if ver != _VERSION:
        raise TokenMalformedError(f"token format {ver}, expected {_VERSION}")
    try:
        granted = Role(role)
    except ValueError:
        raise TokenMalformedError(f"token grants unknown role {role}") from None
    return JoinToken(granted, iat, exp, tid, fp)


class TokenVerifier:
    """Checks tokens against the server's token public key."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        self.key_id = _key_id(self.public_key)

    def verify(self, token: str | bytes, now: float) -> JoinToken:
        """The token's claims; TokenMalformedError, TokenForgedError or TokenExpiredError."""
        raw = decode_text(token)
        claims = peek(raw)
        if raw[_BODY.size - 8 : _BODY.size] != self.key_id:
            raise TokenForgedError("the token was issued by another server's key")
        try:
            self._key.verify(raw[_BODY.size :], DOMAIN + raw[: _BODY.size])
        except InvalidSignature:
            raise TokenForgedError("the token's signature does not verify") from None
        if now >= claims.expires_at:
            raise TokenExpiredError(claims.expires_at, now)
        return claims


class TokenAuthority(TokenVerifier):
    """Issues tokens: holds the private token key (keep its file secret)."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self._private = key if key is not None else Ed25519PrivateKey.generate()
        super().__init__(self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def from_seed(cls, seed: bytes) -> TokenAuthority:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load_or_create(cls, path: Path) -> TokenAuthority:
        """The key in ``path`` (32 raw secret bytes), made (mode 0600) when the file is absent."""
        if path.exists():
            seed = path.read_bytes()
            if len(seed) != 32:
                raise TokenMalformedError(f"{path}: a token key file holds 32 bytes")
            return cls.from_seed(seed)
        seed = os.urandom(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(seed)
        return cls.from_seed(seed)

    def issue(
        self, role: Role | str, *, now: float, ttl: float = 3600.0, fingerprint: bytes = b""
    ) -> str:
        """A token granting ``role`` from ``now`` (unix s) for ``ttl`` seconds."""
        granted = parse_role(role) if isinstance(role, str) else Role(role)
        if ttl <= 0:
            raise TokenMalformedError(f"a token's lifetime must be positive, got {ttl}")
        fp = bytes(fingerprint)
        if fp and len(fp) != 32:
            raise TokenMalformedError(f"a certificate fingerprint has 32 bytes, not {len(fp)}")
        body = _BODY.pack(
            _VERSION, int(granted), int(now), int(now + ttl), os.urandom(16), fp or bytes(32),
            self.key_id,
        )
        return encode_text(body + self._private.sign(DOMAIN + body))
