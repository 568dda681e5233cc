"""Bindings: which ECS components feed a renderer's instance attributes and the picker's boxes.

A binding names a position column (float32 x 3) with optional rotation (float32 x 4, x y z w),
scale (float32 x 3), colour (uint8 x 4, sRGB) and mesh-handle (uint16) columns, or one packed
transform column of ten float32 fields (position, rotation, scale: the editor's ``Transform``).
Absent columns take the binding's defaults. Columns are read in place, as numpy views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from theta_ecs.archetype import Archetype
from theta_ecs.component import Component
from theta_ecs.stdcomponents import Color, Position, Rotation, Scale

from .components import MeshHandle
from .errors import BindingError
from .meshes import CUBE

F32 = npt.NDArray[np.float32]


def _check(comp: Component | None, width: int, kind: type, what: str) -> None:
    if comp is None:
        return
    dt = comp.dtype
    base = dt.subdtype[0] if dt.subdtype else dt
    shape = dt.shape or ()
    ok = base == np.dtype(kind) and (shape == (width,) if width > 1 else shape == ())
    if not ok:
        raise BindingError(comp.name, f"{what} ({np.dtype(kind)} x {width})", str(dt))


def _is_packed(comp: Component) -> bool:
    names = comp.dtype.names
    return bool(names) and len(names or ()) == 10 and all(
        comp.dtype.fields[n][0] == np.dtype("<f4") for n in names or ()  # type: ignore[index]
    )


@dataclass(frozen=True)
class Binding:
    position: Component
    rotation: Component | None = None
    scale: Component | None = None
    color: Component | None = None
    mesh: Component | None = None
    default_color: tuple[int, int, int, int] = (200, 200, 200, 255)
    default_mesh: int = CUBE

    def __post_init__(self) -> None:
        if not _is_packed(self.position):
            _check(self.position, 3, np.float32, "a position")
        elif self.rotation is not None or self.scale is not None:
            raise BindingError(self.position.name, "no separate rotation or scale with a "
                               "packed transform", "both")
        _check(self.rotation, 4, np.float32, "a rotation quaternion")
        _check(self.scale, 3, np.float32, "a scale")
        _check(self.color, 4, np.uint8, "an sRGB colour")
        _check(self.mesh, 1, np.uint16, "a mesh handle")
        if not all(0 <= c <= 255 for c in self.default_color):
            raise BindingError("default_color", "four values in 0..255", str(self.default_color))

    @property
    def packed(self) -> bool:
        """Whether the position column is a packed transform (position, rotation, scale)."""
        return _is_packed(self.position)

    @property
    def required(self) -> tuple[Component, ...]:
        return (self.position,)

    def components(self) -> tuple[Component, ...]:
        return tuple(c for c in (self.position, self.rotation, self.scale, self.color,
                                 self.mesh) if c is not None)

    # -- column access (views, no copies) --------------------------------------------------
    def _floats(self, arch: Archetype) -> F32:
        col = arch.columns[self.position.id][: arch.count]
        return col.view(np.float32).reshape(arch.count, 10)

    def positions(self, arch: Archetype) -> F32:
        if self.packed:
            return self._floats(arch)[:, 0:3]
        return arch.columns[self.position.id][: arch.count]

    def rotations(self, arch: Archetype) -> F32 | None:
        if self.packed:
            return self._floats(arch)[:, 3:7]
        if self.rotation is not None and self.rotation.id in arch.columns:
            return arch.columns[self.rotation.id][: arch.count]
        return None

    def scales(self, arch: Archetype) -> F32 | None:
        if self.packed:
            return self._floats(arch)[:, 7:10]
        if self.scale is not None and self.scale.id in arch.columns:
            return arch.columns[self.scale.id][: arch.count]
        return None

    def colors(self, arch: Archetype) -> npt.NDArray[np.uint8] | None:
        if self.color is not None and self.color.id in arch.columns:
            return arch.columns[self.color.id][: arch.count]
        return None

    def mesh_handles(self, arch: Archetype) -> npt.NDArray[np.uint16] | None:
        if self.mesh is not None and self.mesh.id in arch.columns:
            return arch.columns[self.mesh.id][: arch.count]
        return None


#: The core's standard transform vocabulary.
STANDARD = Binding(Position, Rotation, Scale, Color, MeshHandle)


def scene_binding(scene: str) -> Binding:
    """The binding of a built-in scene (``cubes``, ``crowd``) or of the editor (``editor``)."""
    if scene == "cubes":
        from theta_ecs.scenes.components import CubeOrientation, CubePosition

        return Binding(CubePosition, CubeOrientation, Scale, Color, MeshHandle)
    if scene == "crowd":
        from theta_ecs.scenes.components import CrowdPosition

        return Binding(CrowdPosition, None, None, Color, MeshHandle, default_mesh=1)
    if scene == "editor":
        from theta_ecs.commandlog import Transform

        return Binding(Transform, None, None, Color, MeshHandle)
    if scene == "standard":
        return STANDARD
    raise BindingError("scene", "cubes, crowd, editor or standard", scene)
