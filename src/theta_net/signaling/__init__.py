"""The WebRTC signaling service (aiohttp): offers and answers over HTTP, one room per session,
and the browser spectator page."""

from .config import SignalingConfig, SignalingConfigError
from .service import (
    Answerer,
    OfferRefused,
    PendingOffer,
    SignalingLimits,
    SignalingService,
    TokenRejected,
    TokenVerifier,
)

__all__ = [
    "Answerer",
    "OfferRefused",
    "PendingOffer",
    "SignalingConfig",
    "SignalingConfigError",
    "SignalingLimits",
    "SignalingService",
    "TokenRejected",
    "TokenVerifier",
]
