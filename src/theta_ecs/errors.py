"""The exception types of theta_ecs: every misuse the core detects raises one of these."""


class ThetaError(Exception):
    """Base of every error theta raises on purpose."""


class StaleEntityError(ThetaError, KeyError):
    """An entity id that is not alive: despawned, never spawned, or an old generation."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "stale entity"


class UnknownComponentError(ThetaError, KeyError):
    """A component that is not registered, or that the entity does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown component"


class ComponentDataError(ThetaError, ValueError):
    """Component values whose dtype or shape cannot be stored in the component's column."""


class DuplicateComponentError(ThetaError, ValueError):
    """Two different components claim the same name or stable id."""


class AccessPolicyViolation(ThetaError, PermissionError):
    """A system touched a component outside what it declared (e.g. wrote a read-only column)."""


class ScheduleError(ThetaError, ValueError):
    """An impossible schedule: a dependency cycle, an unknown system name, a duplicate name."""


class ManifestMismatchError(ThetaError):
    """The committed component manifest does not match the registered components."""


class BackendUnavailableError(ThetaError, ImportError):
    """A backend that is unknown or cannot be loaded; the message names the missing piece."""
