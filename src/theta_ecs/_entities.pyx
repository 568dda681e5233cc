# cython: boundscheck=False, wraparound=False
"""Generational entity ids: 32-bit index + 32-bit generation, with per-index location records.

An id is ``generation << 32 | index``. Freeing an index bumps its generation, so an old id can
never alias the entity that later reuses the slot.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cnp.import_array()

cdef uint64_t INDEX_MASK = 0xFFFFFFFFULL


cdef class EntityAllocator:
    """Allocates and recycles entity ids and records each live entity's (archetype, row)."""

    cdef public object generation   # uint32[cap]
    cdef public object archetype    # int32[cap]; -1 when free
    cdef public object row          # int64[cap]
    cdef uint32_t[::1] _gen
    cdef int32_t[::1] _arch
    cdef int64_t[::1] _row
    cdef object _free               # int64 stack of free indices
    cdef Py_ssize_t _nfree
    cdef Py_ssize_t _high           # indices [0, _high) were handed out at least once
    cdef Py_ssize_t _alive

    def __cinit__(self, Py_ssize_t capacity=1024):
        capacity = max(capacity, 16)
        self._set_arrays(
            np.zeros(capacity, np.uint32),
            np.full(capacity, -1, np.int32),
            np.zeros(capacity, np.int64),
        )
        self._free = np.empty(64, np.int64)
        self._nfree = 0
        self._high = 0
        self._alive = 0

    cdef _set_arrays(self, gen, arch, row):
        self.generation = gen
        self.archetype = arch
        self.row = row
        self._gen = gen
        self._arch = arch
        self._row = row

    cdef _reserve(self, Py_ssize_t needed):
        cdef Py_ssize_t cap = self._gen.shape[0]
        if needed <= cap:
            return
        while cap < needed:
            cap *= 2
        gen = np.zeros(cap, np.uint32)
        arch = np.full(cap, -1, np.int32)
        row = np.zeros(cap, np.int64)
        gen[: self._high] = self.generation[: self._high]
        arch[: self._high] = self.archetype[: self._high]
        row[: self._high] = self.row[: self._high]
        self._set_arrays(gen, arch, row)

    @property
    def alive_count(self) -> int:
        return self._alive

    @property
    def high_water(self) -> int:
        return self._high

    def allocate(self, Py_ssize_t n):
        """Return ``n`` fresh ids (uint64), reusing freed indices first."""
        if n < 0:
            raise ValueError("cannot allocate a negative number of entities")
        cdef Py_ssize_t reuse = min(n, self._nfree)
        cdef Py_ssize_t fresh = n - reuse
        self._reserve(self._high + fresh)
        out = np.empty(n, np.uint64)
        cdef uint64_t[::1] o = out
        cdef int64_t[::1] free = self._free
        cdef Py_ssize_t i, idx
        with nogil:
            for i in range(reuse):
                idx = free[self._nfree - 1 - i]
                o[i] = ((<uint64_t>self._gen[idx]) << 32) | <uint64_t>idx
            for i in range(fresh):
                idx = self._high + i
                o[reuse + i] = ((<uint64_t>self._gen[idx]) << 32) | <uint64_t>idx
        self._nfree -= reuse
        self._high += fresh
        self._alive += n
        return out

    def allocate_one(self) -> int:
        cdef Py_ssize_t idx
        if self._nfree:
            self._nfree -= 1
            idx = self._free[self._nfree]
        else:
            self._reserve(self._high + 1)
            idx = self._high
            self._high += 1
        self._alive += 1
        return ((<uint64_t>self._gen[idx]) << 32) | <uint64_t>idx

    cpdef bint is_alive(self, uint64_t entity):
        cdef uint64_t idx = entity & INDEX_MASK
        if idx >= <uint64_t>self._high:
            return False
        return self._arch[idx] >= 0 and self._gen[idx] == <uint32_t>(entity >> 32)

    def alive_mask(self, const uint64_t[::1] entities not None):
        """Vectorized ``is_alive``: a bool array, one per id."""
        out = np.zeros(entities.shape[0], np.bool_)
        cdef cnp.npy_bool[::1] m = out
        cdef Py_ssize_t i
        cdef uint64_t e, idx
        with nogil:
            for i in range(entities.shape[0]):
                e = entities[i]
                idx = e & INDEX_MASK
                m[i] = (idx < <uint64_t>self._high and self._arch[idx] >= 0
                        and self._gen[idx] == <uint32_t>(e >> 32))
        return out

    def has_duplicates(self, const uint64_t[::1] entities not None) -> bool:
        """True when the same index appears twice (a batch may not name an entity twice)."""
        seen = np.zeros(self._high, np.bool_)
        cdef cnp.npy_bool[::1] s = seen
        cdef Py_ssize_t i
        cdef uint64_t idx
        cdef bint dup = False
        with nogil:
            for i in range(entities.shape[0]):
                idx = entities[i] & INDEX_MASK
                if idx >= <uint64_t>self._high:
                    continue
                if s[idx]:
                    dup = True
                    break
                s[idx] = True
        return dup

    cpdef tuple locate(self, uint64_t entity):
        """(archetype id, row) of a live entity; the caller checks liveness first."""
        cdef uint64_t idx = entity & INDEX_MASK
        return self._arch[idx], self._row[idx]

    cpdef void place(self, uint64_t entity, int32_t archetype, int64_t row):
        cdef uint64_t idx = entity & INDEX_MASK
        self._arch[idx] = archetype
        self._row[idx] = row

    def place_batch(self, const uint64_t[::1] entities not None, int32_t archetype,
                    const int64_t[::1] rows not None):
        """Record that ``entities[i]`` now lives at ``rows[i]`` of ``archetype``."""
        if rows.shape[0] != entities.shape[0]:
            raise ValueError("entities and rows differ in length")
        cdef Py_ssize_t i
        cdef uint64_t idx
        with nogil:
            for i in range(entities.shape[0]):
                idx = entities[i] & INDEX_MASK
                self._arch[idx] = archetype
                self._row[idx] = rows[i]

    def place_range(self, const uint64_t[::1] entities not None, int32_t archetype,
                    int64_t first_row):
        """Record that ``entities`` occupy consecutive rows from ``first_row``."""
        cdef Py_ssize_t i
        cdef uint64_t idx
        with nogil:
            for i in range(entities.shape[0]):
                idx = entities[i] & INDEX_MASK
                self._arch[idx] = archetype
                self._row[idx] = first_row + i

    def locate_batch(self, const uint64_t[::1] entities not None):
        """(archetype ids int32, rows int64) for live ids."""
        n = entities.shape[0]
        archs = np.empty(n, np.int32)
        rows = np.empty(n, np.int64)
        cdef int32_t[::1] a = archs
        cdef int64_t[::1] r = rows
        cdef Py_ssize_t i
        cdef uint64_t idx
        with nogil:
            for i in range(n):
                idx = entities[i] & INDEX_MASK
                a[i] = self._arch[idx]
                r[i] = self._row[idx]
        return archs, rows

    cdef _push_free(self, int64_t idx):
        if self._nfree == len(self._free):
            grown = np.empty(2 * len(self._free), np.int64)
            grown[: self._nfree] = self._free[: self._nfree]
            self._free = grown
        self._free[self._nfree] = idx
        self._nfree += 1

    def release(self, uint64_t entity):
        """Free a live id: its generation is bumped so the old id goes stale."""
        cdef uint64_t idx = entity & INDEX_MASK
        self._gen[idx] += 1
        self._arch[idx] = -1
        self._push_free(idx)
        self._alive -= 1

    def release_batch(self, const uint64_t[::1] entities not None):
        cdef Py_ssize_t n = entities.shape[0]
        cdef Py_ssize_t i
        cdef uint64_t idx
        if self._nfree + n > len(self._free):
            grown = np.empty(max(2 * len(self._free), self._nfree + n), np.int64)
            grown[: self._nfree] = self._free[: self._nfree]
            self._free = grown
        cdef int64_t[::1] free = self._free
        with nogil:
            for i in range(n):
                idx = entities[i] & INDEX_MASK
                self._gen[idx] += 1
                self._arch[idx] = -1
                free[self._nfree + i] = idx
        self._nfree += n
        self._alive -= n
