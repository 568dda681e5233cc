"""The ``opus`` voice codec: libopus through PyOgg's ctypes layer.

PyOgg 0.6.14a1 (the PyPI release) has no OpusEncoder/OpusDecoder classes, only its low-level
bindings and the loaded ``libopus`` handle. We take that handle and declare our own prototypes:
one per ``opus_*_ctl`` request, because the ctl functions are variadic and a call through one
generic prototype passes the wrong argument types on some ABIs.

48 kHz mono, 20 ms frames by default (10, 40 and 60 allowed), the VoIP application, 32 kbit/s
(inside the 16 to 64 kbit/s Mumble and WebRTC use), in-band FEC on with an expected loss that the
receiver's diagnostics feed back (capped at 20 %, as WebRTC does), DTX optional.
"""

from __future__ import annotations

import ctypes
import time
import weakref
from collections.abc import Callable
from ctypes import POINTER, c_char_p, c_int, c_int16, c_int32, c_ubyte, c_void_p
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import BackendUnavailableError, OpusError, VoiceConfigError, VoiceDecodeError

try:
    import pyogg.opus as _pyogg_opus
except ImportError as exc:  # pragma: no cover - exercised only without the voice extra
    raise BackendUnavailableError(
        f"the opus codec needs pyogg (pip install 'theta[voice]'): {exc}"
    ) from exc

_lib: Any = getattr(_pyogg_opus, "libopus", None)
if _lib is None:  # pragma: no cover - exercised only without the system library
    raise BackendUnavailableError(
        "the opus codec needs libopus (apt-get install libopus0): pyogg could not load it"
    )

__all__ = [
    "APPLICATION_VOIP",
    "MAX_PACKET_BYTES",
    "OpusCodec",
    "OpusDecoder",
    "OpusEncoder",
    "has_fec",
    "is_dtx",
    "opus_version",
]

APPLICATION_VOIP = 2048
OPUS_OK = 0
OPUS_SET_BITRATE = 4002
OPUS_GET_BITRATE = 4003
OPUS_SET_COMPLEXITY = 4010
OPUS_SET_INBAND_FEC = 4012
OPUS_GET_INBAND_FEC = 4013
OPUS_SET_PACKET_LOSS_PERC = 4014
OPUS_GET_PACKET_LOSS_PERC = 4015
OPUS_SET_DTX = 4016
OPUS_GET_DTX = 4017
OPUS_SET_SIGNAL = 4024
OPUS_GET_LOOKAHEAD = 4027
OPUS_RESET_STATE = 4028
OPUS_SIGNAL_VOICE = 3001

#: The largest Opus packet of one frame (RFC 6716, section 3.4).
MAX_PACKET_BYTES = 1275
#: A packet of at most this many bytes from the encoder need not be sent (DTX silence).
DTX_PACKET_BYTES = 2
SAMPLE_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)
FRAME_MS = (10, 20, 40, 60)
MAX_EXPECTED_LOSS = 0.20


def _proto(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any]:
    """A private prototype of ``name`` in libopus (never pyogg's shared function objects)."""
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, _lib))


_encoder_create = _proto("opus_encoder_create", c_void_p, c_int32, c_int, c_int, POINTER(c_int))
_encoder_destroy = _proto("opus_encoder_destroy", None, c_void_p)
_encode = _proto("opus_encode", c_int32, c_void_p, c_void_p, c_int, c_void_p, c_int32)
_decoder_create = _proto("opus_decoder_create", c_void_p, c_int32, c_int, POINTER(c_int))
_decoder_destroy = _proto("opus_decoder_destroy", None, c_void_p)
_decode = _proto("opus_decode", c_int, c_void_p, c_char_p, c_int32, c_void_p, c_int, c_int)
_strerror = _proto("opus_strerror", c_char_p, c_int)
_get_version = _proto("opus_get_version_string", c_char_p)
_packet_parse = _proto("opus_packet_parse", c_int, c_void_p, c_int32, POINTER(c_ubyte),
                       POINTER(c_void_p * 48), POINTER(c_int16 * 48), POINTER(c_int))

