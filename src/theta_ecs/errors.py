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


class DecodeError(ThetaError, ValueError):
    """Bytes from outside (a peer, a file, a store) that are not a well-formed message:
    truncated, malformed, out of range or hostile. One class for every decoder (replication
    packets, envelopes, command-log entries), so one ``except DecodeError`` covers them all."""


class SchemaMismatchError(ThetaError, ValueError):
    """Data written against another component schema than ours: ``expected`` is our schema
    hash, ``actual`` the one the data carries (``bits`` wide: 64 in envelopes, 32 in the
    compact replication packets)."""

    def __init__(self, expected: int, actual: int, *, what: str = "packet", bits: int = 64) -> None:
        digits = bits // 4
        super().__init__(
            f"schema hash mismatch: expected {expected:0{digits}x}, the {what} says "
            f"{actual:0{digits}x}"
        )
        self.expected = expected
        self.actual = actual
        self.what = what
        self.bits = bits

    def __reduce__(self) -> tuple[object, ...]:  # args hold only the message: rebuild from fields
        return (_rebuild_schema_mismatch, (self.expected, self.actual, self.what, self.bits))


def _rebuild_schema_mismatch(
    expected: int, actual: int, what: str, bits: int
) -> SchemaMismatchError:
    return SchemaMismatchError(expected, actual, what=what, bits=bits)
