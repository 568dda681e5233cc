"""The QUIC carrier (aioquic): datagrams for state and voice, one stream for the rest."""

from .certs import ServerIdentity, fingerprint_hex, make_self_signed
from .transport import ALPN, QuicCarrier, QuicListener, QuicStats, QuicTransport

__all__ = [
    "ALPN",
    "QuicCarrier",
    "QuicListener",
    "QuicStats",
    "QuicTransport",
    "ServerIdentity",
    "fingerprint_hex",
    "make_self_signed",
]
