"""The components of the benchmark scenes, with the wire quantization each field is declared with.

The ranges are the scenes' world bounds: the simulations clamp every value into them, so
quantization never saturates. Cubes follow Glenn Fiedler's "Snapshot Compression" choices (about
1/512 m position steps, smallest-three orientation); the crowd needs centimetres over a square
kilometre.
"""

from __future__ import annotations

import math

import numpy as np

from ..component import Component, QuantizedFloat, SmallestThree

_VEC3 = np.dtype((np.float32, 3))
_XYZ = ("x", "y", "z")

# -- cubes ---------------------------------------------------------------------------------------
#: Horizontal extent of the cubes world: centres stay within +-CUBES_WALL, inside this range.
CUBES_HALF_EXTENT = 64.0
#: Vertical range of cube centres (the ground is y = 0).
CUBES_HEIGHT = 32.0
#: Largest speed along any axis, metres per second.
CUBES_MAX_SPEED = 32.0

CubePosition = Component(
    "theta.scenes.cubes.Position",
    _VEC3,
    fields=_XYZ,
    quantization={
        # 128 m over 2^16 - 1 steps and 32 m over 2^14 - 1 steps: both about 1/512 m.
        "x": QuantizedFloat(16, -CUBES_HALF_EXTENT, CUBES_HALF_EXTENT),
        "y": QuantizedFloat(14, 0.0, CUBES_HEIGHT),
        "z": QuantizedFloat(16, -CUBES_HALF_EXTENT, CUBES_HALF_EXTENT),
    },
    doc="Cube centre in metres, y up.",
)
CubeLinearVelocity = Component(
    "theta.scenes.cubes.LinearVelocity",
    _VEC3,
    fields=_XYZ,
    quantization={f: QuantizedFloat(11, -CUBES_MAX_SPEED, CUBES_MAX_SPEED) for f in _XYZ},
    doc="Linear velocity in metres per second (1/32 m/s steps).",
)
CubeOrientation = Component(
    "theta.scenes.cubes.Orientation",
    np.dtype((np.float32, 4)),
    fields=("x", "y", "z", "w"),
    quantization={"*": SmallestThree(9)},
    doc="Unit quaternion (x, y, z, w).",
)
CubeInteracting = Component(
    "theta.scenes.cubes.Interacting",
    np.uint8,
    doc="1 while the cube is in play because the moving body touched it; 0 once it sleeps.",
)

CUBE_COMPONENTS: tuple[Component, ...] = (
    CubePosition,
    CubeLinearVelocity,
    CubeOrientation,
    CubeInteracting,
)

# -- crowd ---------------------------------------------------------------------------------------
#: The crowd's positions are quantized over +-CROWD_HALF_EXTENT metres on x and z.
CROWD_HALF_EXTENT = 1024.0
#: Fastest an agent moves, metres per second (a run).
CROWD_MAX_SPEED = 8.0

CrowdPosition = Component(
    "theta.scenes.crowd.Position",
    _VEC3,
    fields=_XYZ,
    quantization={
        "x": QuantizedFloat(18, -CROWD_HALF_EXTENT, CROWD_HALF_EXTENT),  # about 7.8 mm
        "y": QuantizedFloat(10, -1.0, 7.0),
        "z": QuantizedFloat(18, -CROWD_HALF_EXTENT, CROWD_HALF_EXTENT),
    },
    doc="Agent position in metres on the ground plane (y up).",
)
CrowdVelocity = Component(
    "theta.scenes.crowd.Velocity",
    _VEC3,
    fields=_XYZ,
    quantization={f: QuantizedFloat(12, -CROWD_MAX_SPEED, CROWD_MAX_SPEED) for f in _XYZ},
    doc="Agent velocity in metres per second.",
)
CrowdHeading = Component(
    "theta.scenes.crowd.Heading",
    np.float32,
    quantization={"value": QuantizedFloat(10, -math.pi, math.pi)},
    doc="Yaw in radians, in [-pi, pi]: where the agent faces.",
)

CROWD_COMPONENTS: tuple[Component, ...] = (CrowdPosition, CrowdVelocity, CrowdHeading)

COMPONENTS: tuple[Component, ...] = CUBE_COMPONENTS + CROWD_COMPONENTS
