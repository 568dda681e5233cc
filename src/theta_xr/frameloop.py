"""The OpenXR frame loop's decisions, as pure code testable without a runtime.

A rendering session runs hello_xr's order every frame: ``xrWaitFrame``, ``xrBeginFrame``, then,
only if the runtime's ``shouldRender`` says so and the session is visible, ``xrLocateViews``
and, per eye, acquire / wait / render / release that eye's swapchain image; finally
``xrEndFrame`` with one projection layer, or with **no layers** when nothing was rendered (not
to render, views without valid poses). :class:`FrameLoop` is that order as a state machine: the
glue in :mod:`theta_xr.openxr` reports each call as it makes it and asks the loop what to do
next, and any call out of order raises :class:`~theta_xr.errors.FrameLoopError` before it reaches
the runtime. The rest are the choices the glue needs: swapchain format, eye size, reference
space, and views as plain numbers turned into per-eye view and projection matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from theta_ecs.interfaces import Pose

from .camera import FAR, NEAR, Eye, eye_from_fov
from .errors import FrameLoopError, XrError
from .session import SessionLifecycle

#: OpenGL internal formats a swapchain may offer, in our order of preference. The renderer
#: writes sRGB-encoded bytes, which an sRGB swapchain passes to the compositor as they are
#: (blits do not convert with GL_FRAMEBUFFER_SRGB off); a linear RGBA8 one would show them too
#: bright, so it is the fall back only.
GL_SRGB8_ALPHA8 = 0x8C43
GL_RGBA8 = 0x8058
SWAPCHAIN_FORMATS = (GL_SRGB8_ALPHA8, GL_RGBA8)

#: XrReferenceSpaceType numbers, preferred first: STAGE (floor-level, the room), then LOCAL.
SPACE_STAGE, SPACE_LOCAL, SPACE_VIEW = 3, 2, 1
REFERENCE_SPACES = (SPACE_STAGE, SPACE_LOCAL)


def choose_swapchain_format(offered: Sequence[int]) -> int:
    """The runtime's format to create swapchains in (its list is in its own preference)."""
    for fmt in SWAPCHAIN_FORMATS:
        if fmt in offered:
            return fmt
    raise XrError(f"no swapchain format the renderer can write: expected one of "
                  f"{[hex(f) for f in SWAPCHAIN_FORMATS]}, runtime offers "
                  f"{[hex(f) for f in offered]}")


def choose_eye_size(recommended: tuple[int, int], maximum: tuple[int, int],
                    scale: float = 1.0) -> tuple[int, int]:
    """Per-eye image size: the runtime's recommendation times ``scale``, within its maximum."""
    if scale <= 0:
        raise XrError(f"eye size scale must be positive, got {scale}")
    w = min(max(1, round(recommended[0] * scale)), maximum[0])
    h = min(max(1, round(recommended[1] * scale)), maximum[1])
    return (w, h)


def choose_reference_space(supported: Sequence[int]) -> int:
    """The space views and layers are located in: STAGE where the runtime has one, else LOCAL
    (every runtime has LOCAL)."""
    for space in REFERENCE_SPACES:
        if space in supported:
            return space
    return SPACE_LOCAL


@dataclass(frozen=True)
class View:
    """One eye's XrView as plain numbers: pose in the reference space and XrFovf angles
    (radians, ``left`` and ``down`` negative)."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]  # x, y, z, w
    fov: tuple[float, float, float, float]  # left, right, up, down

    @property
    def pose(self) -> Pose:
        return Pose(self.position, self.orientation)


def eyes_from_views(views: Sequence[View], size: tuple[int, int], near: float = NEAR,
                    far: float = FAR) -> tuple[Eye, ...]:
    """Per-eye view and projection matrices from located views (asymmetric fields of view as
    headsets report them)."""
    return tuple(eye_from_fov(v.pose, v.fov, size, near, far) for v in views)


@dataclass(frozen=True)
class LayerView:
    """One XrCompositionLayerProjectionView: the view it was rendered for and the sub-image of
    that eye's swapchain it was rendered into."""

    view: View
    swapchain: int  # the eye's index
    image_rect: tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class FrameEnd:
    """What xrEndFrame submits: at ``display_time``, one projection layer of ``views``, or no
    layer at all when ``views`` is empty."""

    display_time: int
    views: tuple[LayerView, ...] = ()

    @property
    def layer_count(self) -> int:
        return 1 if self.views else 0


class Phase(Enum):
    """Where in one frame the loop is."""

    IDLE = "between frames"
    WAITED = "after xrWaitFrame"
    BEGUN = "after xrBeginFrame"
    LOCATED = "after xrLocateViews"


