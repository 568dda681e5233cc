"""The theta session protocol, sans-I/O: no sockets, no asyncio, no aioquic or aiortc here
(``tests/test_net_session_purity.py`` scans the imports)."""

from .events import (
    CommandsReceived,
    Connected,
    Disconnected,
    Event,
    HeartbeatMeasured,
    InterestReceived,
    Negotiated,
    RefusalCode,
    Refused,
    RosterReceived,
    StateReceived,
    VoiceReceived,
)
from .framing import Deframer, frame
from .pump import drain_events, roundtrip, transfer
from .rtt import LossEstimator, RttEstimator
from .session import (
    DEFAULT_FEATURES,
    Admission,
    ClientCredentials,
    Session,
    SessionConfig,
    SessionState,
    SessionStats,
    fingerprint_of,
)
from .tokens import JoinToken, TokenAuthority, TokenVerifier, parse_role

__all__ = [
    "DEFAULT_FEATURES",
    "Admission",
    "ClientCredentials",
    "CommandsReceived",
    "Connected",
    "Deframer",
    "Disconnected",
    "Event",
    "HeartbeatMeasured",
    "InterestReceived",
    "JoinToken",
    "LossEstimator",
    "Negotiated",
    "RefusalCode",
    "Refused",
    "RosterReceived",
    "RttEstimator",
    "Session",
    "SessionConfig",
    "SessionState",
    "SessionStats",
    "StateReceived",
    "TokenAuthority",
    "TokenVerifier",
    "VoiceReceived",
    "drain_events",
    "fingerprint_of",
    "frame",
    "parse_role",
    "roundtrip",
    "transfer",
]
