"""theta_ecs: a columnar ECS with change tracking, stable component ids and pluggable backends.

``import theta_ecs`` needs numpy only; backends (network, rendering, voice) plug in through
entry points and are never imported here.
"""

from ._core import Vector
from .archetype import Archetype
from .component import (
    Component,
    ComponentRegistry,
    QuantizedFloat,
    SmallestThree,
    stable_id,
)
from .errors import (
    AccessPolicyViolation,
    BackendUnavailableError,
    ComponentDataError,
    DuplicateComponentError,
    ManifestMismatchError,
    ScheduleError,
    StaleEntityError,
    ThetaError,
    UnknownComponentError,
)
from .query import Query, QueryBatch
from .schedule import DeferredCommands, Stage, SystemContext
from .telemetry import MetricsSnapshot, Telemetry
from .world import World, entity_generation, entity_index

__version__ = "0.1.0"

__all__ = [
    "AccessPolicyViolation",
    "Archetype",
    "BackendUnavailableError",
    "Component",
    "ComponentDataError",
    "ComponentRegistry",
    "DeferredCommands",
    "DuplicateComponentError",
    "ManifestMismatchError",
    "MetricsSnapshot",
    "QuantizedFloat",
    "Query",
    "QueryBatch",
    "ScheduleError",
    "SmallestThree",
    "Stage",
    "StaleEntityError",
    "SystemContext",
    "Telemetry",
    "ThetaError",
    "UnknownComponentError",
    "Vector",
    "World",
    "__version__",
    "entity_generation",
    "entity_index",
    "stable_id",
]
