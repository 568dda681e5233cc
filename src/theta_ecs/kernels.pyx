# cython: boundscheck=False, wraparound=False
"""Fused column kernels for common systems: one pass over memory, no temporaries, GIL released.

``p += v * dt`` in numpy reads and writes a temporary the size of the column; these kernels do
the same arithmetic in a single sweep.
"""

cimport cython


def integrate(float[:, ::1] target not None, const float[:, ::1] rate not None, float dt):
    """``target += rate * dt`` for float32 columns of equal shape (e.g. position, velocity)."""
    if target.shape[0] != rate.shape[0] or target.shape[1] != rate.shape[1]:
        raise ValueError(
            f"shape mismatch: {(target.shape[0], target.shape[1])} vs "
            f"{(rate.shape[0], rate.shape[1])}"
        )
    cdef Py_ssize_t n = target.shape[0] * target.shape[1]
    cdef Py_ssize_t i
    cdef float* t = &target[0, 0] if n else NULL
    cdef const float* r = &rate[0, 0] if n else NULL
    with nogil:
        for i in range(n):
            t[i] += r[i] * dt


def integrate_scaled(float[:, ::1] target not None, const float[:, ::1] rate not None,
                     const float[::1] scale not None, float dt):
    """``target += rate * scale[:, None] * dt``: a per-row weight (mass, drag, ...)."""
    if (target.shape[0] != rate.shape[0] or target.shape[1] != rate.shape[1]
            or scale.shape[0] != target.shape[0]):
        raise ValueError("shape mismatch between target, rate and scale")
    cdef Py_ssize_t rows = target.shape[0]
    cdef Py_ssize_t cols = target.shape[1]
    cdef Py_ssize_t i, j
    cdef float s
    with nogil:
        for i in range(rows):
            s = scale[i] * dt
            for j in range(cols):
                target[i, j] += rate[i, j] * s
