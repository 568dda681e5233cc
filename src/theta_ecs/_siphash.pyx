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


cdef inline void _sipround(uint64_t* v, int rounds) noexcept nogil:
    """``rounds`` SipRounds over the state v[0..3]."""
    cdef int r
    for r in range(rounds):
        v[0] += v[1]; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
        v[2] += v[3]; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
        v[0] += v[3]; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
        v[2] += v[1]; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)


cdef uint64_t _siphash24(const uint8_t* key, const uint8_t* data, Py_ssize_t n) noexcept nogil:
    cdef uint64_t k0 = _load64(key)
    cdef uint64_t k1 = _load64(key + 8)
    cdef uint64_t v[4]
    v[0] = k0 ^ 0x736F6D6570736575ULL
    v[1] = k1 ^ 0x646F72616E646F6DULL
    v[2] = k0 ^ 0x6C7967656E657261ULL
    v[3] = k1 ^ 0x7465646279746573ULL
    cdef uint64_t m
    cdef Py_ssize_t blocks = n - (n % 8)
    cdef Py_ssize_t i
    cdef int i8
    cdef uint8_t tail[8]

    for i in range(0, blocks, 8):
        m = _load64(data + i)
        v[3] ^= m
        _sipround(v, 2)
        v[0] ^= m

    for i8 in range(8):
        tail[i8] = 0
    if n - blocks:
        memcpy(tail, data + blocks, n - blocks)
    m = _load64(tail) | ((<uint64_t>(n & 0xFF)) << 56)
    v[3] ^= m
    _sipround(v, 2)
    v[0] ^= m
    v[2] ^= 0xFF
    _sipround(v, 4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def siphash24(const uint8_t[::1] key not None, const uint8_t[::1] data not None) -> int:
    """Return SipHash-2-4 of ``data`` under the 16-byte ``key`` as an unsigned 64-bit int."""
    if key.shape[0] != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {key.shape[0]}")
    cdef uint64_t h
    cdef const uint8_t* dp = &data[0] if data.shape[0] else <const uint8_t*>&key[0]
    with nogil:
        h = _siphash24(&key[0], dp, data.shape[0])
    return h
