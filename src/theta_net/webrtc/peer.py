"""Opening a WebRTC carrier from either side of an offer/answer exchange (non-trickle ICE).

aiortc gathers every candidate inside ``setLocalDescription``, so the description it returns
is complete: one HTTP round trip through the signaling service carries each side's SDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .carrier import WebRtcCarrier, create_channels
from .ice import IceServer, host_addresses_from_env, restrict_host_addresses
from .sdp import validate_sdp

__all__ = ["accept_offer", "complete_offer", "new_peer_connection", "open_offer"]


def new_peer_connection(ice_servers: Sequence[IceServer] = ()) -> Any:
    """An ``RTCPeerConnection`` configured with ``ice_servers`` (host candidates when empty)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    restrict_host_addresses(host_addresses_from_env())
    return RTCPeerConnection(RTCConfiguration(iceServers=[s.to_rtc() for s in ice_servers]))


async def open_offer(
    ice_servers: Sequence[IceServer] = (), **carrier_options: Any
) -> tuple[WebRtcCarrier, str]:
    """The offering side: a carrier (channels not yet open) and the complete offer SDP."""
    pc = new_peer_connection(ice_servers)
    carrier = WebRtcCarrier(pc, create_channels(pc), **carrier_options)
    await pc.setLocalDescription(await pc.createOffer())
    return carrier, str(pc.localDescription.sdp)


async def complete_offer(carrier: WebRtcCarrier, answer_sdp: str) -> None:
    """Apply the answer the signaling service returned (channels open once ICE and DTLS are up)."""
    from aiortc import RTCSessionDescription

    answer = validate_sdp(answer_sdp, "answer")
    await carrier.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def accept_offer(
    offer_sdp: str, ice_servers: Sequence[IceServer] = (), **carrier_options: Any
) -> tuple[WebRtcCarrier, str]:
    """The answering side: a carrier for ``offer_sdp`` and the complete answer SDP.

    Raises :class:`~theta_net.webrtc.sdp.SdpError` for an offer that is not a data-channel
    description (aiortc's own parse errors come through as ``ValueError``).
    """
    from aiortc import RTCSessionDescription

    offer = validate_sdp(offer_sdp, "offer")
    pc = new_peer_connection(ice_servers)
    try:
        carrier = WebRtcCarrier(pc, create_channels(pc), **carrier_options)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except BaseException:
        await pc.close()
        raise
    return carrier, str(pc.localDescription.sdp)
