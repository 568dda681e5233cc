"""The time-step check both scenes share: a bad dt is refused before any state moves."""

from __future__ import annotations

import math

import numpy as np


def checked_dt(dt: object) -> float:
    """``dt`` as float seconds in (0, 1], or ValueError."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise ValueError(f"dt must be a number of seconds, got {dt!r}")
    value = float(dt)
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"dt must be in (0, 1] seconds, got {dt!r}")
    return value
