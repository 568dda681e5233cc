# Shared C helpers for the core's extension modules (``cimport``-ed, never imported).
from libc.stdint cimport uint32_t, uint64_t

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil

cdef enum:
    # An entity id is generation << ENTITY_INDEX_BITS | index.
    ENTITY_INDEX_BITS = 32

cdef inline uint64_t entity_index_of(uint64_t entity) noexcept nogil:
    return entity & ((1ULL << ENTITY_INDEX_BITS) - 1)

cdef inline uint32_t entity_generation_of(uint64_t entity) noexcept nogil:
    return <uint32_t>(entity >> ENTITY_INDEX_BITS)

cdef inline int bitlen(uint64_t v) noexcept nogil:
    """Bits needed to write ``v`` (0 for 0), like ``int.bit_length``."""
    if v == 0:
        return 0
    return 64 - __builtin_clzll(v)
