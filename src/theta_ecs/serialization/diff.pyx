# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""The column diff of a snapshot against its baseline, in one pass per kernel, without the GIL.

Snapshots keep their entities sorted by entity index (the low 32 bits of the id, unique among
live entities), and their state as one ``uint32`` matrix of quantized lanes plus a presence
matrix. Matching two snapshots is then a linear merge, and the diff compares lanes row by row.
Deltas between lanes are taken modulo ``2^bits`` and zigzag-folded, so a small move in either
direction becomes a small unsigned number and every delta fits the lane's own width.

Callers pass arrays they built themselves; the shape checks below make a mismatch an error
rather than an out-of-bounds read.
"""

from libc.math cimport rint
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t, int32_t

from .._ids cimport bitlen as _bitlen

import numpy as np

from .errors import DecodeError


cdef inline uint64_t _lanemask(int bits) noexcept nogil:
    return (1ULL << bits) - 1


cdef inline uint32_t _zigzag(uint32_t cur, uint32_t base, int bits) noexcept nogil:
    cdef uint64_t mask = _lanemask(bits)
    cdef uint64_t d = (<uint64_t>cur - <uint64_t>base) & mask
    cdef uint64_t half = 1ULL << (bits - 1)
    if d < half:
        return <uint32_t>(d << 1)
    return <uint32_t>((((mask + 1) - d) << 1) - 1)


cdef inline uint32_t _unzigzag(uint32_t base, uint32_t z, int bits) noexcept nogil:
    cdef uint64_t mask = _lanemask(bits)
    cdef uint64_t d
    if z & 1:
        d = (mask + 1) - ((<uint64_t>z + 1) >> 1)
    else:
        d = <uint64_t>z >> 1
    return <uint32_t>((<uint64_t>base + d) & mask)


def match_sorted(const uint64_t[::1] cur, const uint64_t[::1] base):
    """Pair entities of two index-sorted id arrays.

    Returns ``cur_to_base`` (the baseline row of each current entity, or -1 when it is new) and
    ``base_kept`` (1 where the baseline entity is still alive with the same generation).
    """
    cdef Py_ssize_t nc = cur.shape[0], nb = base.shape[0]
    cdef Py_ssize_t i = 0, j = 0
    cdef uint64_t ic, ib
    cur_to_base = np.full(nc, -1, np.int64)
    base_kept = np.zeros(nb, np.uint8)
    cdef int64_t[::1] c2b = cur_to_base
    cdef uint8_t[::1] kept = base_kept
    with nogil:
        while i < nc and j < nb:
            ic = cur[i] & 0xFFFFFFFFULL
            ib = base[j] & 0xFFFFFFFFULL
            if ic < ib:
                i += 1
            elif ib < ic:
                j += 1
            else:
                if cur[i] == base[j]:
                    c2b[i] = j
                    kept[j] = 1
                i += 1
                j += 1
    return cur_to_base, base_kept


def changed_components(
    const uint32_t[:, ::1] cur_vals,
    const uint32_t[:, ::1] base_vals,
    const uint8_t[:, ::1] cur_pres,
    const uint8_t[:, ::1] base_pres,
    const int64_t[::1] cur_to_base,
    const int32_t[::1] lane_comp,
    const uint8_t[::1] lane_bits,
):
    """Per current entity and component: does it need sending?

    Returns ``(changed, presence_changed, magnitude, dirty)``: ``changed[i, c]`` is 1 when
    entity ``i`` has component ``c`` and it is new to the baseline or any of its lanes differ;
    ``presence_changed[i]`` is 1 when a matched entity gained or lost a component; ``magnitude``
    sums the bit lengths of the lane deltas (a cheap "how much did it move"), used for priority;
    ``dirty[i]`` is 1 for a matched entity with any change.
    """
    cdef Py_ssize_t n = cur_vals.shape[0]
    cdef Py_ssize_t nl = cur_vals.shape[1]
    cdef Py_ssize_t nc = cur_pres.shape[1]
    cdef Py_ssize_t i, l, c
    cdef int64_t b
    cdef uint32_t z
    if base_vals.shape[1] != nl or base_pres.shape[1] != nc or lane_comp.shape[0] != nl:
        raise ValueError("snapshot shapes disagree with the schema")
    if lane_bits.shape[0] != nl or cur_pres.shape[0] != n or cur_to_base.shape[0] != n:
        raise ValueError("snapshot shapes disagree with the schema")
    if base_pres.shape[0] != base_vals.shape[0]:
        raise ValueError("baseline shapes disagree")
    for l in range(nl):
        if lane_comp[l] < 0 or lane_comp[l] >= nc or lane_bits[l] < 1 or lane_bits[l] > 32:
            raise ValueError("lane table out of range")
    for i in range(n):
        if cur_to_base[i] >= base_vals.shape[0]:
            raise ValueError("baseline row out of range")
    changed = np.zeros((n, nc), np.uint8)
    pres_changed = np.zeros(n, np.uint8)
    magnitude = np.zeros(n, np.float32)
    dirty = np.zeros(n, np.uint8)
    cdef uint8_t[:, ::1] ch = changed
    cdef uint8_t[::1] pc = pres_changed
    cdef float[::1] mag = magnitude
    cdef uint8_t[::1] dt = dirty
    cdef const uint32_t* crow
    cdef const uint32_t* brow
    cdef int bits_sum
    with nogil:
        for i in range(n):
            b = cur_to_base[i]
            if b < 0:
                for c in range(nc):
                    ch[i, c] = cur_pres[i, c]
                continue
            for c in range(nc):
                if cur_pres[i, c] != base_pres[b, c]:
                    pc[i] = 1
                    dt[i] = 1
                    ch[i, c] = cur_pres[i, c]
            crow = &cur_vals[i, 0]
            brow = &base_vals[b, 0]
            bits_sum = 0
            for l in range(nl):
                if crow[l] != brow[l]:
                    c = lane_comp[l]
                    if cur_pres[i, c] and base_pres[b, c]:
                        ch[i, c] = 1
                        dt[i] = 1
                        z = _zigzag(crow[l], brow[l], lane_bits[l])
                        bits_sum += _bitlen(z)
            mag[i] = bits_sum
    return changed, pres_changed, magnitude, dirty


def lane_deltas(
    const uint32_t[:, ::1] cur_vals,
    const uint32_t[:, ::1] base_vals,
    const int64_t[::1] cur_rows,
    const int64_t[::1] base_rows,
    Py_ssize_t lane,
    int bits,
    Py_ssize_t base_lane=-1,
):
    """Zigzag deltas of one lane for the given (current row, baseline row) pairs.

    ``base_lane`` (default ``lane``) is the baseline's column, for predictions kept apart.
    """
    cdef Py_ssize_t k, n = cur_rows.shape[0]
    if base_lane < 0:
        base_lane = lane
    if base_rows.shape[0] != n or not 0 <= lane < cur_vals.shape[1] or not 1 <= bits <= 32:
        raise ValueError("bad lane_deltas arguments")
    if not 0 <= base_lane < base_vals.shape[1]:
        raise ValueError("bad lane_deltas arguments")
    for k in range(n):
        if not (0 <= cur_rows[k] < cur_vals.shape[0] and 0 <= base_rows[k] < base_vals.shape[0]):
            raise ValueError("row out of range")
    out = np.empty(n, np.uint32)
    cdef uint32_t[::1] o = out
    with nogil:
        for k in range(n):
            o[k] = _zigzag(cur_vals[cur_rows[k], lane], base_vals[base_rows[k], base_lane], bits)
    return out


def predict_positions(
    const uint32_t[:, ::1] base_vals,
    const int64_t[::1] base_rows,
    const uint8_t[::1] base_has_vel,
    const uint32_t[:, ::1] cur_vals,
    const int64_t[::1] cur_rows,
    const uint8_t[::1] cur_has_vel,
    const int64_t[::1] p_lanes,
    const double[::1] p_min,
    const double[::1] p_step,
    const double[::1] p_max,
    const double[::1] p_scale,
    const int64_t[::1] v_lanes,
    const double[::1] v_min,
    const double[::1] v_step,
    double factor,
):
    """Quantized positions predicted as baseline position + (baseline + current velocity) *
    ``factor`` (half the baseline's age in seconds), one row per (baseline, current) pair.

    Rows whose baseline lacks the velocity keep the baseline position. One pass, no temporaries;
    encoder and decoder run this same code, so the prediction is bit-identical on both sides.
    """
    cdef Py_ssize_t m = base_rows.shape[0]
    cdef Py_ssize_t w = p_lanes.shape[0]
    cdef Py_ssize_t k, e, b, c
    cdef double pos, vb, vn, x
    if cur_rows.shape[0] != m or base_has_vel.shape[0] != m or cur_has_vel.shape[0] != m:
        raise ValueError("bad predict_positions arguments")
    if p_min.shape[0] != w or p_step.shape[0] != w or p_max.shape[0] != w:
        raise ValueError("bad predict_positions tables")
    if p_scale.shape[0] != w:
        raise ValueError("bad predict_positions tables")
    if v_lanes.shape[0] != w or v_min.shape[0] != w or v_step.shape[0] != w:
        raise ValueError("bad predict_positions tables")
    for e in range(w):
        if not (0 <= p_lanes[e] < base_vals.shape[1] and 0 <= v_lanes[e] < base_vals.shape[1]
                and v_lanes[e] < cur_vals.shape[1]):
            raise ValueError("lane out of range")
    for k in range(m):
        if not (0 <= base_rows[k] < base_vals.shape[0] and 0 <= cur_rows[k] < cur_vals.shape[0]):
            raise ValueError("row out of range")
    out = np.empty((m, w), np.uint32)
    cdef uint32_t[:, ::1] o = out
    with nogil:
        for k in range(m):
            b = base_rows[k]
            c = cur_rows[k]
            for e in range(w):
                if not base_has_vel[k]:
                    o[k, e] = base_vals[b, p_lanes[e]]
                    continue
                pos = base_vals[b, p_lanes[e]] * p_step[e] + p_min[e]
                vb = base_vals[b, v_lanes[e]] * v_step[e] + v_min[e]
                if cur_has_vel[k]:
                    vn = cur_vals[c, v_lanes[e]] * v_step[e] + v_min[e]
                else:
                    vn = vb
                x = pos + (vb + vn) * factor
                if x < p_min[e]:
                    x = p_min[e]
                elif x > p_max[e]:
                    x = p_max[e]
                o[k, e] = <uint32_t>rint((x - p_min[e]) * p_scale[e])
    return out


def apply_lane_deltas(
    uint32_t[:, ::1] out_vals,
    const int64_t[::1] rows,
    Py_ssize_t lane,
    const uint32_t[::1] deltas,
    int bits,
):
    """Inverse of :func:`lane_deltas`, in place: ``out[rows, lane]`` += unzigzag(deltas).

    ``out_vals`` already holds the baseline values at ``rows``. A decoded delta wider than the
    lane is hostile input and raises DecodeError.
    """
    cdef Py_ssize_t k, n = rows.shape[0]
    cdef uint64_t limit
    if deltas.shape[0] != n or not 0 <= lane < out_vals.shape[1] or not 1 <= bits <= 32:
        raise ValueError("bad apply_lane_deltas arguments")
    limit = _lanemask(bits)
    for k in range(n):
        if not 0 <= rows[k] < out_vals.shape[0]:
            raise ValueError("row out of range")
        if deltas[k] > limit:
            raise DecodeError(f"delta {deltas[k]} wider than its {bits}-bit lane")
    with nogil:
        for k in range(n):
            out_vals[rows[k], lane] = _unzigzag(out_vals[rows[k], lane], deltas[k], bits)
