# cython: boundscheck=False, wraparound=False
"""SipHash-2-4 (Aumasson & Bernstein): the keyed 64-bit hash behind stable component ids."""

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy


cdef inline uint64_t _rotl(uint64_t x, int b) noexcept nogil:
    return (x << b) | (x >> (64 - b))


cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


cdef uint64_t _siphash24(const uint8_t* key, const uint8_t* data, Py_ssize_t n) noexcept nogil:
    cdef uint64_t k0 = _load64(key)
    cdef uint64_t k1 = _load64(key + 8)
    cdef uint64_t v0 = k0 ^ 0x736F6D6570736575ULL
    cdef uint64_t v1 = k1 ^ 0x646F72616E646F6DULL
    cdef uint64_t v2 = k0 ^ 0x6C7967656E657261ULL
    cdef uint64_t v3 = k1 ^ 0x7465646279746573ULL
    cdef uint64_t m
    cdef Py_ssize_t blocks = n - (n % 8)
    cdef Py_ssize_t i
    cdef int r
    cdef uint8_t tail[8]

    for i in range(0, blocks, 8):
        m = _load64(data + i)
        v3 ^= m
        for r in range(2):
            v0 += v1; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
            v2 += v3; v3 = _rotl(v3, 16); v3 ^= v2
            v0 += v3; v3 = _rotl(v3, 21); v3 ^= v0
            v2 += v1; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
        v0 ^= m

    for r in range(8):
        tail[r] = 0
    if n - blocks:
        memcpy(tail, data + blocks, n - blocks)
    m = _load64(tail) | ((<uint64_t>(n & 0xFF)) << 56)
    v3 ^= m
    for r in range(2):
        v0 += v1; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
        v2 += v3; v3 = _rotl(v3, 16); v3 ^= v2
        v0 += v3; v3 = _rotl(v3, 21); v3 ^= v0
        v2 += v1; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
    v0 ^= m
    v2 ^= 0xFF
    for r in range(4):
        v0 += v1; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
        v2 += v3; v3 = _rotl(v3, 16); v3 ^= v2
        v0 += v3; v3 = _rotl(v3, 21); v3 ^= v0
        v2 += v1; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
    return v0 ^ v1 ^ v2 ^ v3


def siphash24(const uint8_t[::1] key not None, const uint8_t[::1] data not None) -> int:
    """Return SipHash-2-4 of ``data`` under the 16-byte ``key`` as an unsigned 64-bit int."""
    if key.shape[0] != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {key.shape[0]}")
    cdef uint64_t h
    cdef const uint8_t* dp = &data[0] if data.shape[0] else <const uint8_t*>&key[0]
    with nogil:
        h = _siphash24(&key[0], dp, data.shape[0])
    return h
