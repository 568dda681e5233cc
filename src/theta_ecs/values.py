"""Component values: checking and converting what callers pass before it reaches a column.

The rule is never a lossy cast: a float into an int column, an out-of-range integer, a float that
overflows a narrower float, text into numbers: each is a ComponentDataError.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .component import Component
from .errors import ComponentDataError

Column = npt.NDArray[Any]


def _fits_integer_range(arr: npt.NDArray[Any], target: np.dtype[Any]) -> bool:
    if arr.size == 0 or target.kind not in "iu" or arr.dtype.kind not in "iu":
        return True
    info = np.iinfo(target)
    return bool(arr.min() >= info.min and arr.max() <= info.max)


def _check_cast(name: str, arr: npt.NDArray[Any], target: np.dtype[Any]) -> None:
    """Refuse any cast of ``arr`` to ``target`` that would lose or invent data."""
    int_to_int = arr.dtype.kind in "iub" and target.kind in "iu"
    if arr.dtype.kind in "OUSVMm" or not (
        int_to_int or np.can_cast(arr.dtype, target, "same_kind")
    ):
        raise ComponentDataError(f"{name}: cannot store dtype {arr.dtype} as {target}")
    if not _fits_integer_range(arr, target):
        raise ComponentDataError(f"{name}: values out of range for {target}")
    if (
        arr.size
        and arr.dtype.kind in "fc"
        and target.kind in "fc"
        and arr.dtype.itemsize > target.itemsize
    ):
        with np.errstate(over="ignore"):
            narrowed = arr.astype(target)
        if not np.array_equal(np.isfinite(narrowed), np.isfinite(arr)):
            raise ComponentDataError(f"{name}: values overflow {target}")


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


def coerce_one(comp: Component, value: object) -> Column:
    """One entity's value, checked like a batch of one (a copy, never the caller's array)."""
    if comp.dtype.names and isinstance(value, tuple):
        if len(value) != len(comp.dtype.names):
            raise ComponentDataError(f"{comp.name}: expected {len(comp.dtype.names)} fields")
        rows = np.empty(1, dtype=[(f, as_array(comp.name, v).dtype) for f, v in
                                  zip(comp.dtype.names, value)])
        for f, v in zip(comp.dtype.names, value):
            rows[f][0] = v
        return coerce_rows(comp, rows, 1)[0].copy()
    arr = as_array(comp.name, value)
    return np.array(coerce_rows(comp, arr.reshape((1, *arr.shape)), 1)[0], copy=True)
