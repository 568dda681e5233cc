"""Every error theta_net raises, under :class:`theta_ecs.errors.ThetaError`.

Peer faults are dropped and counted, never raised out of a session's ``receive``; these errors
are for an engine's misuse (a send before the session is connected) and for local configuration
(a token that cannot be issued, a certificate that cannot be read).
"""

from __future__ import annotations

from theta_ecs.errors import ThetaError


class NetError(ThetaError):
    """Base of theta_net's errors."""


class SessionStateError(NetError, RuntimeError):
    """A call or transition the session's current state does not allow."""

    def __init__(self, action: str, state: str, allowed: tuple[str, ...] = ()) -> None:
        extra = f" (allowed from: {', '.join(allowed)})" if allowed else ""
        super().__init__(f"cannot {action} in state {state}{extra}")
        self.action = action
        self.state = state
        self.allowed = allowed


class MessageTooLargeError(NetError, ValueError):
    """A payload over the size its channel takes."""

    def __init__(self, channel: str, size: int, limit: int) -> None:
        super().__init__(f"a {size}-byte payload is over the {limit}-byte limit of {channel}")
        self.channel = channel
        self.size = size
        self.limit = limit


class TokenError(NetError, ValueError):
    """A join token that is not valid; ``code`` names why (malformed, forged, expired, ...)."""

    code = "malformed"


class TokenMalformedError(TokenError):
    code = "malformed"


class TokenForgedError(TokenError):
    code = "forged"


class TokenExpiredError(TokenError):
    code = "expired"

    def __init__(self, expires_at: float, now: float) -> None:
        super().__init__(f"the token expired at {expires_at:.0f}, it is now {now:.0f} (unix s)")
        self.expires_at = expires_at
        self.now = now


class CertificateError(NetError, ValueError):
    """A certificate or key that cannot be made, read or matched to its pinned fingerprint."""


class FingerprintMismatchError(CertificateError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"server certificate fingerprint {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


class ConnectError(NetError, ConnectionError):
    """A client could not establish a session (unreachable, refused, timed out)."""


class RefusedError(ConnectError):
    """The server refused the client; fields as the Refusal carried them."""

    def __init__(self, code: int, reason: str, what: str = "", here: str = "", there: str = ""):
        super().__init__(f"refused: {reason}")
        self.code = code
        self.reason = reason
        self.what = what
        self.here = here
        self.there = there
