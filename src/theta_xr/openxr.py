"""OpenXR through pyopenxr (input provider and rendering loop): the one module that imports ``xr``.

Importing it probes for a runtime (an instance created and destroyed, under a millisecond when
none exists) and raises :class:`~theta_xr.errors.RuntimeUnavailableError` when none answers, so
``theta backends`` shows the reason and :func:`theta_xr.fallback.open_input` falls back to the
desktop or simulated provider without a traceback.

With a runtime (``monado-service`` with ``XRT_COMPOSITOR_NULL=1 SIMULATED_ENABLE=1``, or a
headset): an instance, the HMD system, a session (headless through ``XR_MND_headless`` when the
runtime offers it, for input alone), one action set (hand poses, trigger, grip, thumbstick, A/B
buttons, suggested for the Khronos simple and Oculus Touch profiles), and a frame loop that runs
wait/begin/end and submits no layers when the runtime says not to render.

:class:`OpenXRRenderLoop` renders a World into the runtime's swapchains: a session sharing the
renderer's headless EGL context (XR_KHR_opengl_enable + XR_MNDX_egl_enable, as Monado offers),
one swapchain per eye, and per frame hello_xr's order (wait, begin, locate views, per eye
acquire / wait / copy the eye's image in / release, end with a projection layer, or with no
layers when the runtime says not to render). Every decision (what to submit, when to render,
which session transitions and call orders are legal, views to matrices) is in
:mod:`theta_xr.session` and :mod:`theta_xr.frameloop`, pure and tested without a runtime; the
code below only makes the calls, and runs only where a runtime exists (none is installable on
Debian 12: see the README's XR section for running it under Monado).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("XR_LOADER_DEBUG", "none")  # the loader's chatter is not our error path

import xr

from theta_ecs.interfaces import InputFrame, Pose
from theta_ecs.world import World

from .binding import STANDARD, Binding
from .camera import FAR, NEAR
from .egl import current_egl, make_current
from .errors import RuntimeUnavailableError, SessionStateError
from .frameloop import (
    FrameEnd,
    FrameLoop,
    View,
    choose_eye_size,
    choose_reference_space,
    choose_swapchain_format,
    eyes_from_views,
)
from .overlay import world_lines
from .session import Call, SessionLifecycle
from .xrstructs import FrameEndStructs, egl_graphics_binding, view_from_xr

APP_NAME = "theta"
HANDS = ("left", "right")


def probe_runtime() -> str:
    """The active runtime's name, or RuntimeUnavailableError saying why there is none."""
    try:
        instance = xr.create_instance(xr.InstanceCreateInfo(
            application_info=xr.ApplicationInfo(application_name=APP_NAME,
                                                engine_name=APP_NAME)))
    except xr.RuntimeUnavailableError as exc:
        raise RuntimeUnavailableError(
            f"no OpenXR runtime is installed or active ({exc}); on a host with Monado run "
            "'monado-service' (XRT_COMPOSITOR_NULL=1 SIMULATED_ENABLE=1 for its simulated HMD)"
        ) from exc
    except xr.XrException as exc:
        raise RuntimeUnavailableError(f"the OpenXR runtime refused an instance ({exc})") from exc
    try:
        props = xr.get_instance_properties(instance)
        return props.runtime_name.decode() if isinstance(props.runtime_name, bytes) else str(
            props.runtime_name)
    finally:
        xr.destroy_instance(instance)


RUNTIME_NAME = probe_runtime()  # raises at import when there is none: see the module docstring


def _instance(extensions: list[str]) -> Any:
    return xr.create_instance(xr.InstanceCreateInfo(
        application_info=xr.ApplicationInfo(application_name=APP_NAME, engine_name=APP_NAME),
        enabled_extension_names=extensions))


def _available_extensions() -> set[str]:
    return {e.extension_name.decode() for e in xr.enumerate_instance_extension_properties()}


