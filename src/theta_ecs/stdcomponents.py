"""The library's standard spatial components, with default wire quantization.

Engines may declare their own; these exist so that scenes, editors and renderers agree on a
common transform vocabulary.
"""

from __future__ import annotations

import numpy as np

from .component import Component, QuantizedFloat, SmallestThree

_VEC3 = np.dtype((np.float32, 3))
_XYZ = ("x", "y", "z")

Position = Component(
    "theta.Position",
    _VEC3,
    fields=_XYZ,
    quantization={f: QuantizedFloat(20, -2048.0, 2048.0) for f in _XYZ},
    doc="World-space position in metres (1/256 m steps on the wire).",
)
Velocity = Component(
    "theta.Velocity",
    _VEC3,
    fields=_XYZ,
    quantization={f: QuantizedFloat(16, -64.0, 64.0) for f in _XYZ},
    doc="Linear velocity in metres per second.",
)
Rotation = Component(
    "theta.Rotation",
    np.dtype((np.float32, 4)),
    fields=("x", "y", "z", "w"),
    quantization={"*": SmallestThree(10)},
    doc="Orientation as a unit quaternion (x, y, z, w).",
)
Scale = Component(
    "theta.Scale",
    _VEC3,
    fields=_XYZ,
    quantization={f: QuantizedFloat(16, 0.0, 64.0) for f in _XYZ},
    doc="Non-uniform scale factors.",
)
Color = Component(
    "theta.Color",
    np.dtype((np.uint8, 4)),
    fields=("r", "g", "b", "a"),
    doc="Display colour, 8 bits per channel.",
)

COMPONENTS: tuple[Component, ...] = (Position, Velocity, Rotation, Scale, Color)
