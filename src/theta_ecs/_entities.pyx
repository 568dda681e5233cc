# cython: boundscheck=False, wraparound=False
"""Generational entity ids: 32-bit index + 32-bit generation, with per-index location records.

An id is ``generation << 32 | index``. Freeing an index bumps its generation, so an old id can
never alias the entity that later reuses the slot; an index whose generation would wrap is
retired instead of reused. Every public method checks indices against what was handed out
before touching the arrays (the loops run without bounds checks only after that).
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from ._ids cimport ENTITY_INDEX_BITS

cnp.import_array()

#: The id layout, for Python code: ``index = id & IDX_MASK``, ``generation = id >> INDEX_BITS``.
INDEX_BITS = ENTITY_INDEX_BITS
INDEX_MASK = (1 << INDEX_BITS) - 1

cdef uint64_t IDX_MASK = (1ULL << ENTITY_INDEX_BITS) - 1
cdef uint32_t LAST_GENERATION = 0xFFFFFFFFU
cdef int32_t FREE = -1
cdef int32_t RESERVED = -2


class EntityStateError(ValueError):
    """An id that is not in the state an operation needs (e.g. placing a freed id)."""


cdef class EntityAllocator:
    """Allocates and recycles entity ids and records each live entity's (archetype, row).

    A slot is free (archetype -1), reserved (-2: allocated, not yet placed in a table) or live
    (the archetype id).
    """

    def __cinit__(self, Py_ssize_t capacity=1024):
        capacity = max(capacity, 16)
        self._set_arrays(
            np.zeros(capacity, np.uint32),
            np.full(capacity, FREE, np.int32),
            np.zeros(capacity, np.int64),
        )
        self._free = np.empty(64, np.int64)
        self._nfree = 0
        self._high = 0
        self._allocated = 0
        self._reserved = 0
        self._retired = 0

    cdef _set_arrays(self, gen, arch, row):
        self.generation = gen
        self.archetype = arch
        self.row = row
        self._gen = gen
        self._arch = arch
        self._row = row

    cdef _grow(self, Py_ssize_t needed):
        cdef Py_ssize_t cap = self._gen.shape[0]
        if needed <= cap:
            return
        if needed > <Py_ssize_t>IDX_MASK:
            raise OverflowError("more than 2^32 entity indices")
        while cap < needed:
            cap *= 2
        gen = np.zeros(cap, np.uint32)
        arch = np.full(cap, FREE, np.int32)
        row = np.zeros(cap, np.int64)
        gen[: self._high] = self.generation[: self._high]
        arch[: self._high] = self.archetype[: self._high]
        row[: self._high] = self.row[: self._high]
        self._set_arrays(gen, arch, row)

    @property
    def alive_count(self) -> int:
        """Entities placed in a table (reserved ids excluded)."""
        return self._allocated - self._reserved

    @property
    def reserved_count(self) -> int:
        return self._reserved

    @property
    def retired_count(self) -> int:
        """Indices taken out of use because their generation would wrap."""
        return self._retired

    @property
    def high_water(self) -> int:
        return self._high

    # -- state checks -------------------------------------------------------------------------
    cdef bint _matches(self, uint64_t entity) noexcept nogil:
        cdef uint64_t idx = entity & IDX_MASK
        return idx < <uint64_t>self._high and self._gen[idx] == <uint32_t>(entity >> ENTITY_INDEX_BITS)

    cpdef bint is_alive(self, uint64_t entity):
        return self._matches(entity) and self._arch[entity & IDX_MASK] >= 0

    cpdef bint is_reserved(self, uint64_t entity):
        return self._matches(entity) and self._arch[entity & IDX_MASK] == RESERVED

    def alive_mask(self, const uint64_t[::1] entities not None):
        """Vectorized ``is_alive``: a bool array, one per id."""
        out = np.zeros(entities.shape[0], np.bool_)
        cdef cnp.npy_bool[::1] m = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(entities.shape[0]):
                m[i] = self._matches(entities[i]) and self._arch[entities[i] & IDX_MASK] >= 0
        return out

    def has_duplicates(self, const uint64_t[::1] entities not None) -> bool:
        """True when the same index appears twice (a batch may not name an entity twice)."""
        cdef Py_ssize_t n = entities.shape[0]
        if n < 2:
            return False
        if n * 64 < self._high:  # small batch: sorting beats a bitmap over every index
            idx = np.sort(np.asarray(entities) & IDX_MASK)
            return bool((np.diff(idx) == 0).any())
        seen = np.zeros(self._high, np.bool_)
        cdef cnp.npy_bool[::1] s = seen
        cdef Py_ssize_t i
        cdef uint64_t j
        cdef bint dup = False
        with nogil:
            for i in range(n):
                j = entities[i] & IDX_MASK
                if j >= <uint64_t>self._high:
                    continue
                if s[j]:
                    dup = True
                    break
                s[j] = True
        return dup

    # -- allocation ---------------------------------------------------------------------------
    def allocate(self, Py_ssize_t n):
        """Return ``n`` fresh ids (uint64), reusing freed indices first. They start reserved."""
        if n < 0:
            raise ValueError("cannot allocate a negative number of entities")
        cdef Py_ssize_t reuse = min(n, self._nfree)
        cdef Py_ssize_t fresh = n - reuse
        self._grow(self._high + fresh)
        out = np.empty(n, np.uint64)
        cdef uint64_t[::1] o = out
        cdef int64_t[::1] free = self._free
        cdef Py_ssize_t i, idx
        with nogil:
            for i in range(reuse):
                idx = free[self._nfree - 1 - i]
                self._arch[idx] = RESERVED
                o[i] = ((<uint64_t>self._gen[idx]) << ENTITY_INDEX_BITS) | <uint64_t>idx
            for i in range(fresh):
                idx = self._high + i
                self._arch[idx] = RESERVED
                o[reuse + i] = ((<uint64_t>self._gen[idx]) << ENTITY_INDEX_BITS) | <uint64_t>idx
        self._nfree -= reuse
        self._high += fresh
        self._allocated += n
        self._reserved += n
        return out

    def allocate_one(self) -> int:
        cdef uint64_t e
        self.take_one(&e)
        return e

    cdef int take_one(self, uint64_t* out) except -1:
        """C form of :meth:`allocate_one` for the core's per-entity paths."""
        cdef Py_ssize_t idx
        if self._nfree:
            self._nfree -= 1
            idx = self._free[self._nfree]
        else:
            self._grow(self._high + 1)
            idx = self._high
            self._high += 1
        self._arch[idx] = RESERVED
        self._allocated += 1
        self._reserved += 1
        out[0] = ((<uint64_t>self._gen[idx]) << ENTITY_INDEX_BITS) | <uint64_t>idx
        return 0

    # -- locations ----------------------------------------------------------------------------
    cdef int32_t find(self, uint64_t entity, int64_t* row) noexcept:
        """The archetype of a live entity (its row into ``row``), or -1 for any other id."""
        cdef uint64_t idx = entity & IDX_MASK
        if idx >= <uint64_t>self._high or self._gen[idx] != <uint32_t>(entity >> ENTITY_INDEX_BITS):
            return -1
        cdef int32_t a = self._arch[idx]
        if a < 0:
            return -1
        row[0] = self._row[idx]
        return a

    cdef void put(self, uint64_t entity, int32_t archetype, int64_t row) noexcept:
        """:meth:`place` for an id the caller has just checked (reserved or live)."""
        cdef uint64_t idx = entity & IDX_MASK
        if self._arch[idx] == RESERVED:
            self._reserved -= 1
        self._arch[idx] = archetype
        self._row[idx] = row

    cpdef tuple locate(self, uint64_t entity):
        """(archetype id, row) of a live entity."""
        if not self.is_alive(entity):
            raise EntityStateError(f"entity {entity:#x} is not alive")
        cdef uint64_t idx = entity & IDX_MASK
        return self._arch[idx], self._row[idx]

    cpdef void place(self, uint64_t entity, int32_t archetype, int64_t row) except *:
        """Record where a reserved or live entity lives; a reserved one becomes live."""
        if archetype < 0:
            raise EntityStateError("archetype ids are non-negative")
        if not self._matches(entity) or self._arch[entity & IDX_MASK] == FREE:
            raise EntityStateError(f"entity {entity:#x} is neither reserved nor alive")
        cdef uint64_t idx = entity & IDX_MASK
        if self._arch[idx] == RESERVED:
            self._reserved -= 1
        self._arch[idx] = archetype
        self._row[idx] = row

    cdef int _check_placeable(self, const uint64_t[::1] entities) except -1:
        cdef Py_ssize_t i
        cdef bint ok = True
        with nogil:
            for i in range(entities.shape[0]):
                if not self._matches(entities[i]) or self._arch[entities[i] & IDX_MASK] == FREE:
                    ok = False
                    break
        if not ok:
            raise EntityStateError("a batch names an entity that is neither reserved nor alive")
        return 0

    cdef void _place_rows(self, const uint64_t[::1] entities, int32_t archetype,
                          const int64_t* rows, int64_t first_row):
        """Shared by the batch placements: rows[i] when given, else first_row + i."""
        cdef Py_ssize_t i, placed_reserved = 0
        cdef uint64_t idx
        with nogil:
            for i in range(entities.shape[0]):
                idx = entities[i] & IDX_MASK
                if self._arch[idx] == RESERVED:
                    placed_reserved += 1
                self._arch[idx] = archetype
                self._row[idx] = rows[i] if rows != NULL else first_row + i
        self._reserved -= placed_reserved

    def place_batch(self, const uint64_t[::1] entities not None, int32_t archetype,
                    const int64_t[::1] rows not None):
        """Record that ``entities[i]`` now lives at ``rows[i]`` of ``archetype``."""
        if rows.shape[0] != entities.shape[0]:
            raise ValueError("entities and rows differ in length")
        if archetype < 0:
            raise EntityStateError("archetype ids are non-negative")
        self._check_placeable(entities)
        if entities.shape[0]:
            self._place_rows(entities, archetype, &rows[0], 0)

    def place_range(self, const uint64_t[::1] entities not None, int32_t archetype,
                    int64_t first_row):
        """Record that ``entities`` occupy consecutive rows from ``first_row``."""
        if archetype < 0:
            raise EntityStateError("archetype ids are non-negative")
        self._check_placeable(entities)
        self._place_rows(entities, archetype, NULL, first_row)

    def locate_batch(self, const uint64_t[::1] entities not None):
        """(archetype ids int32, rows int64) for live ids."""
        if not self.alive_mask(entities).all():
            raise EntityStateError("a batch names an entity that is not alive")
        n = entities.shape[0]
        archs = np.empty(n, np.int32)
        rows = np.empty(n, np.int64)
        cdef int32_t[::1] a = archs
        cdef int64_t[::1] r = rows
        cdef Py_ssize_t i
        cdef uint64_t idx
        with nogil:
            for i in range(n):
                idx = entities[i] & IDX_MASK
                a[i] = self._arch[idx]
                r[i] = self._row[idx]
        return archs, rows

    # -- release ------------------------------------------------------------------------------
    cdef void _free_index(self, uint64_t idx):
        if self._arch[idx] == RESERVED:
            self._reserved -= 1
        self._arch[idx] = FREE
        self._allocated -= 1
        if self._gen[idx] == LAST_GENERATION:
            self._retired += 1  # reusing it would wrap the generation and revive stale ids
            return
        self._gen[idx] += 1
        if self._nfree == len(self._free):
            grown = np.empty(2 * len(self._free), np.int64)
            grown[: self._nfree] = self._free[: self._nfree]
            self._free = grown
        self._free[self._nfree] = idx
        self._nfree += 1

    def release(self, uint64_t entity):
        """Free a live or reserved id: its generation is bumped so the old id goes stale."""
        if not self._matches(entity) or self._arch[entity & IDX_MASK] == FREE:
            raise EntityStateError(f"entity {entity:#x} is neither reserved nor alive")
        self._free_index(entity & IDX_MASK)

    def release_batch(self, const uint64_t[::1] entities not None):
        """Free many ids; all must be reserved or alive, and distinct."""
        self._check_placeable(entities)
        if self.has_duplicates(entities):
            raise EntityStateError("a batch names an entity twice")
        cdef Py_ssize_t i
        for i in range(entities.shape[0]):
            self._free_index(entities[i] & IDX_MASK)