class _Controllers:
    """One action set for both hands (aim pose, trigger, grip, thumbstick, A/B), suggested for
    the Khronos simple and Oculus Touch profiles, read into :class:`InputFrame`s."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.action_set = xr.create_action_set(instance, xr.ActionSetCreateInfo(
            action_set_name="theta", localized_action_set_name="theta", priority=0))
        self.hand_paths = [self._path(f"/user/hand/{h}") for h in HANDS]
        paths = (xr.Path * 2)(*self.hand_paths)

        def action(name: str, kind: Any) -> Any:
            return xr.create_action(self.action_set, xr.ActionCreateInfo(
                action_type=kind, action_name=name, localized_action_name=name,
                count_subaction_paths=2, subaction_paths=paths))

        self.actions = {
            "pose": action("hand_pose", xr.ActionType.POSE_INPUT),
            "trigger": action("trigger", xr.ActionType.FLOAT_INPUT),
            "grip": action("grip", xr.ActionType.FLOAT_INPUT),
            "thumbstick": action("thumbstick", xr.ActionType.VECTOR2F_INPUT),
            "a": action("button_a", xr.ActionType.BOOLEAN_INPUT),
            "b": action("button_b", xr.ActionType.BOOLEAN_INPUT),
        }
        a = self.actions
        touch = []
        simple = []
        for h in HANDS:
            simple += [(a["pose"], f"/user/hand/{h}/input/aim/pose"),
                       (a["trigger"], f"/user/hand/{h}/input/select/click")]
            touch += [(a["pose"], f"/user/hand/{h}/input/aim/pose"),
                      (a["trigger"], f"/user/hand/{h}/input/trigger/value"),
                      (a["grip"], f"/user/hand/{h}/input/squeeze/value"),
                      (a["thumbstick"], f"/user/hand/{h}/input/thumbstick")]
        touch += [(a["a"], "/user/hand/right/input/a/click"),
                  (a["b"], "/user/hand/right/input/b/click")]
        for profile, pairs in (("/interaction_profiles/khr/simple_controller", simple),
                               ("/interaction_profiles/oculus/touch_controller", touch)):
            bindings = [xr.ActionSuggestedBinding(act, self._path(p)) for act, p in pairs]
            xr.suggest_interaction_profile_bindings(instance, xr.InteractionProfileSuggestedBinding(
                interaction_profile=self._path(profile),
                count_suggested_bindings=len(bindings),
                suggested_bindings=(xr.ActionSuggestedBinding * len(bindings))(*bindings)))
        self.hand_spaces: list[Any] = []

    def _path(self, s: str) -> Any:
        return xr.string_to_path(self.instance, s)

    def attach(self, session: Any) -> None:
        """Attach the action set to a (new) session and make the hands' spaces in it."""
        xr.attach_session_action_sets(session, xr.SessionActionSetsAttachInfo(
            action_sets=[self.action_set]))
        self.hand_spaces = [xr.create_action_space(session, xr.ActionSpaceCreateInfo(
            action=self.actions["pose"], subaction_path=p)) for p in self.hand_paths]

    @staticmethod
    def pose(space: Any, base: Any, time: int) -> Pose | None:
        loc = xr.locate_space(space, base, time)
        valid = xr.SpaceLocationFlags.POSITION_VALID_BIT | \
            xr.SpaceLocationFlags.ORIENTATION_VALID_BIT
        if (int(loc.location_flags) & int(valid)) != int(valid):
            return None
        p, o = loc.pose.position, loc.pose.orientation
        return Pose((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))

    def read(self, session: Any, base: Any, view_space: Any, time: int, now: float,
             last: InputFrame) -> InputFrame:
        """Sync the actions and read head, hands, buttons and axes at ``time`` (the frame's
        predicted display time); only a focused session gets input."""
        xr.sync_actions(session, xr.ActionsSyncInfo(
            active_action_sets=[xr.ActiveActionSet(self.action_set, xr.NULL_PATH)]))
        head = self.pose(view_space, base, time) or last.head
        hands: dict[str, Pose] = {}
        buttons: dict[str, bool] = {}
        axes: dict[str, float] = {}
        for h, path, space in zip(HANDS, self.hand_paths, self.hand_spaces):
            pose = self.pose(space, base, time)
            if pose is not None:
                hands[h] = pose
            for name in ("trigger", "grip"):
                v = xr.get_action_state_float(session, xr.ActionStateGetInfo(
                    action=self.actions[name], subaction_path=path)).current_state
                axes[f"{h}/{name}"] = float(v)
                buttons[f"{h}/{name}"] = v > 0.5
            stick = xr.get_action_state_vector2f(session, xr.ActionStateGetInfo(
                action=self.actions["thumbstick"], subaction_path=path)).current_state
            axes[f"{h}/thumbstick/x"], axes[f"{h}/thumbstick/y"] = stick.x, stick.y
        for name in ("a", "b"):
            buttons[f"right/{name}"] = bool(xr.get_action_state_boolean(
                session, xr.ActionStateGetInfo(action=self.actions[name])).current_state)
        return InputFrame(time=now, head=head, hands=hands, buttons=buttons, axes=axes)


