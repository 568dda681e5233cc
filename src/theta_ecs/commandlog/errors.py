"""Errors of the command log: each says what was wrong with the entry, the packet or the store."""

from __future__ import annotations

from ..errors import DecodeError as DecodeError  # one class for every decoder (theta_ecs.errors)
from ..errors import ThetaError


class CommandLogError(ThetaError):
    """Base of every error the command log raises on purpose."""


class SignatureError(CommandLogError):
    """A batch whose Ed25519 signature does not match its bytes and author."""


class UnknownAuthorError(CommandLogError, KeyError):
    """An author id the roster does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown author"


class PermissionDeniedError(CommandLogError, PermissionError):
    """The author's role does not allow this command type (or scope)."""


class RateLimitedError(CommandLogError):
    """The local author issued commands faster than its token bucket allows."""


class CommandPayloadError(CommandLogError, ValueError):
    """A command whose payload or scope its command type does not accept."""


class StoreError(CommandLogError):
    """A command store that cannot be opened, read or written."""


class StoreCorruptError(StoreError):
    """A store whose content is damaged: not a database, undecodable or tampered entries."""


class ForeignStoreError(StoreError):
    """A database that exists but was not written by theta's command log."""


class DurabilityError(StoreError, ValueError):
    """A store asked for a weaker durability than it promises without saying so explicitly."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class CheckpointError(CommandLogError):
    """A checkpoint that cannot be made here (no signer, not an admin, nothing to cover)."""
