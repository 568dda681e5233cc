"""The simulated tracked-input provider: scripted head and hand motion, buttons on a timeline.

It stands in for an OpenXR runtime in tests, CI and the headless fallback, as StereoKit's
simulator and Monado's simulated HMD do. Motions: ``stationary``, ``wobble`` (a seeded sway),
``orbit`` (the head circles a point, looking at it) and ``recorded`` (a path file played back).
Every motion is a pure function of ``now``: the same time always gives the same frame.

A recorded path is JSON::

    {"keys": [{"t": 0.0, "head": [x, y, z, qx, qy, qz, qw],
               "left": [...7 floats...], "right": [...]}, ...],
     "buttons": [{"button": "right/trigger", "start": 0.5, "end": 1.2}, ...]}

Poses are interpolated between keys (linear position, normalised-linear rotation); a hand absent
from every key is not tracked. ``buttons`` are the controller timeline (also accepted alone by
the provider as ``buttons=``); a pressed button's axis of the same name reads 1.0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from theta_ecs.interfaces import InputFrame, Pose

from .errors import InputPathError, InputScriptError
from .math3d import quat_look_at

MOTIONS = ("stationary", "wobble", "orbit", "recorded")
HEAD_HEIGHT = 1.7


def _yaw_quaternion(angle: float) -> tuple[float, float, float, float]:
    half = angle / 2.0
    return (0.0, math.sin(half), 0.0, math.cos(half))


@dataclass(frozen=True)
class Press:
    """``button`` held from ``start`` until ``end`` (seconds, end exclusive)."""

    button: str
    start: float
    end: float


class ButtonTimeline:
    """Controller buttons as intervals on the time axis."""

    def __init__(self, presses: Sequence[Press | Mapping[str, Any] | tuple[str, float, float]]
                 = ()) -> None:
        parsed = []
        for p in presses:
            try:
                if isinstance(p, Press):
                    parsed.append(p)
                elif isinstance(p, Mapping):
                    parsed.append(Press(str(p["button"]), float(p["start"]), float(p["end"])))
                else:
                    parsed.append(Press(str(p[0]), float(p[1]), float(p[2])))
            except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
                raise InputScriptError(f"button press {p!r} unreadable ({exc!r})",
                                       expected="(button, start, end)", actual=p) from exc
        for p in parsed:
            if not (math.isfinite(p.start) and math.isfinite(p.end) and p.start < p.end):
                raise InputScriptError(f"press of {p.button!r}: need start < end",
                                       expected="finite start < end", actual=p)
        self.presses = tuple(parsed)
        self.buttons = tuple(sorted({p.button for p in parsed}))

    def at(self, now: float) -> dict[str, bool]:
        state = dict.fromkeys(self.buttons, False)
        for p in self.presses:
            if p.start <= now < p.end:
                state[p.button] = True
        return state


class RecordedPath:
    """Keyed head and hand poses, interpolated; see the module docstring for the format."""

    def __init__(self, times: npt.NDArray[np.float64], tracks: dict[str, npt.NDArray[np.float64]],
                 buttons: ButtonTimeline) -> None:
        self.times = times
        self.tracks = tracks
        self.buttons = buttons

    @classmethod
    def load(cls, path: str | Path) -> RecordedPath:
        name = str(path)
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise InputPathError(name, f"cannot read JSON ({exc})") from exc
        return cls.from_document(doc, name)

    @classmethod
    def from_document(cls, doc: object, name: str = "<path>") -> RecordedPath:
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
            raise InputPathError(name, "expected an object with a non-empty 'keys' list")
        keys = doc["keys"]
        try:
            times = np.array([float(k["t"]) for k in keys])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InputPathError(name, f"every key needs a time 't' ({exc})") from exc
        if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
            raise InputPathError(name, "key times must be finite and strictly increasing")
        tracks: dict[str, npt.NDArray[np.float64]] = {}
        for track in ("head", "left", "right"):
            present = [track in k for k in keys]
            if not any(present):
                continue
            if not all(present):
                raise InputPathError(name, f"track {track!r} is missing from some keys")
            try:
                arr = np.array([k[track] for k in keys], dtype=np.float64)
            except (TypeError, ValueError, OverflowError) as exc:  # Overflow: a huge integer
                raise InputPathError(name, f"track {track!r}: {exc}") from exc
            if arr.shape != (len(keys), 7) or not np.isfinite(arr).all():
                raise InputPathError(name, f"track {track!r}: each pose is 7 finite numbers")
            # scaled by the largest component first, so a finite quaternion of huge components
            # (whose plain norm overflows to inf) normalises too instead of becoming zero
            peak = np.abs(arr[:, 3:]).max(axis=1)
            if (peak < 1e-6).any():
                raise InputPathError(name, f"track {track!r}: zero quaternion")
            quats = arr[:, 3:] / peak[:, None]
            arr[:, 3:] = quats / np.linalg.norm(quats, axis=1)[:, None]
            tracks[track] = arr
        if "head" not in tracks:
            raise InputPathError(name, "the 'head' track is required")
        presses = doc.get("buttons", [])
        if not isinstance(presses, list) or not all(isinstance(p, dict) for p in presses):
            raise InputPathError(name, "buttons: expected a list of objects")
        try:
            buttons = ButtonTimeline(presses)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InputPathError(name, f"buttons: {exc}") from exc
        return cls(times, tracks, buttons)

    def pose(self, track: str, now: float) -> Pose:
        arr, times = self.tracks[track], self.times
        i = int(np.searchsorted(times, now, side="right"))
        if i == 0:
            v = arr[0]
        elif i >= len(times):
            v = arr[-1]
        else:
            a = (now - times[i - 1]) / (times[i] - times[i - 1])
            q0, q1 = arr[i - 1, 3:], arr[i, 3:]
            if np.dot(q0, q1) < 0:  # the short way round
                q1 = -q1
            q = (1 - a) * q0 + a * q1
            v = np.concatenate([(1 - a) * arr[i - 1, :3] + a * arr[i, :3], q / np.linalg.norm(q)])
        return Pose(
            (float(v[0]), float(v[1]), float(v[2])),
            (float(v[3]), float(v[4]), float(v[5]), float(v[6])),
        )


def record_path(provider: Any, times: Sequence[float]) -> dict[str, Any]:
    """Poll ``provider`` (any input provider: desktop, OpenXR, simulated) at ``times`` and
    return a path document that ``motion="recorded"`` plays back; buttons become presses."""
    keys: list[dict[str, Any]] = []
    presses: list[dict[str, Any]] = []
    held: dict[str, float] = {}
    frames = [provider.poll(t) for t in times]
    hands = set.intersection(*(set(f.hands) for f in frames)) if frames else set()
    for f in frames:
        key: dict[str, Any] = {"t": f.time, "head": [*f.head.position, *f.head.orientation]}
        for h in sorted(hands & {"left", "right"}):
            pose = f.hands[h]
            key[h] = [*pose.position, *pose.orientation]
        keys.append(key)
        for button, down in f.buttons.items():
            if down and button not in held:
                held[button] = f.time
            elif not down and button in held:
                presses.append({"button": button, "start": held.pop(button), "end": f.time})
    end = frames[-1].time if frames else 0.0
    presses += [{"button": b, "start": t0, "end": end} for b, t0 in held.items() if t0 < end]
    return {"keys": keys, "buttons": presses}


class SimulatedInputProvider:
    """Deterministic scripted input; see the module docstring.

    ``motion``: one of :data:`MOTIONS` (``recorded`` needs ``path``, a file or a parsed
    document). ``buttons``: presses as :class:`Press`, mappings or (button, start, end) tuples,
    added to any in the path file. ``orbit_radius``, ``orbit_height`` and ``orbit_period`` shape
    the orbit around ``orbit_center``.
    """

    def __init__(
        self,
        seed: int = 0,
        motion: str = "wobble",
        path: str | Path | Mapping[str, Any] | None = None,
        buttons: Sequence[Press | Mapping[str, Any] | tuple[str, float, float]] = (),
        orbit_center: tuple[float, float, float] = (0.0, 1.0, -4.0),
        orbit_radius: float = 4.0,
        orbit_period: float = 20.0,
        orbit_height: float = HEAD_HEIGHT,
        **_: object,
    ) -> None:
        if motion not in MOTIONS:
            raise InputScriptError("unknown motion", expected=MOTIONS, actual=motion)
        orbit = (*(float(v) for v in orbit_center), float(orbit_radius), float(orbit_period),
                 float(orbit_height))
        if not all(math.isfinite(v) for v in orbit) or orbit_radius <= 0 or orbit_period <= 0:
            raise InputScriptError("orbit parameters give no pose",
                                   expected="finite, radius and period > 0",
                                   actual=dict(center=orbit_center, radius=orbit_radius,
                                               period=orbit_period, height=orbit_height))
        rng = np.random.default_rng(seed)
        self._phase = rng.uniform(0.0, 2.0 * math.pi, size=4)
        self.motion = motion
        self.recorded: RecordedPath | None = None
        if motion == "recorded":
            if path is None:
                raise InputScriptError("motion 'recorded' needs a path", expected="path",
                                       actual=None)
            self.recorded = (
                RecordedPath.from_document(dict(path)) if isinstance(path, Mapping)
                else RecordedPath.load(path)
            )
        presses = list(self.recorded.buttons.presses) if self.recorded else []
        self.timeline = ButtonTimeline([*presses, *buttons])
        self.orbit_center = orbit_center
        self.orbit_radius = float(orbit_radius)
        self.orbit_period = float(orbit_period)
        self.orbit_height = float(orbit_height)
        self.closed = False

    def _head(self, now: float) -> Pose:
        p = self._phase
        if self.motion == "stationary":
            return Pose((0.0, HEAD_HEIGHT, 0.0))
        if self.motion == "orbit":
            a = 2.0 * math.pi * now / self.orbit_period
            cx, cy, cz = self.orbit_center
            eye = (cx + self.orbit_radius * math.sin(a), self.orbit_height,
                   cz + self.orbit_radius * math.cos(a))
            forward = (cx - eye[0], cy - eye[1], cz - eye[2])
            return Pose(eye, quat_look_at(forward))
        return Pose(
            (0.3 * math.sin(0.5 * now + p[0]), HEAD_HEIGHT + 0.02 * math.sin(2.0 * now), 0.0),
            _yaw_quaternion(0.6 * math.sin(0.3 * now + p[1])),
        )

    def _hands(self, now: float) -> dict[str, Pose]:
        sides: tuple[tuple[str, float], ...] = (("left", -1.0), ("right", 1.0))
        p = self._phase
        if self.motion == "stationary" or self.motion == "orbit":
            return {side: Pose((sign * 0.25, 1.2, -0.4)) for side, sign in sides}
        return {
            side: Pose(
                (sign * 0.25 + 0.1 * math.sin(now + p[2]), 1.2 + 0.1 * math.cos(now + p[3]), -0.4),
                _yaw_quaternion(sign * 0.2),
            )
            for side, sign in sides
        }

    def poll(self, now: float) -> InputFrame:
        if self.recorded is not None:
            rec = self.recorded
            head = rec.pose("head", now)
            hands: dict[str, Pose] = {
                s: rec.pose(s, now) for s in ("left", "right") if s in rec.tracks
            }
        else:
            head, hands = self._head(now), self._hands(now)
        buttons = self.timeline.at(now)
        axes = {b: 1.0 if v else 0.0 for b, v in buttons.items()}
        if self.motion == "wobble" and not self.timeline.presses:
            # the wobble's own trigger rhythm, so a bare provider still exercises buttons
            p = self._phase
            buttons = {"right/trigger": math.sin(1.3 * now + p[2]) > 0.6}
            axes = {"right/trigger": max(0.0, math.sin(1.3 * now + p[2]))}
        return InputFrame(time=now, head=head, hands=hands, buttons=buttons, axes=axes)

    def close(self) -> None:
        self.closed = True
