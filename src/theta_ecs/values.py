"""Component values: checking and converting what callers pass before it reaches a column.

The rule is never a lossy cast: a float into an int column, an out-of-range integer, a float that
overflows a narrower float, text into numbers: each is a ComponentDataError.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .component import Component
from .errors import ComponentDataError

Column = npt.NDArray[Any]


def _check_cast(name: str, arr: npt.NDArray[Any], target: np.dtype[Any]) -> None:
    """Refuse any cast of ``arr`` to ``target`` that would lose or invent data."""
    if arr.dtype.kind in "OUSVMm":
        raise ComponentDataError(f"{name}: cannot store dtype {arr.dtype} as {target}")
    if np.can_cast(arr.dtype, target, "safe") or arr.size == 0:
        return  # the common case: nothing can be lost
    if arr.dtype.kind in "iub" and target.kind in "iu":
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise ComponentDataError(f"{name}: values out of range for {target}")
        return
    if not np.can_cast(arr.dtype, target, "same_kind"):
        raise ComponentDataError(f"{name}: cannot store dtype {arr.dtype} as {target}")
    if arr.dtype.kind in "fc" and target.kind in "fc":
        try:
            with np.errstate(over="raise"):
                arr.astype(target)
        except FloatingPointError:
            raise ComponentDataError(f"{name}: values overflow {target}") from None


def as_array(name: str, values: object) -> npt.NDArray[Any]:
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged lists, unconvertible objects
        raise ComponentDataError(f"{name}: {exc}") from None


def coerce_rows(comp: Component, values: npt.ArrayLike, n: int) -> Column:
    """``values`` as ``n`` rows of ``comp``'s column, or ComponentDataError (never a lossy cast)."""
    want = (n, *comp.row_shape)
    arr = as_array(comp.name, values)
    if comp.dtype.names:
        if arr.dtype.names != comp.dtype.names:
            raise ComponentDataError(
                f"{comp.name}: expected a structured array with fields {comp.dtype.names}, "
                f"got dtype {arr.dtype}"
            )
        for field in comp.dtype.names:
            target = comp.dtype.fields[field][0]  # type: ignore[index]
            _check_cast(f"{comp.name}.{field}", arr[field], target.base)
        arr = arr.astype(comp.dtype, copy=False)
    else:
        target = comp.column_dtype
        if n == 0 and arr.size == 0:  # np.asarray([]) is float64, yet holds nothing to lose
            return np.zeros(want, target)
        _check_cast(comp.name, arr, target)
    if arr.shape != want:
        raise ComponentDataError(f"{comp.name}: expected shape {want}, got {arr.shape}")
    return arr


def _check_scalar(name: str, value: object, target: np.dtype[Any]) -> None:
    """The rules of :func:`_check_cast` for one plain Python number (no numpy round trip)."""
    if isinstance(value, bool) or (isinstance(value, int) and target.kind in "iu"):
        if target.kind in "iu":
            info = np.iinfo(target)
            if not info.min <= int(value) <= info.max:
                raise ComponentDataError(f"{name}: {value} out of range for {target}")
        return
    if isinstance(value, float) and target.kind in "iu":
        raise ComponentDataError(f"{name}: cannot store a float as {target}")
    if isinstance(value, (int, float)) and target.kind == "f":
        if math.isfinite(value) and abs(value) > float(np.finfo(target).max):
            raise ComponentDataError(f"{name}: {value} overflows {target}")
        return
    _check_cast(name, as_array(name, value), target)


def coerce_one(comp: Component, value: object) -> Column:
    """One entity's value, checked like a batch of one (a copy, never the caller's array)."""
    names = comp.dtype.names
    if names and isinstance(value, tuple):
        if len(value) != len(names):
            raise ComponentDataError(f"{comp.name}: expected {len(names)} fields")
        fields = comp.dtype.fields
        assert fields is not None
        for field, v in zip(names, value):
            _check_scalar(f"{comp.name}.{field}", v, fields[field][0].base)
        try:
            return np.array([value], dtype=comp.dtype)[0]
        except (TypeError, ValueError) as exc:
            raise ComponentDataError(f"{comp.name}: {exc}") from None
    arr = as_array(comp.name, value)
    return np.array(coerce_rows(comp, arr.reshape((1, *arr.shape)), 1)[0], copy=True)
