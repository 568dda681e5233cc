"""Keyboard-and-mouse flying controls as a pure state: keys and mouse motion in, poses out.

The desktop provider feeds it GLFW's input; tests feed it directly. WASD moves in the view's
plane, Q/E down and up, mouse motion turns (yaw, pitch), the left mouse button is the right
hand's trigger and the right button its grip. The right hand points where the view looks, from
just below the eye, so picking works with the mouse.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from theta_ecs.interfaces import InputFrame, Pose

from .math3d import quat_from_axis_angle, quat_multiply

MOVES = {"w": (0.0, 0.0, -1.0), "s": (0.0, 0.0, 1.0), "a": (-1.0, 0.0, 0.0),
         "d": (1.0, 0.0, 0.0), "q": (0.0, -1.0, 0.0), "e": (0.0, 1.0, 0.0)}


class FlyControls:
    def __init__(self, position: tuple[float, float, float] = (0.0, 1.7, 0.0), *,
                 speed: float = 2.0, sensitivity: float = 0.0025) -> None:
        self.position = list(position)
        self.yaw = 0.0
        self.pitch = 0.0
        self.speed = speed
        self.sensitivity = sensitivity

    def orientation(self) -> tuple[float, float, float, float]:
        yaw = quat_from_axis_angle((0.0, 1.0, 0.0), self.yaw)
        pitch = quat_from_axis_angle((1.0, 0.0, 0.0), self.pitch)
        return quat_multiply(yaw, pitch)

    def update(self, now: float, dt: float, keys: Collection[str], mouse_delta: tuple[float, float],
               mouse_buttons: Collection[int]) -> InputFrame:
        """Advance by ``dt`` seconds with ``keys`` held (lower-case letters) and the mouse moved
        by ``mouse_delta`` pixels; buttons 0 (left) and 1 (right) held."""
        self.yaw -= mouse_delta[0] * self.sensitivity
        self.pitch = max(-1.5, min(1.5, self.pitch - mouse_delta[1] * self.sensitivity))
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        for key in keys:
            mx, my, mz = MOVES.get(key, (0.0, 0.0, 0.0))
            # move in the yaw plane: local x and -z turned by yaw about +y
            self.position[0] += (mx * c + mz * s) * self.speed * dt
            self.position[1] += my * self.speed * dt
            self.position[2] += (-mx * s + mz * c) * self.speed * dt
        q = self.orientation()
        head = Pose((self.position[0], self.position[1], self.position[2]), q)
        hand = Pose((self.position[0], self.position[1] - 0.1, self.position[2]), q)
        trigger, grip = 0 in mouse_buttons, 1 in mouse_buttons
        return InputFrame(
            time=now, head=head, hands={"right": hand},
            buttons={"right/trigger": trigger, "right/grip": grip},
            axes={"right/trigger": float(trigger), "right/grip": float(grip)},
        )
