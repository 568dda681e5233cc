"""The exception types of theta_voice, under :class:`theta_ecs.errors.ThetaError`.

Faults of a remote peer (a malformed or replayed packet) are dropped and counted, never raised
out of a receive path; these exceptions are for an engine's misuse and for decoding entry points
that are called directly.
"""

from __future__ import annotations

from typing import Any

from theta_ecs.errors import BackendUnavailableError, DecodeError, ThetaError

__all__ = [
    "AudioDeviceError",
    "BackendUnavailableError",
    "OpusError",
    "VoiceConfigError",
    "VoiceDecodeError",
    "VoiceError",
    "VoicePacketError",
]


def _rebuild(cls: type[VoiceError], message: str, state: dict[str, Any]) -> VoiceError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class VoiceError(ThetaError):
    """Base of every theta_voice error."""

    def __reduce__(self) -> tuple[Any, ...]:  # keyword fields survive pickling (worker pools)
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


class VoiceConfigError(VoiceError, ValueError):
    """A setting out of its range: a frame length Opus does not have, a bad bitrate."""

    def __init__(self, message: str, *, setting: str = "", expected: object = None,
                 actual: object = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.expected = expected
        self.actual = actual


class VoiceDecodeError(VoiceError, DecodeError):
    """Bytes that do not decode as a frame of the codec's format (a kind of the core's
    DecodeError, so one ``except DecodeError`` covers voice too)."""

    def __init__(self, message: str, *, expected: object = None, actual: object = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class VoicePacketError(VoiceDecodeError):
    """A voice packet whose header is wrong: ``reason`` names the check that failed."""

    def __init__(self, message: str, *, reason: str, expected: object = None,
                 actual: object = None) -> None:
        super().__init__(message, expected=expected, actual=actual)
        self.reason = reason


class OpusError(VoiceDecodeError):
    """libopus returned an error code (``code``, with libopus's own description)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message, expected="a non-negative return", actual=code)
        self.code = code


class AudioDeviceError(VoiceError, OSError):
    """A sound device that cannot be opened or that failed while running."""