def _session_events(instance: Any) -> list[int]:
    """The new states of every session-state event queued (other events are dropped)."""
    states: list[int] = []
    while True:
        try:
            buf = xr.poll_event(instance)
        except xr.EventUnavailable:
            return states
        if xr.StructureType(buf.type) != xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
            continue
        event = ctypes.cast(ctypes.byref(buf), ctypes.POINTER(
            xr.EventDataSessionStateChanged)).contents
        states.append(int(event.state))


class OpenXRInputProvider:
    """Head and controller input from the OpenXR runtime, as :class:`InputFrame`s, through a
    headless session (XR_MND_headless); to render as well, use :class:`OpenXRRenderLoop`,
    whose session gives input too."""

    def __init__(self, **_: object) -> None:
        self._headless = xr.MND_HEADLESS_EXTENSION_NAME in _available_extensions()
        if not self._headless:
            raise RuntimeUnavailableError(
                f"runtime {RUNTIME_NAME!r} lacks XR_MND_headless: input without a graphics "
                "binding needs it (use OpenXRRenderLoop, whose session gives input too)")
        self.instance = _instance([xr.MND_HEADLESS_EXTENSION_NAME])
        self.system = xr.get_system(self.instance, xr.SystemGetInfo(
            form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))
        self.lifecycle = SessionLifecycle()
        self.session: Any = None
        self.controllers = _Controllers(self.instance)
        self._create_session()
        self._last = InputFrame(time=0.0, head=Pose())

    def _create_session(self) -> None:
        self.session = xr.create_session(self.instance, xr.SessionCreateInfo(
            system_id=self.system))
        self.lifecycle.created()
        self.controllers.attach(self.session)
        self.space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType(choose_reference_space(
                [int(t) for t in xr.enumerate_reference_spaces(self.session)]))))
        self.view_space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.VIEW))

    def _pump_events(self) -> None:
        for state in _session_events(self.instance):
            for call in self.lifecycle.on_state_changed(state):
                self._do(call)
                if call is Call.DESTROY:
                    return  # the rest were the old session's

    def _do(self, call: Call) -> None:
        if call is Call.BEGIN:
            xr.begin_session(self.session, xr.SessionBeginInfo(
                primary_view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO))
            self.lifecycle.began()
        elif call is Call.END:
            xr.end_session(self.session)
            self.lifecycle.ended()
        elif call is Call.DESTROY:
            xr.destroy_session(self.session)
            self.lifecycle.destroyed()
            self.session = None
            if self.lifecycle.restart:  # lost: a new session in the same process
                self._create_session()

    def poll(self, now: float) -> InputFrame:
        if self.session is None:  # the runtime told us to exit
            return InputFrame(time=now, head=self._last.head)
        self._pump_events()
        if not self.lifecycle.frame_loop:
            return InputFrame(time=now, head=self._last.head)
        state = xr.wait_frame(self.session)
        xr.begin_frame(self.session)
        t = state.predicted_display_time
        frame = self._last
        if self.lifecycle.input_focused:
            frame = self.controllers.read(self.session, self.space, self.view_space, t, now,
                                          self._last)
        # input only: no layers (OpenXRRenderLoop submits projection layers)
        xr.end_frame(self.session, xr.FrameEndInfo(
            display_time=t, environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE, layers=[]))
        self._last = frame
        return frame

    def close(self) -> None:
        if self.session is not None:
            if self.lifecycle.running:
                xr.request_exit_session(self.session)
            xr.destroy_session(self.session)
            self.session = None
        xr.destroy_instance(self.instance)


