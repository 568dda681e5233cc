"""Backend interfaces: what the core expects of transports, renderers, input, codecs and stores.

The core never imports an implementation. Packages plug in through the entry-point groups in
:mod:`theta_ecs.plugins`; any object with these methods will do (they are Protocols).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class Transport(Protocol):
    """A connection to one peer: unreliable datagrams by default, reliable on request."""

    def send(self, data: bytes, *, reliable: bool = False) -> None: ...

    def receive(self) -> list[bytes]:
        """Everything that has arrived since the last call (non-blocking)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SourcedTransport(Transport, Protocol):
    """A Transport that also names who sent each datagram, as the far end verified it (a relay
    that binds each sender's stream to its authenticated session)."""

    def receive_from(self) -> list[tuple[int, bytes]]:
        """Like ``receive``, as ``(verified source id, datagram)`` pairs (drains the same queue)."""
        ...


@dataclass(frozen=True)
class Pose:
    """A tracked pose: position (metres) and orientation (unit quaternion x, y, z, w)."""

    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class InputFrame:
    """One sample of every tracked device: head, hands, and controller buttons/axes."""

    time: float
    head: Pose
    hands: Mapping[str, Pose] = field(default_factory=dict)
    buttons: Mapping[str, bool] = field(default_factory=dict)
    axes: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class InputProvider(Protocol):
    def poll(self, now: float) -> InputFrame: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RenderItem:
    """One drawable: a model matrix (4x4, row-major) and an RGBA colour."""

    model: npt.NDArray[np.float32]
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


@runtime_checkable
class Renderer(Protocol):
    """Draws a frame for each eye (one view for desktop) and reports its timing."""

    def render(self, items: Sequence[RenderItem], views: Sequence[npt.NDArray[np.float32]]) -> None:
        ...

    def close(self) -> None: ...


@runtime_checkable
class VoiceCodec(Protocol):
    """Encodes frames of 16-bit mono PCM at ``sample_rate`` into packets and back."""

    sample_rate: int
    frame_samples: int

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes: ...

    def decode(self, packet: bytes | None) -> npt.NDArray[np.int16]:
        """``None`` asks for loss concealment of a missing packet."""
        ...


@runtime_checkable
class AudioSink(Protocol):
    def play(self, pcm: npt.NDArray[np.int16]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AudioSource(Protocol):
    """Captured 16-bit mono PCM at ``sample_rate``; ``read`` never blocks and returns what has
    been captured since the last call, up to ``max_samples`` (possibly nothing)."""

    sample_rate: int

    def read(self, max_samples: int) -> npt.NDArray[np.int16]: ...

    def close(self) -> None: ...


@runtime_checkable
class CommandStore(Protocol):
    """Durable, append-only storage of encoded command-log entries."""

    def append(self, entries: Iterable[bytes]) -> None: ...

    def load(self) -> list[bytes]: ...

    def close(self) -> None: ...
