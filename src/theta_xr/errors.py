"""The exception types of theta_xr, all under :class:`theta_ecs.errors.ThetaError`."""

from __future__ import annotations

from theta_ecs.errors import BackendUnavailableError, ThetaError


class XrError(ThetaError):
    """Base of every error theta_xr raises on purpose."""


class GraphicsUnavailableError(BackendUnavailableError, XrError):
    """No OpenGL context could be made (no EGL, no driver, or too old a GL version)."""


class RuntimeUnavailableError(BackendUnavailableError, XrError):
    """No OpenXR runtime answered: none installed, or none active (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"openxr: {reason}")
        self.reason = reason


class WindowUnavailableError(BackendUnavailableError, XrError):
    """A desktop window was asked for where no display exists."""


class SessionStateError(XrError):
    """An OpenXR session event or request that is illegal in the session's current state."""

    def __init__(self, message: str, *, expected: object, actual: object) -> None:
        super().__init__(f"{message} (expected {expected}, actual {actual})")
        self.expected = expected
        self.actual = actual


class FrameLoopError(XrError):
    """An OpenXR frame-loop call out of order (``expected`` the state it needs, ``actual`` the
    one the loop is in), caught before it reaches the runtime."""

    def __init__(self, message: str, *, expected: object, actual: object) -> None:
        super().__init__(f"{message} (expected {expected}, actual {actual})")
        self.expected = expected
        self.actual = actual


class InputPathError(XrError, ValueError):
    """A recorded input path file that cannot be played back (``path`` and what is wrong)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class InputScriptError(XrError, ValueError):
    """A simulated provider's script that cannot run: an unknown motion, orbit parameters that
    give no pose, a button press without a start before its end (``expected``/``actual``)."""

    def __init__(self, message: str, *, expected: object, actual: object) -> None:
        super().__init__(f"{message} (expected {expected}, actual {actual})")
        self.expected = expected
        self.actual = actual


class BindingError(XrError, ValueError):
    """A render binding whose components cannot feed the instance attributes."""

    def __init__(self, component: str, expected: str, actual: str) -> None:
        super().__init__(f"{component}: expected {expected}, got {actual}")
        self.component = component
        self.expected = expected
        self.actual = actual


class MeshError(XrError, ValueError):
    """A mesh that cannot be drawn: unknown handle, empty or malformed geometry."""


class EyeSizeError(XrError, ValueError):
    """An eye image the GL implementation cannot hold: larger than its texture, renderbuffer
    or viewport limit (``expected`` that limit, ``actual`` the size asked for)."""

    def __init__(self, message: str, *, expected: object, actual: object) -> None:
        super().__init__(f"{message} (expected {expected}, actual {actual})")
        self.expected = expected
        self.actual = actual
