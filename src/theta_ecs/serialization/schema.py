"""The replication schema: how each replicated component becomes a row of ``uint32`` lanes.

A component's value is split into groups (one per declared field, or one for the whole value
when quantization is keyed ``"*"``). A group becomes lanes: one per element for quantized
floats, four (index + three) for smallest-three quaternions, and for anything unquantized the
raw bits (1 for bool, 8/16 for narrow types, 32-bit words otherwise). Both peers derive the same
lanes from the same component declarations; the schema hash proves they did.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..component import Component, Quantization, QuantizedFloat, SmallestThree
from ..manifest import canonical_hash
from .diff import predict_positions
from .errors import EncodeError
from .quantize import (
    dequantize_float,
    float_error_bound,
    quantize_float,
    smallest_three_decode,
    smallest_three_encode,
    smallest_three_error_bound,
)

U32 = npt.NDArray[np.uint32]
#: Per element: lanes, minimum, step, maximum, scale of position; lanes, minimum, step of velocity.
_Tables = tuple[tuple[npt.NDArray[Any], ...], tuple[npt.NDArray[Any], ...]]


@dataclass(frozen=True)
class LaneGroup:
    """One field (or the whole value) of a component and how it maps to lanes."""

    field: str | None  # structured-dtype field name, or None for plain/sub-array dtypes
    elements: tuple[int, ...]  # flat element positions within the field's value
    element_dtype: np.dtype[np.generic]
    quantization: Quantization | None
    lane_bits: tuple[int, ...]

    @property
    def width(self) -> int:
        return len(self.lane_bits)


def _raw_lane_bits(dt: np.dtype[np.generic], count: int) -> tuple[int, ...]:
    if dt.kind == "b":
        per: tuple[int, ...] = (1,)
    elif dt.itemsize == 1:
        per = (8,)
    elif dt.itemsize == 2:
        per = (16,)
    elif dt.itemsize % 4 == 0:
        per = (32,) * (dt.itemsize // 4)
    else:
        raise EncodeError(f"cannot replicate element type {dt}")
    return per * count


def _raw_view(dt: np.dtype[np.generic]) -> np.dtype[np.generic]:
    if dt.kind == "b" or dt.itemsize == 1:
        return np.dtype(np.uint8)
    if dt.itemsize == 2:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


class ComponentCodec:
    """Converts one component's column to and from its lanes."""

    def __init__(self, comp: Component, quantize: bool = True) -> None:
        self.component = comp
        self.groups: list[LaneGroup] = []
        dt = comp.dtype
        quant = dict(comp.quantization) if quantize else {}
        if dt.names:
            for name in dt.names:
                sub = dt.fields[name][0] if dt.fields else dt
                base = sub.base if sub.shape else sub
                count = int(np.prod(sub.shape)) if sub.shape else 1
                self._add_group(name, tuple(range(count)), base, quant.get(name, quant.get("*")))
        else:
            base = comp.column_dtype
            count = int(np.prod(dt.shape)) if dt.shape else 1
            if "*" in quant:
                self._add_group(None, tuple(range(count)), base, quant["*"])
            else:
                for i, fname in enumerate(comp.fields):
                    self._add_group(None, (i,), base, quant.get(fname))
        self.lane_bits: tuple[int, ...] = tuple(b for g in self.groups for b in g.lane_bits)

    def _add_group(
        self,
        field: str | None,
        elements: tuple[int, ...],
        base: np.dtype[np.generic],
        q: Quantization | None,
    ) -> None:
        name = f"{self.component.name}.{field or '*'}"
        if base.kind not in "biuf":
            raise EncodeError(f"{name}: cannot replicate dtype {base}")
        if isinstance(q, SmallestThree):
            if len(elements) != 4 or base.kind != "f":
                raise EncodeError(f"{name}: smallest-three needs four floats")
            bits: tuple[int, ...] = (2, q.bits, q.bits, q.bits)
        elif isinstance(q, QuantizedFloat):
            if base.kind not in "fiu":
                raise EncodeError(f"{name}: cannot quantize dtype {base}")
            bits = (q.bits,) * len(elements)
        else:
            q = None
            bits = _raw_lane_bits(base, len(elements))
        self.groups.append(LaneGroup(field, elements, base, q, bits))

    @property
    def width(self) -> int:
        return len(self.lane_bits)

    def _flat(self, column: npt.NDArray[np.generic], group: LaneGroup) -> npt.NDArray[np.generic]:
        n = column.shape[0]
        part = column[group.field] if group.field is not None else column  # type: ignore[call-overload]
        flat = np.asarray(part).reshape(n, -1)
        if group.field is None and len(group.elements) != flat.shape[1]:
            flat = flat[:, list(group.elements)]
        return flat

    def to_lanes(self, column: npt.NDArray[np.generic]) -> U32:
        """(n, width) lanes of an (n, ...) column."""
        n = column.shape[0]
        out = np.empty((n, self.width), np.uint32)
        at = 0
        for g in self.groups:
            flat = self._flat(column, g)
            if isinstance(g.quantization, SmallestThree):
                out[:, at : at + 4] = smallest_three_encode(flat, g.quantization)
            elif isinstance(g.quantization, QuantizedFloat):
                out[:, at : at + g.width] = quantize_float(flat, g.quantization)
            else:
                native = np.ascontiguousarray(flat, dtype=g.element_dtype.newbyteorder("="))
                if g.element_dtype.kind == "b":
                    raw = native.astype(np.uint8)
                else:
                    raw = native.view(_raw_view(g.element_dtype))
                out[:, at : at + g.width] = raw.reshape(n, g.width)
            at += g.width
        return out

    def from_lanes(self, lanes: U32) -> npt.NDArray[np.generic]:
        """The (n, ...) column that ``lanes`` stand for (dequantized)."""
        n = lanes.shape[0]
        column = self.component.empty(n)
        at = 0
        for g in self.groups:
            block = lanes[:, at : at + g.width]
            at += g.width
            if isinstance(g.quantization, SmallestThree):
                values: npt.NDArray[np.generic] = smallest_three_decode(block, g.quantization)
            elif isinstance(g.quantization, QuantizedFloat):
                values = dequantize_float(block, g.quantization)
                if g.element_dtype.kind in "iu":
                    values = np.rint(values)
            else:
                raw = np.ascontiguousarray(block.astype(_raw_view(g.element_dtype)))
                if g.element_dtype.kind == "b":
                    values = raw.astype(np.bool_)
                else:
                    values = raw.view(g.element_dtype.newbyteorder("=")).reshape(n, -1)
            values = np.asarray(values).astype(g.element_dtype, copy=False)
            self._assign(column, g, values.reshape(n, -1))
        return column

    def _assign(
        self, column: npt.NDArray[np.generic], g: LaneGroup, values: npt.NDArray[np.generic]
    ) -> None:
        n = column.shape[0]
        if g.field is not None:
            target = column[g.field]  # type: ignore[call-overload]
            column[g.field] = values.reshape(target.shape)  # type: ignore[index]
            return
        flat = column.reshape(n, -1)
        if len(g.elements) == flat.shape[1]:
            flat[:, :] = values
        else:
            flat[:, list(g.elements)] = values

    def error_bounds(self) -> dict[str, float]:
        """Worst-case absolute error per group (0 for lossless groups), for checks and tests."""
        out: dict[str, float] = {}
        for g in self.groups:
            key = g.field or ("*" if len(g.elements) > 1 else self.component.fields[g.elements[0]])
            if isinstance(g.quantization, SmallestThree):
                out[key] = smallest_three_error_bound(g.quantization)
            elif isinstance(g.quantization, QuantizedFloat):
                out[key] = float_error_bound(g.quantization, g.element_dtype)
            else:
                out[key] = 0.0
        return out


