"""A simulated tracked-input provider: a head and two hands moving on smooth, seeded paths.

It stands in for an OpenXR runtime in tests, CI and the desktop fallback.
"""

from __future__ import annotations

import math

import numpy as np

from theta_ecs.interfaces import InputFrame, Pose


def _yaw_quaternion(angle: float) -> tuple[float, float, float, float]:
    half = angle / 2.0
    return (0.0, math.sin(half), 0.0, math.cos(half))


class SimulatedInputProvider:
    """Deterministic for a given seed: the same ``now`` always gives the same frame."""

    def __init__(self, seed: int = 0, **_: object) -> None:
        rng = np.random.default_rng(seed)
        self._phase = rng.uniform(0.0, 2.0 * math.pi, size=4)
        self._closed = False

    def poll(self, now: float) -> InputFrame:
        p = self._phase
        head = Pose(
            (0.3 * math.sin(0.5 * now + p[0]), 1.7 + 0.02 * math.sin(2.0 * now), 0.0),
            _yaw_quaternion(0.6 * math.sin(0.3 * now + p[1])),
        )
        hands = {
            side: Pose(
                (sign * 0.25 + 0.1 * math.sin(now + p[2]), 1.2 + 0.1 * math.cos(now + p[3]), -0.4),
                _yaw_quaternion(sign * 0.2),
            )
            for side, sign in (("left", -1.0), ("right", 1.0))
        }
        trigger = math.sin(1.3 * now + p[2]) > 0.6
        return InputFrame(
            time=now,
            head=head,
            hands=hands,
            buttons={"right/trigger": trigger},
            axes={"right/trigger": max(0.0, math.sin(1.3 * now + p[2]))},
        )

    def close(self) -> None:
        self._closed = True
