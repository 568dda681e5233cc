"""The OpenXR session lifecycle as a pure state machine, testable without a runtime.

The runtime drives a session through IDLE, READY, SYNCHRONIZED, VISIBLE, FOCUSED, STOPPING,
LOSS_PENDING and EXITING by events; the application must answer some states with calls (begin the
session when READY, end it when STOPPING, destroy it when EXITING or LOSS_PENDING). Feed
:meth:`SessionLifecycle.on_state_changed` the runtime's events and it returns the calls to make;
report them done with :meth:`began`, :meth:`ended`, :meth:`destroyed`. Illegal transitions raise
:class:`~theta_xr.errors.SessionStateError`. After ``destroyed`` a new session may be created in
the same process (:meth:`created`), as after a headset is unplugged and plugged back:
:attr:`SessionLifecycle.restart` says whether to do so at once (a lost session, as hello_xr
does) or only when the application asks (the runtime told it to exit).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, IntEnum

from .errors import SessionStateError


class SessionState(IntEnum):
    """XrSessionState, by the same numbers."""

    UNKNOWN = 0
    IDLE = 1
    READY = 2
    SYNCHRONIZED = 3
    VISIBLE = 4
    FOCUSED = 5
    STOPPING = 6
    LOSS_PENDING = 7
    EXITING = 8


class Call(Enum):
    """What the application must do next."""

    BEGIN = "begin_session"
    END = "end_session"
    DESTROY = "destroy_session"


S = SessionState

#: The transitions the runtime may make (OpenXR 1.0, "Session Lifecycle"). LOSS_PENDING may
#: follow any live state.
_RUNTIME_EDGES: dict[SessionState, frozenset[SessionState]] = {
    S.UNKNOWN: frozenset({S.IDLE}),
    S.IDLE: frozenset({S.READY, S.EXITING}),
    S.READY: frozenset({S.SYNCHRONIZED}),
    S.SYNCHRONIZED: frozenset({S.VISIBLE, S.STOPPING}),
    S.VISIBLE: frozenset({S.FOCUSED, S.SYNCHRONIZED}),
    S.FOCUSED: frozenset({S.VISIBLE}),
    S.STOPPING: frozenset({S.IDLE}),
    S.LOSS_PENDING: frozenset(),
    S.EXITING: frozenset(),
}


class SessionLifecycle:
    """One process's OpenXR session(s), state by state."""

    def __init__(self) -> None:
        self.state = S.UNKNOWN
        self.exists = False  # a session handle is alive
        self.running = False  # between xrBeginSession and xrEndSession
        self.sessions_created = 0
        self.restart = False  # after DESTROY: re-create now (lost) or only when asked (exiting)
        self.history: list[SessionState] = []
        self._handlers: dict[SessionState, Callable[[], list[Call]]] = {
            S.IDLE: lambda: [],
            S.READY: lambda: [Call.BEGIN],
            S.SYNCHRONIZED: lambda: [],
            S.VISIBLE: lambda: [],
            S.FOCUSED: lambda: [],
            S.STOPPING: lambda: [Call.END],
            S.LOSS_PENDING: self._lose,
            S.EXITING: self._lose,
        }

    # -- what the runtime says -------------------------------------------------------------
    def on_state_changed(self, new: SessionState | int) -> list[Call]:
        """A XrEventDataSessionStateChanged: move to ``new``; returns the calls to make."""
        try:
            new = SessionState(int(new))
        except ValueError:
            raise SessionStateError("unknown session state", expected=list(S), actual=new) from None
        if not self.exists:
            raise SessionStateError("state change without a session", expected="created()",
                                    actual=new.name)
        self._set_state(new)
        return self._handlers[new]()

    def _set_state(self, new: SessionState) -> None:
        allowed = _RUNTIME_EDGES[self.state]
        live = self.state not in (S.UNKNOWN, S.LOSS_PENDING, S.EXITING)
        if new not in allowed and not (new is S.LOSS_PENDING and live):
            raise SessionStateError(
                f"illegal session transition from {self.state.name}",
                expected=sorted(s.name for s in allowed), actual=new.name,
            )
        self.state = new
        self.history.append(new)

    def _lose(self) -> list[Call]:
        self.restart = self.state is S.LOSS_PENDING
        calls = [Call.END] if self.running else []
        return [*calls, Call.DESTROY]

    # -- what the application did ----------------------------------------------------------
    def created(self) -> None:
        if self.exists:
            raise SessionStateError("session already exists", expected="destroyed()",
                                    actual=self.state.name)
        self.exists = True
        self.state = S.UNKNOWN
        self.sessions_created += 1

    def began(self) -> None:
        if self.state is not S.READY or self.running:
            raise SessionStateError("xrBeginSession outside READY", expected=S.READY.name,
                                    actual=self.state.name)
        self.running = True

    def ended(self) -> None:
        if not self.running or self.state not in (S.STOPPING, S.LOSS_PENDING, S.EXITING):
            raise SessionStateError("xrEndSession outside STOPPING", expected=S.STOPPING.name,
                                    actual=self.state.name)
        self.running = False

    def destroyed(self) -> None:
        if not self.exists or self.running:
            raise SessionStateError("xrDestroySession of a running session",
                                    expected="ended()", actual=self.state.name)
        self.exists = False
        self.state = S.UNKNOWN

    # -- what the frame loop may do ----------------------------------------------------------
    @property
    def frame_loop(self) -> bool:
        """Whether to run wait/begin/end frame (the session is running)."""
        return self.running

    def submit_layers(self, should_render: bool) -> bool:
        """Whether to render and submit layers this frame: only when visible and the runtime's
        xrWaitFrame says ``shouldRender``; otherwise end the frame with no layers."""
        return self.running and should_render and self.state in (S.VISIBLE, S.FOCUSED)

    @property
    def input_focused(self) -> bool:
        """Whether controller actions deliver input (only the focused application's do)."""
        return self.running and self.state is S.FOCUSED
