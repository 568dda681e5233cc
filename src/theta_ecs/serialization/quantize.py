"""Per-field quantization: floats to n-bit integers over a range, quaternions to smallest-three.

All functions are vectorized over rows. Quantized values are ``uint32``; the wire carries them in
exactly the declared number of bits. Out-of-range input is clamped (and NaN sent as the minimum)
so a bad value can never produce an integer wider than its lane.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..component import QuantizedFloat, SmallestThree

FloatArray = npt.NDArray[np.floating]
U32 = npt.NDArray[np.uint32]

#: Smallest-three sends the three non-largest components, each within ±1/√2.
S3_RANGE = 1.0 / math.sqrt(2.0)


def quantize_float(x: npt.ArrayLike, q: QuantizedFloat) -> U32:
    """Round ``x`` onto the ``2^bits`` evenly spaced values of ``[minimum, maximum]``."""
    arr = np.asarray(x, dtype=np.float64)
    arr = np.nan_to_num(arr, nan=q.minimum, posinf=q.maximum, neginf=q.minimum)
    top = float((1 << q.bits) - 1)
    scaled = (np.clip(arr, q.minimum, q.maximum) - q.minimum) * (top / (q.maximum - q.minimum))
    return np.rint(scaled).astype(np.uint32)


def dequantize_float(u: npt.ArrayLike, q: QuantizedFloat) -> npt.NDArray[np.float64]:
    """The value each quantized integer stands for."""
    return q.minimum + np.asarray(u, dtype=np.float64) * q.step


def float_error_bound(q: QuantizedFloat, dtype: np.dtype[np.generic]) -> float:
    """Largest |x - dequantize(quantize(x))| for in-range x, including the storage rounding."""
    eps = float(np.finfo(np.dtype(dtype.str)).eps) if dtype.kind == "f" else 0.0
    return q.step / 2.0 + eps * max(abs(q.minimum), abs(q.maximum))


def smallest_three_encode(quats: npt.ArrayLike, s3: SmallestThree) -> U32:
    """(n, 4) quaternions to (n, 4) lanes: index of the largest component, then the other three.

    q and -q are the same rotation, so the sign is chosen to make the largest component
    positive; it is then implied by the other three and not sent. Zero or non-finite quaternions
    travel as the identity.
    """
    q = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
    n = q.shape[0]
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    bad = ~np.isfinite(norm) | (norm < 1e-12)
    safe = np.where(bad, 1.0, norm)
    q = np.where(bad[:, None], np.array([0.0, 0.0, 0.0, 1.0]), q / safe[:, None])
    largest = np.argmax(np.abs(q), axis=1)
    rows = np.arange(n)
    sign = np.where(q[rows, largest] < 0.0, -1.0, 1.0)
    q = q * sign[:, None]
    others = _OTHERS[largest]
    small = np.take_along_axis(q, others, axis=1)
    fq = QuantizedFloat(s3.bits, -S3_RANGE, S3_RANGE)
    out = np.empty((n, 4), np.uint32)
    out[:, 0] = largest
    out[:, 1:] = quantize_float(small, fq)
    return out


def smallest_three_decode(lanes: npt.ArrayLike, s3: SmallestThree) -> npt.NDArray[np.float64]:
    """(n, 4) lanes back to unit quaternions (largest component positive)."""
    u = np.asarray(lanes, dtype=np.uint32).reshape(-1, 4)
    fq = QuantizedFloat(s3.bits, -S3_RANGE, S3_RANGE)
    small = dequantize_float(u[:, 1:], fq)
    largest = u[:, 0].astype(np.int64) & 3
    big = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", small, small)))
    out = np.empty((u.shape[0], 4), np.float64)
    rows = np.arange(u.shape[0])
    out[rows, largest] = big
    np.put_along_axis(out, _OTHERS[largest], small, axis=1)
    return out


def smallest_three_error_bound(s3: SmallestThree) -> float:
    """Per-component error bound after sign alignment.

    Each sent component is off by at most step/2; the largest (≥ 1/2) is rebuilt from the other
    three, so its error is at most (sum of their magnitudes ≤ 1.5) · (step/2) / (1/2), plus a
    second-order term; two steps covers both with margin.
    """
    step = 2.0 * S3_RANGE / float((1 << s3.bits) - 1)
    return 2.0 * step


_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]], dtype=np.int64)