class OpenXRRenderLoop:
    """A World drawn into the runtime's swapchains, one :meth:`frame` at a time (see the module
    docstring); head and controller input of the same session through :meth:`poll`.

    ``eye_scale`` scales the runtime's recommended image size; ``samples`` is the renderer's
    MSAA (its default by size when None); ``overlay`` draws the world's telemetry in view."""

    def __init__(self, world: World, bindings: Sequence[Binding] = (STANDARD,), *,
                 eye_scale: float = 1.0, samples: int | None = None, near: float = NEAR,
                 far: float = FAR, overlay: bool = False) -> None:
        from .renderer import ModernGLRenderer  # moderngl stays out of input-only use

        needed = [xr.KHR_OPENGL_ENABLE_EXTENSION_NAME, xr.MNDX_EGL_ENABLE_EXTENSION_NAME]
        missing = [e for e in needed if e not in _available_extensions()]
        if missing:
            raise RuntimeUnavailableError(
                f"runtime {RUNTIME_NAME!r} lacks {', '.join(missing)}: the renderer's headless "
                "EGL context can only be shared with a runtime that offers both (Monado does)")
        self.world = world
        self.near, self.far, self.overlay = near, far, overlay
        self.instance = _instance(needed)
        self.system = xr.get_system(self.instance, xr.SystemGetInfo(
            form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))
        config = xr.enumerate_view_configuration_views(
            self.instance, self.system, xr.ViewConfigurationType.PRIMARY_STEREO)
        self.eye_size = choose_eye_size(
            (config[0].recommended_image_rect_width, config[0].recommended_image_rect_height),
            (config[0].max_image_rect_width, config[0].max_image_rect_height), eye_scale)
        self.view_count = len(config)
        # required before xrCreateSession with an OpenGL binding (the GL version is ours: 4.5)
        xr.get_opengl_graphics_requirements_khr(self.instance, self.system)
        self.renderer = ModernGLRenderer(eye_size=self.eye_size, samples=samples)
        self.renderer.attach(world, bindings)
        self.egl = current_egl()  # the renderer's context, current after its creation
        self.controllers = _Controllers(self.instance)
        self.lifecycle = SessionLifecycle()
        self.session: Any = None
        self.swapchains: list[Any] = []
        self.targets: list[list[Any]] = []
        self._input = InputFrame(time=0.0, head=Pose())
        self._create_session()

    # -- session and swapchains ---------------------------------------------------------------
    def _create_session(self) -> None:
        self._graphics_binding = egl_graphics_binding(self.egl)  # alive as long as the session
        self.session = xr.create_session(self.instance, xr.SessionCreateInfo(
            system_id=self.system, next=ctypes.pointer(self._graphics_binding)))
        self.lifecycle.created()
        self.loop = FrameLoop(self.lifecycle, self.eye_size, self.view_count)
        self.controllers.attach(self.session)
        self.space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType(choose_reference_space(
                [int(t) for t in xr.enumerate_reference_spaces(self.session)]))))
        self.view_space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.VIEW))
        fmt = choose_swapchain_format([int(f) for f in xr.enumerate_swapchain_formats(
            self.session)])
        w, h = self.eye_size
        for _ in range(self.view_count):
            chain = xr.create_swapchain(self.session, xr.SwapchainCreateInfo(
                usage_flags=xr.SwapchainUsageFlags.COLOR_ATTACHMENT_BIT
                | xr.SwapchainUsageFlags.SAMPLED_BIT,
                format=fmt, sample_count=1, width=w, height=h, face_count=1, array_size=1,
                mip_count=1))
            images = xr.enumerate_swapchain_images(chain, xr.SwapchainImageOpenGLKHR)
            self.swapchains.append(chain)
            self.targets.append(self.renderer.external_targets([im.image for im in images]))

    def _destroy_session(self) -> None:
        for fbos in self.targets:
            for fbo in fbos:
                for tex in fbo.color_attachments:
                    tex.release()  # the wrapper only: the runtime owns the texture
                fbo.release()
        for chain in self.swapchains:
            xr.destroy_swapchain(chain)
        self.targets, self.swapchains = [], []
        xr.destroy_session(self.session)
        self.session = None

    def _pump_events(self) -> None:
        for state in _session_events(self.instance):
            for call in self.lifecycle.on_state_changed(state):
                if call is Call.BEGIN:
                    xr.begin_session(self.session, xr.SessionBeginInfo(
                        primary_view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO))
                    self.lifecycle.began()
                elif call is Call.END:
                    xr.end_session(self.session)
                    self.lifecycle.ended()
                    self.loop.reset()
                elif call is Call.DESTROY:
                    self._destroy_session()
                    self.lifecycle.destroyed()
                    if self.lifecycle.restart:  # lost (e.g. unplugged): a new one at once
                        self._create_session()
                    return

    def request_exit(self) -> None:
        """Stop the session (xrRequestExitSession): the runtime then takes it through STOPPING
        and EXITING, and :meth:`frame` destroys it. :meth:`restart` makes a new one."""
        if self.session is not None and self.lifecycle.running:
            xr.request_exit_session(self.session)

    def restart(self) -> None:
        """A new session in the same process after the last one was destroyed (same instance,
        renderer and GL context; new swapchains)."""
        if self.session is not None:
            raise SessionStateError("a session exists", expected="destroyed",
                                    actual=self.lifecycle.state.name)
        self._create_session()

    # -- per frame ------------------------------------------------------------------------------
    def frame(self, now: float) -> FrameEnd | None:
        """Handle the runtime's events, then run one frame if the session is running; returns
        what was submitted (a projection layer, or no layers), None when no frame ran."""
        if self.session is None:  # exited: nothing until restart()
            return None
        self._pump_events()
        if not self.lifecycle.frame_loop:
            return None
        loop, session = self.loop, self.session
        state = xr.wait_frame(session, xr.FrameWaitInfo())
        loop.waited(bool(state.should_render), int(state.predicted_display_time))
        xr.begin_frame(session, xr.FrameBeginInfo())
        loop.began()
        t = state.predicted_display_time
        if self.lifecycle.input_focused:
            self._input = self.controllers.read(session, self.space, self.view_space, t, now,
                                                self._input)
        if loop.should_render:
            view_state, xr_views = xr.locate_views(session, xr.ViewLocateInfo(
                view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO,
                display_time=t, space=self.space))
            flags = int(view_state.view_state_flags)
            views = [view_from_xr(v) for v in xr_views]
            if loop.located(views, bool(flags & xr.VIEW_STATE_POSITION_VALID_BIT),
                            bool(flags & xr.VIEW_STATE_ORIENTATION_VALID_BIT)):
                self._render(views)
        end = loop.end()
        structs = FrameEndStructs(end, self.swapchains, self.space)
        xr.end_frame(session, structs.info)
        loop.ended(end)
        return end

    def _render(self, views: Sequence[View]) -> None:
        """Both eyes drawn once (one upload and cull for both), then each eye's image copied
        into its swapchain image between wait and release."""
        overlay = (lambda _s: world_lines(self.world.metrics())) if self.overlay else None
        make_current(self.egl)  # a runtime may leave its own context current in its calls
        self.renderer.draw(eyes_from_views(views, self.eye_size, self.near, self.far), overlay)
        for eye, chain in enumerate(self.swapchains):
            index = xr.acquire_swapchain_image(chain, xr.SwapchainImageAcquireInfo())
            self.loop.acquired(eye)
            xr.wait_swapchain_image(chain, xr.SwapchainImageWaitInfo(
                timeout=xr.INFINITE_DURATION))
            self.loop.image_waited(eye)
            self.renderer.copy_to(eye, self.targets[eye][index])
            xr.release_swapchain_image(chain, xr.SwapchainImageReleaseInfo())
            self.loop.released(eye)

    def poll(self, now: float) -> InputFrame:
        """The input the last frame read (head and controllers at its display time)."""
        return self._input

    def close(self) -> None:
        if self.session is not None:
            if self.lifecycle.running:
                xr.request_exit_session(self.session)
            self._destroy_session()
        self.renderer.close()
        xr.destroy_instance(self.instance)
