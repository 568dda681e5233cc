"""The WebRTC transport: aiortc data channels carrying the theta session (see carrier.py)."""

from .carrier import (
    CHANNEL_IDS,
    SCTP_CHUNK_PAYLOAD,
    CarrierStats,
    WebRtcCarrier,
    WebRtcCarrierError,
)
from .ice import IceConfigError, IceServer, ice_servers_from_env, parse_ice_servers
from .peer import accept_offer, complete_offer, new_peer_connection, open_offer
from .sdp import SdpError, validate_sdp

__all__ = [
    "CHANNEL_IDS",
    "SCTP_CHUNK_PAYLOAD",
    "CarrierStats",
    "IceConfigError",
    "IceServer",
    "SdpError",
    "WebRtcCarrier",
    "WebRtcCarrierError",
    "accept_offer",
    "complete_offer",
    "ice_servers_from_env",
    "new_peer_connection",
    "open_offer",
    "parse_ice_servers",
    "validate_sdp",
]
