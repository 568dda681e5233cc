"""Components: a name, a numpy dtype, and how each field is quantized on the wire.

A component's stable id is SipHash-2-4 of its qualified name under a fixed key, so every build,
peer and language agrees on it without a central registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ._core import ComponentKey
from ._siphash import siphash24
from .errors import DuplicateComponentError, UnknownComponentError

#: Key for component ids. Changing it changes every id: it is part of the wire format.
COMPONENT_ID_KEY = b"theta.component\x00"


def stable_id(name: str) -> int:
    """The 64-bit stable id of a qualified component name."""
    return siphash24(COMPONENT_ID_KEY, name.encode("utf-8"))


@dataclass(frozen=True)
class QuantizedFloat:
    """A float field sent as an unsigned ``bits``-bit integer over ``[minimum, maximum]``."""

    bits: int
    minimum: float
    maximum: float

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 32:
            raise ValueError(f"bits must be in 1..32, got {self.bits}")
        if not self.maximum > self.minimum:
            raise ValueError("maximum must exceed minimum")

    @property
    def step(self) -> float:
        """The largest rounding error is half of this."""
        return (self.maximum - self.minimum) / float((1 << self.bits) - 1)

    def describe(self) -> dict[str, object]:
        return {"kind": "float", "bits": self.bits, "min": self.minimum, "max": self.maximum}


@dataclass(frozen=True)
class SmallestThree:
    """A unit quaternion sent as the index of its largest component plus the other three."""

    bits: int = 9

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ValueError(f"bits must be in 2..16, got {self.bits}")

    def describe(self) -> dict[str, object]:
        return {"kind": "smallest_three", "bits": self.bits}


Quantization = QuantizedFloat | SmallestThree


@dataclass(frozen=True, eq=False)
class Component(ComponentKey):
    """A component type: ``Component("game.Position", np.dtype((np.float32, 3)))``.

    ``fields`` names the parts of a vector dtype (for the manifest and quantization); structured
    dtypes name their own. ``quantization`` maps a field name (or ``"*"`` for the whole value) to
    how it travels; ``replicated`` says whether snapshots carry it. Components hash and compare
    by stable id, in C (:class:`~theta_ecs._core.ComponentKey`).
    """

    name: str
    dtype: np.dtype[np.generic]
    fields: tuple[str, ...] = ()
    quantization: Mapping[str, Quantization] = field(default_factory=dict)
    replicated: bool = True
    doc: str = ""
    id: int = field(init=False)

    def __init__(
        self,
        name: str,
        dtype: npt.DTypeLike,
        fields: Sequence[str] = (),
        quantization: Mapping[str, Quantization] | None = None,
        replicated: bool = True,
        doc: str = "",
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("a component needs a non-empty qualified name")
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError(f"component {name}: object dtypes cannot live in columns")
        names: tuple[str, ...]
        if dt.names:
            names = tuple(dt.names)
            if fields and tuple(fields) != names:
                raise ValueError(f"component {name}: fields {fields} differ from dtype {names}")
        elif fields:
            names = tuple(fields)
            width = int(np.prod(dt.shape)) if dt.shape else 1
            if len(names) != width:
                raise ValueError(f"component {name}: {len(names)} field names for width {width}")
        else:
            names = ("value",)
        quant = dict(quantization or {})
        for key in quant:
            if key != "*" and key not in names:
                raise ValueError(f"component {name}: quantization for unknown field {key!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dt)
        object.__setattr__(self, "fields", names)
        object.__setattr__(self, "quantization", quant)
        object.__setattr__(self, "replicated", replicated)
        object.__setattr__(self, "doc", doc)
        object.__setattr__(self, "id", stable_id(name))
        self._set_identity(self.id)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one entity's value (``(3,)`` for a float32 x3 vector, ``()`` for scalars)."""
        return tuple(self.dtype.shape)

    @property
    def column_dtype(self) -> np.dtype[np.generic]:
        """Element dtype of the column (the base of a sub-array dtype)."""
        return self.dtype.base if self.dtype.shape else self.dtype

    def empty(self, n: int) -> npt.NDArray[np.generic]:
        """A new column of ``n`` rows."""
        return np.zeros((n, *self.row_shape), dtype=self.column_dtype)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        args = (self.name, self.dtype, self.fields, dict(self.quantization), self.replicated,
                self.doc)
        return (Component, args)

    def __repr__(self) -> str:
        return f"Component({self.name!r}, {self.dtype!s})"

    def describe(self) -> dict[str, object]:
        """Manifest entry: everything a peer needs to decode this component."""
        return {
            "id": f"{self.id:016x}",
            "name": self.name,
            # JSON-normal (lists, not tuples) so the entry equals its own round trip.
            "dtype": json.loads(json.dumps(self.dtype.descr))
            if self.dtype.names
            else self.column_dtype.str,
            "shape": list(self.row_shape),
            "fields": list(self.fields),
            "quantization": {k: q.describe() for k, q in sorted(self.quantization.items())},
            "replicated": self.replicated,
        }


class ComponentRegistry:
    """Components known by name and by stable id; a clash of names or ids is an error."""

    def __init__(self, components: Sequence[Component] = ()) -> None:
        self._by_id: dict[int, Component] = {}
        self._by_name: dict[str, Component] = {}
        for comp in components:
            self.register(comp)

    def register(self, comp: Component) -> Component:
        known = self._by_id.get(comp.id)
        if known is not None:
            if known.name != comp.name:
                raise DuplicateComponentError(
                    f"stable id collision: {comp.name!r} and {known.name!r} hash alike"
                )
            if known.dtype != comp.dtype:
                raise DuplicateComponentError(
                    f"component {comp.name!r} registered twice with different dtypes"
                )
            return known
        self._by_id[comp.id] = comp
        self._by_name[comp.name] = comp
        return comp

    def by_id(self, cid: int) -> Component:
        try:
            return self._by_id[cid]
        except KeyError:
            raise UnknownComponentError(f"no component with id {cid:016x}") from None

    def by_name(self, name: str) -> Component:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownComponentError(f"no component named {name!r}") from None

    def __contains__(self, comp: object) -> bool:
        return isinstance(comp, Component) and comp.id in self._by_id

    def __iter__(self) -> Iterator[Component]:
        return iter(sorted(self._by_id.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self._by_id)
