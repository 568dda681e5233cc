"""Events: typed messages between systems, kept for two frames so every reader sees each once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

E = TypeVar("E")


class EventChannel(Generic[E]):
    """Events of one type. Each reader keeps a cursor; events live for the frame they were sent
    in and the next, so a reader that runs before the sender still sees them once."""

    def __init__(self) -> None:
        self._previous: list[tuple[int, E]] = []
        self._current: list[tuple[int, E]] = []
        self._next_id = 0

    def send(self, event: E) -> None:
        self._current.append((self._next_id, event))
        self._next_id += 1

    def read(self, cursor: int) -> tuple[list[E], int]:
        """Events with id >= ``cursor``, and the cursor to pass next time."""
        out = [ev for i, ev in self._previous if i >= cursor]
        out.extend(ev for i, ev in self._current if i >= cursor)
        return out, self._next_id

    def update(self) -> None:
        self._previous = self._current
        self._current = []

    def __len__(self) -> int:
        return len(self._previous) + len(self._current)


class Events:
    """All event channels of a world, by event type."""

    def __init__(self) -> None:
        self._channels: dict[type, EventChannel[Any]] = defaultdict(EventChannel)

    def channel(self, kind: type[E]) -> EventChannel[E]:
        return self._channels[kind]

    def send(self, event: object) -> None:
        self._channels[type(event)].send(event)

    def update(self) -> None:
        for ch in self._channels.values():
            ch.update()

    def __iter__(self) -> Iterator[type]:
        return iter(self._channels)


class EventReader(Generic[E]):
    """A cursor over one channel: ``reader.read()`` returns what arrived since the last call."""

    def __init__(self, channel: EventChannel[E]) -> None:
        self._channel = channel
        self._cursor = 0

    def read(self) -> list[E]:
        events, self._cursor = self._channel.read(self._cursor)
        return events
