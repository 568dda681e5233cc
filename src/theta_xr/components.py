"""Components the renderer reads beyond the core's standard transform vocabulary."""

from __future__ import annotations

import numpy as np

from theta_ecs.component import Component

MeshHandle = Component(
    "theta.xr.MeshHandle",
    np.uint16,
    replicated=False,
    doc="Which mesh of the renderer's mesh library draws the entity (0: the binding's default).",
)

COMPONENTS: tuple[Component, ...] = (MeshHandle,)
