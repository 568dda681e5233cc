"""A cheap structural check of SDP offers and answers before they reach aiortc or a peer.

The signaling service relays SDP from unauthenticated networks to a host: it refuses what cannot
be a data-channel session description (too big, not SDP, no ``m=application`` over SCTP, no ICE
credentials or DTLS fingerprint) with a :class:`SdpError` naming the problem, so a host never
spends a peer connection on it. aiortc's own parser still has the last word.
"""

from __future__ import annotations

import re

from theta_ecs.errors import ThetaError

__all__ = ["MAX_SDP_BYTES", "SdpError", "validate_sdp"]

#: A data-channel offer with a few dozen candidates is 1 to 3 kB; 32 kB is generous.
MAX_SDP_BYTES = 32 * 1024
_LINE = re.compile(r"^[a-z]=[\x20-\x7e]*$")
_MEDIA = re.compile(r"^m=application \d{1,5} (UDP/DTLS/SCTP|DTLS/SCTP|UDP/TLS/RTP/SAVPF)\b")
_FINGERPRINT = re.compile(
    r"^a=fingerprint:sha-(256|384|512) ([0-9A-Fa-f]{2}:){31,63}[0-9A-Fa-f]{2}$"
)


class SdpError(ThetaError, ValueError):
    """An SDP that is not a usable data-channel session description."""

    def __init__(self, problem: str, *, expected: str = "", actual: str = "") -> None:
        detail = f" (expected {expected}, got {actual})" if expected or actual else ""
        super().__init__(f"malformed SDP: {problem}{detail}")
        self.problem = problem
        self.expected = expected
        self.actual = actual


def validate_sdp(sdp: object, kind: str = "offer") -> str:
    """Return ``sdp`` (normalised to CRLF line ends) or raise :class:`SdpError`."""
    if not isinstance(sdp, str):
        raise SdpError(f"{kind} SDP is not a string", expected="str", actual=type(sdp).__name__)
    size = len(sdp.encode("utf-8", "replace"))
    if size > MAX_SDP_BYTES:
        raise SdpError(f"{kind} SDP too large", expected=f"<= {MAX_SDP_BYTES} bytes",
                       actual=f"{size} bytes")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise SdpError("first line is not v=0", expected="v=0",
                       actual=repr(lines[0][:40]) if lines else "nothing")
    for number, line in enumerate(lines, 1):
        if not _LINE.match(line):
            raise SdpError(f"line {number} is not '<letter>=<printable ASCII>'",
                           actual=repr(line[:40]))
    present = {line[:2] for line in lines}
    for needed in ("o=", "s=", "t=", "m="):
        if needed not in present:
            raise SdpError(f"no {needed} line")
    if not any(_MEDIA.match(line) for line in lines if line.startswith("m=")):
        raise SdpError("no data-channel media section",
                       expected="m=application <port> UDP/DTLS/SCTP webrtc-datachannel")
    for attribute in ("a=ice-ufrag:", "a=ice-pwd:", "a=setup:"):
        if not any(line.startswith(attribute) for line in lines):
            raise SdpError(f"no {attribute[:-1]} attribute")
    fingerprints = [line for line in lines if line.startswith("a=fingerprint:")]
    if not fingerprints or not all(_FINGERPRINT.match(line) for line in fingerprints):
        raise SdpError("no valid DTLS fingerprint", expected="a=fingerprint:sha-256 AA:BB:...",
                       actual=repr(fingerprints[0][:60]) if fingerprints else "none")
    return "\r\n".join(lines) + "\r\n"
