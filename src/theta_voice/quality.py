"""Objective speech quality: wideband PESQ (ITU-T P.862.2) through the ``pesq`` package, on
16 kHz copies (soxr) of 48 kHz signals. A dev-extra dependency: tests and benchmarks only."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import BackendUnavailableError

__all__ = ["pesq_wb"]


def pesq_wb(reference: npt.NDArray[np.int16], degraded: npt.NDArray[np.int16],
            sample_rate: int = 48_000) -> float:
    """MOS-LQO of ``degraded`` against ``reference`` (1.0 to about 4.6); PESQ aligns the two
    itself, so a constant delay between them does not count against the score."""
    try:
        from pesq import pesq
    except ImportError as exc:  # pragma: no cover
        raise BackendUnavailableError(f"PESQ needs the pesq package (theta[dev]): {exc}") from exc
    import soxr

    n = min(len(reference), len(degraded))
    ref = soxr.resample(reference[:n].astype(np.float32) / 32768.0, sample_rate, 16_000)
    deg = soxr.resample(degraded[:n].astype(np.float32) / 32768.0, sample_rate, 16_000)
    return float(pesq(16_000, ref, deg, "wb"))