# One prototype per ctl request: SET requests take an opus_int32 by value, GET requests a pointer
# to one, OPUS_RESET_STATE nothing.
_enc_set = _proto("opus_encoder_ctl", c_int, c_void_p, c_int, c_int32)
_enc_get = _proto("opus_encoder_ctl", c_int, c_void_p, c_int, POINTER(c_int32))
_enc_reset = _proto("opus_encoder_ctl", c_int, c_void_p, c_int)
_dec_reset = _proto("opus_decoder_ctl", c_int, c_void_p, c_int)
_ENCODER_SET = frozenset({OPUS_SET_BITRATE, OPUS_SET_COMPLEXITY, OPUS_SET_INBAND_FEC,
                          OPUS_SET_PACKET_LOSS_PERC, OPUS_SET_DTX, OPUS_SET_SIGNAL})
_ENCODER_GET = frozenset({OPUS_GET_BITRATE, OPUS_GET_INBAND_FEC, OPUS_GET_PACKET_LOSS_PERC,
                          OPUS_GET_DTX, OPUS_GET_LOOKAHEAD})


def is_dtx(packet: bytes) -> bool:
    """A packet the encoder made for DTX silence (libopus: 2 bytes or fewer need not be sent)."""
    return len(packet) <= DTX_PACKET_BYTES


