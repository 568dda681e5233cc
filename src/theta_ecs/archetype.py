"""Archetype tables: every entity with exactly the same component set shares one table.

The table itself is the extension type :class:`theta_ecs._core.Archetype` (the per-entity paths
work on its columns in C); this module names it and the array types around it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._core import Archetype

Column = npt.NDArray[Any]
Ticks = npt.NDArray[np.uint64]
EntityIds = npt.NDArray[np.uint64]

__all__ = ["Archetype", "Column", "EntityIds", "Ticks"]
