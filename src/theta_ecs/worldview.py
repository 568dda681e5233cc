"""The narrow view of a world that systems and command buffers work through.

The scheduler depends on this protocol, not on :class:`theta_ecs.world.World`, so the layers
import one way: ``world`` -> ``schedule`` -> ``worldview`` -> ``query`` -> ``archetype``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .component import Component
from .events import Events
from .query import Query
from .telemetry import Telemetry

T = TypeVar("T")


class WorldView(Protocol):
    """What the scheduler, system contexts and deferred commands need of a world."""

    change_tick: int
    telemetry: Telemetry
    events: Events

    def advance_change_tick(self) -> int: ...

    def _known(self, comp: Component) -> Component: ...

    def _checked_value(self, comp: Component, value: object) -> tuple[Component, Any]: ...

    def query(self, *components: Component, without: Sequence[Component] = ()) -> Query: ...

    def get(self, entity: int, comp: Component) -> Any: ...

    def set(self, entity: int, comp: Component, value: object) -> None: ...

    def has(self, entity: int, comp: Component) -> bool: ...

    def insert(self, entity: int, comp: Component, value: object) -> None: ...

    def remove(self, entity: int, comp: Component) -> None: ...

    def despawn(self, entity: int) -> None: ...

    def reserve_entity(self) -> int: ...

    def spawn_reserved(self, entity: int, components: Mapping[Component, object]) -> None: ...

    def release_reserved(self, entity: int) -> None: ...

    def resource(self, kind: type[T]) -> T: ...