class FrameLoop:
    """One session's frames, call by call; see the module docstring. ``eye_size`` is every
    eye's swapchain image size."""

    def __init__(self, lifecycle: SessionLifecycle, eye_size: tuple[int, int],
                 view_count: int = 2) -> None:
        self.lifecycle = lifecycle
        self.eye_size = eye_size
        self.view_count = view_count
        self.phase = Phase.IDLE
        self.frames = 0
        self.frames_rendered = 0
        self.frames_without_layers = 0
        self._display_time = 0
        self._should_render = False
        self._views: tuple[View, ...] = ()
        self._images: dict[int, str] = {}  # eye → "acquired" | "waited" | "released"

    def _expect(self, phase: Phase, call: str) -> None:
        if self.phase is not phase:
            raise FrameLoopError(f"{call} out of order", expected=phase.value,
                                 actual=self.phase.value)

    # -- the calls, as the glue makes them ---------------------------------------------------
    def waited(self, should_render: bool, display_time: int) -> None:
        """xrWaitFrame returned (``shouldRender``, ``predictedDisplayTime``)."""
        if not self.lifecycle.frame_loop:
            raise FrameLoopError("xrWaitFrame without a running session",
                                 expected="running", actual=self.lifecycle.state.name)
        self._expect(Phase.IDLE, "xrWaitFrame")
        self.phase = Phase.WAITED
        self._should_render = bool(should_render)
        self._display_time = int(display_time)
        self._views = ()
        self._images = {}

    def began(self) -> None:
        self._expect(Phase.WAITED, "xrBeginFrame")
        self.phase = Phase.BEGUN

    @property
    def should_render(self) -> bool:
        """After xrBeginFrame: whether to locate views and render (the runtime asked for it and
        the session is visible); if not, end the frame with no layers."""
        return self.phase is Phase.BEGUN and self.lifecycle.submit_layers(self._should_render)

    def located(self, views: Sequence[View], position_valid: bool,
                orientation_valid: bool) -> bool:
        """xrLocateViews returned; True when the views are usable and each eye is to be
        rendered (hello_xr renders nothing without valid position and orientation)."""
        if not self.should_render:
            raise FrameLoopError("xrLocateViews in a frame not to render",
                                 expected="should_render", actual=self.phase.value)
        if len(views) != self.view_count:
            raise FrameLoopError("wrong number of views", expected=self.view_count,
                                 actual=len(views))
        self.phase = Phase.LOCATED
        if not (position_valid and orientation_valid):
            return False
        self._views = tuple(views)
        return True

    def _image(self, eye: int, before: str | None, after: str, call: str) -> None:
        if self.phase is not Phase.LOCATED or not self._views:
            raise FrameLoopError(f"{call} without located views", expected=Phase.LOCATED.value,
                                 actual=self.phase.value)
        if not 0 <= eye < self.view_count:
            raise FrameLoopError(f"{call}: no such eye", expected=f"0..{self.view_count - 1}",
                                 actual=eye)
        state = self._images.get(eye)
        if state != before:
            raise FrameLoopError(f"{call} of eye {eye} out of order",
                                 expected=before or "not acquired", actual=state or
                                 "not acquired")
        self._images[eye] = after

    def acquired(self, eye: int) -> None:
        self._image(eye, None, "acquired", "xrAcquireSwapchainImage")

    def image_waited(self, eye: int) -> None:
        self._image(eye, "acquired", "waited", "xrWaitSwapchainImage")

    def released(self, eye: int) -> None:
        """Released after rendering into it (render only between wait and release)."""
        self._image(eye, "waited", "released", "xrReleaseSwapchainImage")

    def end(self) -> FrameEnd:
        """What to pass xrEndFrame: a projection layer if every eye was rendered and released,
        else no layers. Call :meth:`ended` once it returned."""
        if self.phase is Phase.IDLE or self.phase is Phase.WAITED:
            raise FrameLoopError("xrEndFrame out of order", expected=Phase.BEGUN.value,
                                 actual=self.phase.value)
        held = sorted(e for e, s in self._images.items() if s != "released")
        if held:
            raise FrameLoopError("xrEndFrame with swapchain images not released",
                                 expected="released", actual=f"eyes {held}")
        if self._views and len(self._images) == self.view_count:
            w, h = self.eye_size
            return FrameEnd(self._display_time, tuple(
                LayerView(v, i, (0, 0, w, h)) for i, v in enumerate(self._views)))
        return FrameEnd(self._display_time)

    def ended(self, submitted: FrameEnd) -> None:
        self.frames += 1
        if submitted.layer_count:
            self.frames_rendered += 1
        else:
            self.frames_without_layers += 1
        self.phase = Phase.IDLE
        self._images = {}
        self._views = ()

    def reset(self) -> None:
        """The session ended or was destroyed mid-frame: the next frame starts from scratch."""
        self.phase = Phase.IDLE
        self._images = {}
        self._views = ()