def has_fec(packet: bytes) -> bool:
    """Whether ``packet`` carries FEC (SILK's LBRR) for the frame before it, which libopus
    writes only when FEC is on, the expected loss is above 0 and that frame had speech; without
    it ``decode_fec`` is plain concealment. The flag follows the first frame's SILK VAD flags
    (libopus 1.5's ``opus_packet_has_lbrr``, which the 1.3 here lacks)."""
    if len(packet) < 2 or packet[0] >> 3 >= 16:  # CELT-only configurations have no LBRR
        return False
    buf = ctypes.create_string_buffer(bytes(packet), len(packet))
    toc, frames, sizes, offset = c_ubyte(), (c_void_p * 48)(), (c_int16 * 48)(), c_int()
    n = _packet_parse(ctypes.addressof(buf), len(packet), ctypes.byref(toc), ctypes.byref(frames),
                      ctypes.byref(sizes), ctypes.byref(offset))
    if n <= 0 or sizes[0] <= 0 or frames[0] is None:
        return False
    config = packet[0] >> 3
    frame_ms = (10, 20, 40, 60)[config % 4] if config < 12 else (10, 20)[config % 2]
    silk_frames = max(1, frame_ms // 20)  # each with a VAD flag ahead of the LBRR flag
    first = packet[frames[0] - ctypes.addressof(buf)]
    return bool((first >> (7 - silk_frames)) & 1)


def opus_version() -> str:
    """libopus's own version string, e.g. ``libopus 1.3.1``."""
    return bytes(_get_version()).decode()


def _check(code: int, what: str) -> int:
    if code < 0:
        reason = bytes(_strerror(code) or b"unknown error").decode()
        raise OpusError(f"{what} failed: {reason} ({code})", code=code)
    return code


def _check_rate_and_frame(sample_rate: int, frame_ms: int) -> int:
    if sample_rate not in SAMPLE_RATES:
        raise VoiceConfigError(f"Opus runs at {SAMPLE_RATES} Hz, not {sample_rate}",
                               setting="sample_rate", expected=SAMPLE_RATES, actual=sample_rate)
    if frame_ms not in FRAME_MS:
        raise VoiceConfigError(f"frames of {FRAME_MS} ms, not {frame_ms}",
                               setting="frame_ms", expected=FRAME_MS, actual=frame_ms)
    return sample_rate * frame_ms // 1000


class OpusEncoder:
    """One mono Opus encoder. With DTX on, a packet of at most 2 bytes (:func:`is_dtx`) marks a
    frame of silence that need not be sent."""

    def __init__(self, sample_rate: int = 48_000, frame_ms: int = 20, *, bitrate: int = 32_000,
                 fec: bool = True, expected_loss: float = 0.05, dtx: bool = False,
                 complexity: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = _check_rate_and_frame(sample_rate, frame_ms)
        err = c_int(0)
        handle = _encoder_create(sample_rate, 1, APPLICATION_VOIP, ctypes.byref(err))
        _check(err.value, "opus_encoder_create")
        if not handle:
            raise OpusError("opus_encoder_create returned no encoder", code=-7)
        self._st: int = handle
        self._finalizer = weakref.finalize(self, _encoder_destroy, handle)
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES + 25)
        self.dtx = dtx
        self._ctl(OPUS_SET_SIGNAL, OPUS_SIGNAL_VOICE)
        self.set_bitrate(bitrate)
        self._ctl(OPUS_SET_INBAND_FEC, 1 if fec else 0)
        self.fec = fec
        self.set_expected_loss(expected_loss)
        self._ctl(OPUS_SET_DTX, 1 if dtx else 0)
        if complexity is not None:
            if not 0 <= complexity <= 10:
                raise VoiceConfigError("complexity is 0..10", setting="complexity",
                                       expected=(0, 10), actual=complexity)
            self._ctl(OPUS_SET_COMPLEXITY, complexity)
        self.lookahead_samples = self._get(OPUS_GET_LOOKAHEAD)
        self.frames_encoded = 0
        self.frames_dtx = 0
        self.encode_seconds = 0.0

    def _ctl(self, request: int, value: int) -> None:
        if request not in _ENCODER_SET:
            raise VoiceConfigError(f"no SET prototype for ctl request {request}",
                                   setting="ctl", expected=sorted(_ENCODER_SET), actual=request)
        _check(_enc_set(self._st, request, value), f"opus_encoder_ctl({request})")

    def _get(self, request: int) -> int:
        if request not in _ENCODER_GET:
            raise VoiceConfigError(f"no GET prototype for ctl request {request}",
                                   setting="ctl", expected=sorted(_ENCODER_GET), actual=request)
        out = c_int32(0)
        _check(_enc_get(self._st, request, ctypes.byref(out)), f"opus_encoder_ctl({request})")
        return int(out.value)

    def set_bitrate(self, bitrate: int) -> None:
        if not 6_000 <= bitrate <= 510_000:
            raise VoiceConfigError(f"bitrate {bitrate} outside 6000..510000 bit/s",
                                   setting="bitrate", expected=(6_000, 510_000), actual=bitrate)
        self._ctl(OPUS_SET_BITRATE, bitrate)

    @property
    def bitrate(self) -> int:
        return self._get(OPUS_GET_BITRATE)

    def set_expected_loss(self, fraction: float) -> None:
        """Feed back the loss the receiver sees; FEC spends bits in proportion (capped at 20 %)."""
        if not 0.0 <= fraction <= 1.0:
            raise VoiceConfigError(f"expected loss {fraction} outside [0, 1]",
                                   setting="expected_loss", expected=(0.0, 1.0), actual=fraction)
        self.expected_loss = min(fraction, MAX_EXPECTED_LOSS)
        self._ctl(OPUS_SET_PACKET_LOSS_PERC, round(self.expected_loss * 100))

    @property
    def expected_loss_percent(self) -> int:
        return self._get(OPUS_GET_PACKET_LOSS_PERC)

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        arr = np.ascontiguousarray(pcm)
        if arr.dtype != np.int16 or arr.shape != (self.frame_samples,):
            raise VoiceConfigError(
                f"expected {self.frame_samples} int16 samples, got {arr.shape} {arr.dtype}",
                setting="pcm", expected=(self.frame_samples,), actual=arr.shape,
            )
        t0 = time.perf_counter()
        n = _check(_encode(self._st, arr.ctypes.data, self.frame_samples,
                           ctypes.addressof(self._out), MAX_PACKET_BYTES), "opus_encode")
        self.encode_seconds += time.perf_counter() - t0
        self.frames_encoded += 1
        if n <= DTX_PACKET_BYTES:
            self.frames_dtx += 1
        return ctypes.string_at(self._out, n)

    def reset(self) -> None:
        _check(_enc_reset(self._st, OPUS_RESET_STATE), "opus_encoder_ctl(OPUS_RESET_STATE)")

    def close(self) -> None:
        self._finalizer()


class OpusDecoder:
    """One mono Opus decoder with loss concealment (``None``) and FEC recovery."""

    def __init__(self, sample_rate: int = 48_000, frame_ms: int = 20) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = _check_rate_and_frame(sample_rate, frame_ms)
        err = c_int(0)
        handle = _decoder_create(sample_rate, 1, ctypes.byref(err))
        _check(err.value, "opus_decoder_create")
        if not handle:
            raise OpusError("opus_decoder_create returned no decoder", code=-7)
        self._st: int = handle
        self._finalizer = weakref.finalize(self, _decoder_destroy, handle)
        # Room for the longest Opus packet (120 ms) so an over-long packet is reported, not cut.
        self._pcm = np.zeros(sample_rate * 120 // 1000, np.int16)
        self.decode_seconds = 0.0
        self.frames_decoded = 0
        self.frames_concealed = 0
        self.frames_fec = 0

    def _run(self, packet: bytes | None, fec: bool) -> npt.NDArray[np.int16]:
        if packet is not None and not isinstance(packet, (bytes, bytearray)):
            raise VoiceDecodeError(f"an Opus packet is bytes, got {type(packet).__name__}",
                                   expected="bytes", actual=type(packet).__name__)
        if packet is not None and not 0 < len(packet) <= MAX_PACKET_BYTES:
            raise VoiceDecodeError(
                f"an Opus packet is 1..{MAX_PACKET_BYTES} bytes, got {len(packet)}",
                expected=(1, MAX_PACKET_BYTES), actual=len(packet))
        data = bytes(packet) if packet is not None else None
        size = self.frame_samples if (packet is None or fec) else len(self._pcm)
        t0 = time.perf_counter()
        n = _decode(self._st, data, len(data) if data is not None else 0,
                    self._pcm.ctypes.data, size, 1 if fec else 0)
        self.decode_seconds += time.perf_counter() - t0
        _check(n, "opus_decode")
        if n != self.frame_samples:
            raise VoiceDecodeError(
                f"the packet holds {n} samples, this stream's frames are {self.frame_samples}",
                expected=self.frame_samples, actual=n)
        return self._pcm[:n].copy()

    def decode(self, packet: bytes | None) -> npt.NDArray[np.int16]:
        """One frame from ``packet``; ``None`` conceals a missing one (PLC, or comfort noise
        after DTX)."""
        out = self._run(packet, fec=False)
        if packet is None:
            self.frames_concealed += 1
        else:
            self.frames_decoded += 1
        return out

    def decode_fec(self, next_packet: bytes) -> npt.NDArray[np.int16]:
        """The frame *before* ``next_packet``, rebuilt from the FEC copy it carries (libopus falls
        back to concealment when it carries none). Decode ``next_packet`` itself afterwards."""
        out = self._run(next_packet, fec=True)
        self.frames_fec += 1
        return out

    def reset(self) -> None:
        _check(_dec_reset(self._st, OPUS_RESET_STATE), "opus_decoder_ctl(OPUS_RESET_STATE)")

    def close(self) -> None:
        self._finalizer()


class OpusCodec:
    """The ``opus`` entry of ``theta.voice_codecs``: an encoder and a decoder for one stream,
    with the :class:`theta_ecs.interfaces.VoiceCodec` surface."""

    name = "opus"

    def __init__(self, sample_rate: int = 48_000, frame_ms: int = 20, *, bitrate: int = 32_000,
                 fec: bool = True, expected_loss: float = 0.05, dtx: bool = False,
                 complexity: int | None = None, **_: object) -> None:
        self.encoder = OpusEncoder(sample_rate, frame_ms, bitrate=bitrate, fec=fec,
                                   expected_loss=expected_loss, dtx=dtx, complexity=complexity)
        self.decoder = OpusDecoder(sample_rate, frame_ms)
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = self.encoder.frame_samples

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        return self.encoder.encode(pcm)

    def decode(self, packet: bytes | None) -> npt.NDArray[np.int16]:
        return self.decoder.decode(packet)

    def decode_fec(self, next_packet: bytes) -> npt.NDArray[np.int16]:
        return self.decoder.decode_fec(next_packet)

    def set_expected_loss(self, fraction: float) -> None:
        self.encoder.set_expected_loss(fraction)

    @staticmethod
    def has_fec(packet: bytes) -> bool:
        return has_fec(packet)

    def close(self) -> None:
        self.encoder.close()
        self.decoder.close()