@dataclass(frozen=True)
class Prediction:
    """Code ``position`` deltas against ``baseline position + baseline velocity * age``.

    ``tick_seconds`` is the time between sequence numbers (the snapshot rate). Both sides
    compute the prediction from the same baseline lanes with the same float64 operations, so it
    is bit-identical; a moving body then costs only its acceleration over the baseline's age.
    """

    position: Component
    velocity: Component
    tick_seconds: float

    def describe(self) -> dict[str, object]:
        return {"position": self.position.name, "velocity": self.velocity.name,
                "tick_seconds": self.tick_seconds}


class ReplicationSchema:
    """Replicated components in stable-id order, with their lane layout and schema hash."""

    def __init__(
        self,
        components: Iterable[Component],
        *,
        quantize: bool = True,
        prediction: Prediction | None = None,
    ) -> None:
        comps = sorted({c.id: c for c in components if c.replicated}.values(), key=lambda c: c.id)
        if not comps:
            raise EncodeError("a replication schema needs at least one replicated component")
        self.components: tuple[Component, ...] = tuple(comps)
        self.quantize = quantize
        self.codecs: tuple[ComponentCodec, ...] = tuple(ComponentCodec(c, quantize) for c in comps)
        self.index_of: dict[int, int] = {c.id: i for i, c in enumerate(comps)}
        lane_comp: list[int] = []
        lane_bits: list[int] = []
        self.lane_slices: list[slice] = []
        for ci, codec in enumerate(self.codecs):
            start = len(lane_bits)
            lane_bits.extend(codec.lane_bits)
            lane_comp.extend([ci] * codec.width)
            self.lane_slices.append(slice(start, len(lane_bits)))
        self.lane_comp = np.asarray(lane_comp, np.int32)
        self.lane_bits = np.asarray(lane_bits, np.uint8)
        self.prediction: Prediction | None = None
        self._pred: tuple[int, int] | None = None
        self._tables: _Tables | None = None
        if prediction is not None and quantize:
            self._check_prediction(prediction)
            self.prediction = prediction
            self._pred = (
                self.index_of[prediction.position.id],
                self.index_of[prediction.velocity.id],
            )
            self._prediction_tables()
        # Lanes are coded in this order: the predicting velocity first, so the decoder has the
        # current velocity in hand when it reaches the predicted position.
        order = list(range(len(lane_bits)))
        if self._pred is not None:
            first = list(range(len(lane_bits)))[self.lane_slices[self._pred[1]]]
            order = first + [lane for lane in order if lane not in first]
        self.lane_order: tuple[int, ...] = tuple(order)
        self.hash = schema_hash(
            self.components, quantize, self.prediction.describe() if self.prediction else None
        )
        self.wire_hash = self.hash & 0xFFFFFFFF

    def _check_prediction(self, p: Prediction) -> None:
        for comp in (p.position, p.velocity):
            if comp.id not in self.index_of:
                raise EncodeError(f"prediction uses {comp.name}, which is not replicated")
            codec = self.codec(comp)
            if comp.dtype.names:
                raise EncodeError(f"prediction needs a plain vector dtype, not {comp.dtype}")
            if not all(isinstance(g.quantization, QuantizedFloat) for g in codec.groups):
                raise EncodeError(f"prediction needs {comp.name} quantized per element")
        if self.codec(p.position).width != self.codec(p.velocity).width:
            raise EncodeError("prediction needs position and velocity of the same width")
        if not p.tick_seconds > 0:
            raise EncodeError("prediction needs a positive tick duration")

    @property
    def predicted_component(self) -> int | None:
        """Index of the component whose deltas are coded against a prediction, if any."""
        return None if self._pred is None else self._pred[0]

    def predict(
        self,
        base_vals: U32,
        base_rows: npt.NDArray[np.int64],
        cur_vals: U32,
        cur_rows: npt.NDArray[np.int64],
        base_has_vel: npt.NDArray[np.bool_],
        cur_has_vel: npt.NDArray[np.bool_],
        age: int,
    ) -> U32:
        """Predicted position lanes (one column per :attr:`predicted_lanes` entry) for the
        (baseline row, current row) pairs: the baseline position moved by the mean of the
        baseline and current velocity over ``age`` ticks (trapezoidal: exact for constant
        acceleration such as gravity). The decoder knows the current velocity because velocity
        lanes are coded first (:attr:`lane_order`)."""
        assert self._tables is not None and self.prediction is not None
        (pl, pmin, pstep, pmax, pscale), (vl, vmin, vstep) = self._tables
        return predict_positions(
            base_vals, base_rows, base_has_vel.view(np.uint8), cur_vals, cur_rows,
            cur_has_vel.view(np.uint8), pl, pmin, pstep, pmax, pscale, vl, vmin, vstep,
            0.5 * age * self.prediction.tick_seconds,
        )

    @property
    def predicted_lanes(self) -> dict[int, int]:
        """Position lane -> column of :meth:`predict`'s result."""
        if self._tables is None:
            return {}
        return {int(lane): e for e, lane in enumerate(self._tables[0][0])}

    def _prediction_tables(self) -> None:
        """Per vector element: the lane, range and step of position and velocity."""
        assert self._pred is not None
        pc, vc = self._pred

        def table(ci: int) -> list[tuple[int, QuantizedFloat]]:
            rows: list[tuple[int, int, QuantizedFloat]] = []
            at = self.lane_slices[ci].start
            for g in self.codecs[ci].groups:
                assert isinstance(g.quantization, QuantizedFloat)
                for e in g.elements:
                    rows.append((e, at, g.quantization))
                    at += 1
            return [(lane, q) for _, lane, q in sorted(rows, key=lambda r: r[0])]

        pt, vt = table(pc), table(vc)
        f = np.float64
        self._tables = (
            (
                np.array([lane for lane, _ in pt], np.int64),
                np.array([q.minimum for _, q in pt], f),
                np.array([q.step for _, q in pt], f),
                np.array([q.maximum for _, q in pt], f),
                np.array([float((1 << q.bits) - 1) / (q.maximum - q.minimum) for _, q in pt], f),
            ),
            (
                np.array([lane for lane, _ in vt], np.int64),
                np.array([q.minimum for _, q in vt], f),
                np.array([q.step for _, q in vt], f),
            ),
        )

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def n_lanes(self) -> int:
        return len(self.lane_bits)

    @property
    def bits_per_entity(self) -> int:
        """Value bits of an entity that has every component (no ids, no flags)."""
        return int(self.lane_bits.sum())

    def codec(self, comp: Component) -> ComponentCodec:
        return self.codecs[self.index_of[comp.id]]

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.components)
        return f"ReplicationSchema([{names}], lanes={self.n_lanes}, hash={self.hash:016x})"


def schema_hash(
    components: Sequence[Component],
    quantize: bool = True,
    prediction: dict[str, object] | None = None,
) -> int:
    """64-bit hash of everything that shapes the wire format of ``components``.

    The manifest's entries of the replicated components plus the codec settings (quantization
    on or off, prediction), hashed the way the manifest's own schema hash is.
    """
    doc = {
        "format": "theta.replication/1",
        "quantize": quantize,
        "prediction": prediction,
        "components": [c.describe() for c in sorted(components, key=lambda c: c.id)],
    }
    return canonical_hash(doc)
