"""The OpenXR input provider, through pyopenxr: the one module that imports ``xr``.

Importing it probes for a runtime (an instance created and destroyed, under a millisecond when
none exists) and raises :class:`~theta_xr.errors.RuntimeUnavailableError` when none answers, so
``theta backends`` shows the reason and :func:`theta_xr.fallback.open_input` falls back to the
desktop or simulated provider without a traceback.

With a runtime (``monado-service`` with ``XRT_COMPOSITOR_NULL=1 SIMULATED_ENABLE=1``, or a
headset): an instance, the HMD system, a session (headless through ``XR_MND_headless`` when the
runtime offers it, for input alone), one action set (hand poses, trigger, grip, thumbstick, A/B
buttons, suggested for the Khronos simple and Oculus Touch profiles), and a frame loop that runs
wait/begin/end and submits no layers when the runtime says not to render. The session lifecycle
is :class:`~theta_xr.session.SessionLifecycle`, which the tests drive without a runtime; the
calls below are exercised only where a runtime exists (none is installable on Debian 12).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

os.environ.setdefault("XR_LOADER_DEBUG", "none")  # the loader's chatter is not our error path

import xr

from theta_ecs.interfaces import InputFrame, Pose

from .errors import RuntimeUnavailableError
from .session import Call, SessionLifecycle

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


class OpenXRInputProvider:
    """Head and controller input from the OpenXR runtime, as :class:`InputFrame`s."""

    def __init__(self, **_: object) -> None:
        available = {e.extension_name.decode() for e in
                     xr.enumerate_instance_extension_properties()}
        self._headless = xr.MND_HEADLESS_EXTENSION_NAME in available
        exts = [xr.MND_HEADLESS_EXTENSION_NAME] if self._headless else []
        if not self._headless:
            raise RuntimeUnavailableError(
                f"runtime {RUNTIME_NAME!r} lacks XR_MND_headless: input without a graphics "
                "binding needs it (render through the OpenXR frame loop instead)")
        self.instance = xr.create_instance(xr.InstanceCreateInfo(
            application_info=xr.ApplicationInfo(application_name=APP_NAME),
            enabled_extension_names=exts))
        self.system = xr.get_system(self.instance, xr.SystemGetInfo(
            form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))
        self.lifecycle = SessionLifecycle()
        self.session: Any = None
        self._make_actions()
        self._create_session()
        self._last = InputFrame(time=0.0, head=Pose())

    # -- set-up ---------------------------------------------------------------------------
    def _path(self, s: str) -> Any:
        return xr.string_to_path(self.instance, s)

    def _make_actions(self) -> None:
        inst = self.instance
        self.action_set = xr.create_action_set(inst, xr.ActionSetCreateInfo(
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
            xr.suggest_interaction_profile_bindings(inst, xr.InteractionProfileSuggestedBinding(
                interaction_profile=self._path(profile),
                count_suggested_bindings=len(bindings),
                suggested_bindings=(xr.ActionSuggestedBinding * len(bindings))(*bindings)))

    def _create_session(self) -> None:
        self.session = xr.create_session(self.instance, xr.SessionCreateInfo(
            system_id=self.system))
        self.lifecycle.created()
        xr.attach_session_action_sets(self.session, xr.SessionActionSetsAttachInfo(
            action_sets=[self.action_set]))
        self.space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.STAGE))
        self.view_space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.VIEW))
        self.hand_spaces = [xr.create_action_space(self.session, xr.ActionSpaceCreateInfo(
            action=self.actions["pose"], subaction_path=p)) for p in self.hand_paths]

    # -- per frame ----------------------------------------------------------------------------
    def _pump_events(self) -> None:
        while True:
            try:
                buf = xr.poll_event(self.instance)
            except xr.EventUnavailable:
                return
            if xr.StructureType(buf.type) != xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                continue
            event = ctypes.cast(ctypes.byref(buf), ctypes.POINTER(
                xr.EventDataSessionStateChanged)).contents
            for call in self.lifecycle.on_state_changed(int(event.state)):
                self._do(call)

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
            self._create_session()  # a new session in the same process, as the runtime allows

    def _pose(self, space: Any, time: int) -> Pose | None:
        loc = xr.locate_space(space, self.space, time)
        valid = xr.SpaceLocationFlags.POSITION_VALID_BIT | \
            xr.SpaceLocationFlags.ORIENTATION_VALID_BIT
        if (int(loc.location_flags) & int(valid)) != int(valid):
            return None
        p, o = loc.pose.position, loc.pose.orientation
        return Pose((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))

    def poll(self, now: float) -> InputFrame:
        self._pump_events()
        if not self.lifecycle.frame_loop:
            return InputFrame(time=now, head=self._last.head)
        state = xr.wait_frame(self.session)
        xr.begin_frame(self.session)
        t = state.predicted_display_time
        frame = self._last
        if self.lifecycle.input_focused:
            xr.sync_actions(self.session, xr.ActionsSyncInfo(
                active_action_sets=[xr.ActiveActionSet(self.action_set, xr.NULL_PATH)]))
            head = self._pose(self.view_space, t) or self._last.head
            hands: dict[str, Pose] = {}
            buttons: dict[str, bool] = {}
            axes: dict[str, float] = {}
            for h, path, space in zip(HANDS, self.hand_paths, self.hand_spaces):
                pose = self._pose(space, t)
                if pose is not None:
                    hands[h] = pose
                for name in ("trigger", "grip"):
                    v = xr.get_action_state_float(self.session, xr.ActionStateGetInfo(
                        action=self.actions[name], subaction_path=path)).current_state
                    axes[f"{h}/{name}"] = float(v)
                    buttons[f"{h}/{name}"] = v > 0.5
                stick = xr.get_action_state_vector2f(self.session, xr.ActionStateGetInfo(
                    action=self.actions["thumbstick"], subaction_path=path)).current_state
                axes[f"{h}/thumbstick/x"], axes[f"{h}/thumbstick/y"] = stick.x, stick.y
            for name in ("a", "b"):
                buttons[f"right/{name}"] = bool(xr.get_action_state_boolean(
                    self.session, xr.ActionStateGetInfo(action=self.actions[name])).current_state)
            frame = InputFrame(time=now, head=head, hands=hands, buttons=buttons, axes=axes)
        # input only: no layers (a renderer submits projection layers through its own loop)
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
