"""Ed25519 signing (pyca/cryptography) and verification (libsodium through PyNaCl) of batches.

Verification runs once per received batch, often of one entry, so it uses libsodium, about twice
as fast per call as cryptography here. Both take raw 32-byte keys and standard Ed25519
signatures, so a signature made by either verifies in the other.

An author's id is derived from its public key, so an entry cannot claim an author whose key did
not sign it. Signatures cover a domain-separation prefix, so a batch signature can never be
replayed as a signature of some other theta message.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from .entry import SignedBatch
from .errors import SignatureError, UnknownAuthorError

DOMAIN = b"theta.commandlog.batch.v1\x00"
CHECKPOINT_DOMAIN = b"theta.commandlog.checkpoint.v1\x00"
PUBLIC_KEY_BYTES = 32


def author_id(public_key: bytes) -> int:
    """The 64-bit author id of a raw 32-byte Ed25519 public key (never 0)."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    digest = hashlib.sha256(b"theta.author\x00" + public_key).digest()
    return int.from_bytes(digest[:8], "little") or 1


class Signer:
    """A local author's private key."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self._key = key if key is not None else Ed25519PrivateKey.generate()
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.author = author_id(self.public_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        """A deterministic key from 32 secret bytes (tests, or keys kept by the application)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def secret_seed(self) -> bytes:
        """The 32 secret bytes (to keep the author's identity across restarts; guard them)."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, signed_bytes: bytes, domain: bytes = DOMAIN) -> bytes:
        return self._key.sign(domain + signed_bytes)


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by raw ``public_key``."""
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError):
        return False
    return True


class Verifier:
    """Public keys by author id; verifies batches."""

    def __init__(self) -> None:
        self._keys: dict[int, bytes] = {}

    def add(self, public_key: bytes) -> int:
        author = author_id(public_key)
        self._keys[author] = bytes(public_key)
        return author

    def knows(self, author: int) -> bool:
        return author in self._keys

    def key_of(self, author: int) -> bytes | None:
        return self._keys.get(author)

    def verify(self, batch: SignedBatch) -> None:
        """Raises SignatureError (or UnknownAuthorError) unless ``batch`` is authentic."""
        key = self._keys.get(batch.author)
        if key is None:
            raise UnknownAuthorError(f"no public key for author {batch.author:016x}")
        if not verify_signature(key, batch.signature, DOMAIN + batch.signed_bytes):
            raise SignatureError(
                f"bad signature on a batch of {len(batch.entries)} entries from "
                f"{batch.author:016x}"
            )
