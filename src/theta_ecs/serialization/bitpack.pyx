# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Bit writer and reader: the packed body of every snapshot and delta.

Bits go least-significant first into a 64-bit scratch word that spills 32 bits at a time, so a
field never needs byte alignment. Besides fixed-width fields there is exp-Golomb of order ``k``
(a Rice-like universal code), whose ``k`` the encoder picks per column from a bit-length
histogram: small deltas cost a few bits, large ones stay bounded. Every read is bounds-checked;
running off the end or meeting an impossible code raises :class:`DecodeError`, never reads
garbage.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, realloc, free

from .._ids cimport bitlen as _bitlen

import numpy as np

from .errors import DecodeError, EncodeError

#: Largest exp-Golomb order; values are at most 32 bits, so a code's payload is at most 33 bits.
MAX_EG_K = 31
cdef enum:
    EG_MAX_PAYLOAD = 33


cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil


cdef inline uint64_t _mask(int n) noexcept nogil:
    if n >= 64:
        return 0xFFFFFFFFFFFFFFFFULL
    return (1ULL << n) - 1


cdef class BitWriter:
    """Accumulates bits; :meth:`getvalue` returns the bytes (last byte zero-padded)."""

    cdef uint8_t* buf
    cdef Py_ssize_t cap
    cdef Py_ssize_t pos
    cdef uint64_t scratch
    cdef int nbits

    def __cinit__(self, Py_ssize_t capacity=256):
        self.cap = capacity if capacity > 16 else 16
        self.buf = <uint8_t*>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.pos = 0
        self.scratch = 0
        self.nbits = 0

    def __dealloc__(self):
        free(self.buf)

    cdef int _reserve(self, Py_ssize_t extra_bits) except -1:
        cdef Py_ssize_t need = self.pos + (extra_bits >> 3) + 16
        cdef Py_ssize_t cap
        cdef uint8_t* grown
        if need <= self.cap:
            return 0
        cap = self.cap * 2
        if cap < need:
            cap = need
        grown = <uint8_t*>realloc(self.buf, cap)
        if grown == NULL:
            raise MemoryError()
        self.buf = grown
        self.cap = cap
        return 0

    cdef inline void _put(self, uint64_t value, int n) noexcept nogil:
        # n <= 32; capacity reserved by the caller.
        self.scratch |= (value & _mask(n)) << self.nbits
        self.nbits += n
        if self.nbits >= 32:
            self.buf[self.pos] = <uint8_t>(self.scratch & 0xFF)
            self.buf[self.pos + 1] = <uint8_t>((self.scratch >> 8) & 0xFF)
            self.buf[self.pos + 2] = <uint8_t>((self.scratch >> 16) & 0xFF)
            self.buf[self.pos + 3] = <uint8_t>((self.scratch >> 24) & 0xFF)
            self.pos += 4
            self.scratch >>= 32
            self.nbits -= 32

    cdef inline void _put_wide(self, uint64_t value, int n) noexcept nogil:
        # Any n <= 64.
        while n > 32:
            self._put(value & 0xFFFFFFFFULL, 32)
            value >>= 32
            n -= 32
        self._put(value, n)

    cdef inline int _eg_length(self, uint64_t v, int k) noexcept nogil:
        return 2 * _bitlen(v + (1ULL << k)) - 1 - k

    cdef inline void _put_eg(self, uint64_t v, int k) noexcept nogil:
        # Exp-Golomb order k: (zeros) 0-bits, a 1-bit, then the low zeros+k bits of v + 2^k.
        cdef uint64_t w = v + (1ULL << k)
        cdef int n = _bitlen(w)
        cdef int zeros = n - 1 - k
        self._put_wide(0, zeros)
        self._put(1, 1)
        self._put_wide(w, n - 1)

    @property
    def bit_length(self) -> int:
        return self.pos * 8 + self.nbits

    def write(self, value: int, int nbits) -> None:
        """Write the low ``nbits`` (0..64) of a non-negative ``value``."""
        if nbits < 0 or nbits > 64:
            raise EncodeError(f"bit width {nbits} outside 0..64")
        if value < 0 or (nbits < 64 and value >> nbits):
            raise EncodeError(f"value {value} does not fit in {nbits} bits")
        self._reserve(nbits)
        self._put_wide(<uint64_t>value, nbits)

    def write_eg(self, value: int, int k) -> None:
        """Write ``value`` (0..2^32-1) as exp-Golomb of order ``k`` (0..31)."""
        if k < 0 or k > MAX_EG_K:
            raise EncodeError(f"exp-Golomb order {k} outside 0..{MAX_EG_K}")
        if value < 0 or value > 0xFFFFFFFF:
            raise EncodeError(f"exp-Golomb value {value} outside 0..2^32-1")
        self._reserve(2 * 64)
        self._put_eg(<uint64_t>value, k)

    def write_array(self, const uint32_t[::1] values, int nbits) -> None:
        """Write every value in ``nbits`` (1..32) bits; values must fit."""
        cdef Py_ssize_t i, n = values.shape[0]
        cdef uint64_t limit
        if nbits < 1 or nbits > 32:
            raise EncodeError(f"bit width {nbits} outside 1..32")
        limit = _mask(nbits)
        for i in range(n):
            if values[i] > limit:
                raise EncodeError(f"value {values[i]} does not fit in {nbits} bits")
        self._reserve(n * nbits)
        with nogil:
            for i in range(n):
                self._put(values[i], nbits)

    def write_eg_array(self, const uint32_t[::1] values, int k) -> None:
        """Write every value as exp-Golomb of order ``k``."""
        cdef Py_ssize_t i, n = values.shape[0]
        if k < 0 or k > MAX_EG_K:
            raise EncodeError(f"exp-Golomb order {k} outside 0..{MAX_EG_K}")
        self._reserve(n * 2 * 64)
        with nogil:
            for i in range(n):
                self._put_eg(values[i], k)

    def getvalue(self) -> bytes:
        """The bytes written so far (the partial last byte padded with zeros)."""
        cdef Py_ssize_t tail = (self.nbits + 7) >> 3
        cdef Py_ssize_t i
        cdef bytearray out = bytearray(self.pos + tail)
        cdef uint64_t s = self.scratch
        for i in range(self.pos):
            out[i] = self.buf[i]
        for i in range(tail):
            out[self.pos + i] = <uint8_t>(s & 0xFF)
            s >>= 8
        return bytes(out)


cdef class BitReader:
    """Reads what a :class:`BitWriter` wrote; any overrun or bad code raises DecodeError."""

    cdef const uint8_t[::1] data
    cdef Py_ssize_t nbytes
    cdef Py_ssize_t total
    cdef Py_ssize_t bitpos

    def __cinit__(self, const uint8_t[::1] data):
        self.data = data
        self.nbytes = data.shape[0]
        self.total = self.nbytes * 8
        self.bitpos = 0

    @property
    def remaining(self) -> int:
        """Bits not yet read."""
        return self.total - self.bitpos

    @property
    def position(self) -> int:
        return self.bitpos

    cdef inline uint64_t _peek(self) noexcept nogil:
        # Up to 57 valid bits starting at bitpos (zeros past the end).
        cdef Py_ssize_t byte = self.bitpos >> 3
        cdef int shift = <int>(self.bitpos & 7)
        cdef uint64_t v = 0
        cdef int i
        if byte + 8 <= self.nbytes:
            for i in range(8):
                v |= (<uint64_t>self.data[byte + i]) << (8 * i)
        else:
            for i in range(self.nbytes - byte):
                v |= (<uint64_t>self.data[byte + i]) << (8 * i)
        return v >> shift

    cdef inline int _get(self, int n, uint64_t* out) noexcept nogil:
        # n <= 32. Returns -1 when fewer than n bits remain.
        if n == 0:
            out[0] = 0
            return 0
        if self.bitpos + n > self.total:
            return -1
        out[0] = self._peek() & _mask(n)
        self.bitpos += n
        return 0

    cdef inline int _get_wide(self, int n, uint64_t* out) noexcept nogil:
        cdef uint64_t part = 0
        cdef uint64_t acc = 0
        cdef int shift = 0
        while n > 32:
            if self._get(32, &part) < 0:
                return -1
            acc |= part << shift
            shift += 32
            n -= 32
        if self._get(n, &part) < 0:
            return -1
        out[0] = acc | (part << shift)
        return 0

    cdef inline int _get_eg(self, int k, uint64_t* out) noexcept nogil:
        # Returns -1 on overrun, -2 on an over-long prefix, -3 on a value above 2^32-1.
        cdef int zeros = 0
        cdef uint64_t window
        cdef uint64_t low = 0
        cdef uint64_t w
        cdef int avail
        while True:
            avail = <int>(self.total - self.bitpos)
            if avail <= 0:
                return -1
            if avail > 32:
                avail = 32
            window = self._peek() & _mask(avail)
            if window != 0:
                zeros += __builtin_ctzll(window)
                self.bitpos += __builtin_ctzll(window) + 1
                break
            zeros += avail
            self.bitpos += avail
            if zeros + k > EG_MAX_PAYLOAD:
                return -2
        if zeros + k > EG_MAX_PAYLOAD:
            return -2
        if self._get_wide(zeros + k, &low) < 0:
            return -1
        w = (1ULL << (zeros + k)) | low
        w -= (1ULL << k)
        if w > 0xFFFFFFFFULL:
            return -3
        out[0] = w
        return 0

    def read(self, int nbits) -> int:
        """Read an unsigned ``nbits``-bit field (0..64)."""
        cdef uint64_t v = 0
        if nbits < 0 or nbits > 64:
            raise DecodeError(f"bit width {nbits} outside 0..64")
        if self._get_wide(nbits, &v) < 0:
            raise DecodeError("packet truncated: ran out of bits")
        return v

    def read_eg(self, int k) -> int:
        """Read one exp-Golomb value of order ``k``."""
        cdef uint64_t v = 0
        cdef int rc
        if k < 0 or k > MAX_EG_K:
            raise DecodeError(f"exp-Golomb order {k} outside 0..{MAX_EG_K}")
        rc = self._get_eg(k, &v)
        if rc < 0:
            _raise_eg(rc)
        return v

    def read_array(self, Py_ssize_t n, int nbits):
        """Read ``n`` fixed-width values into a new uint32 array."""
        cdef Py_ssize_t i
        cdef uint64_t v = 0
        cdef int failed = 0
        if nbits < 1 or nbits > 32:
            raise DecodeError(f"bit width {nbits} outside 1..32")
        if n < 0 or n * nbits > self.total - self.bitpos:
            raise DecodeError(f"packet truncated: {n} values of {nbits} bits do not fit")
        out = np.empty(n, np.uint32)
        cdef uint32_t[::1] view = out
        with nogil:
            for i in range(n):
                if self._get(nbits, &v) < 0:
                    failed = 1
                    break
                view[i] = <uint32_t>v
        if failed:
            raise DecodeError("packet truncated: ran out of bits")
        return out

    def read_eg_array(self, Py_ssize_t n, int k):
        """Read ``n`` exp-Golomb values of order ``k`` into a new uint32 array."""
        cdef Py_ssize_t i
        cdef uint64_t v = 0
        cdef int rc = 0
        if k < 0 or k > MAX_EG_K:
            raise DecodeError(f"exp-Golomb order {k} outside 0..{MAX_EG_K}")
        # Each code takes at least k+1 bits: refuse counts the packet cannot hold before allocating.
        if n < 0 or n * (k + 1) > self.total - self.bitpos:
            raise DecodeError(f"packet truncated: {n} codes do not fit")
        out = np.empty(n, np.uint32)
        cdef uint32_t[::1] view = out
        with nogil:
            for i in range(n):
                rc = self._get_eg(k, &v)
                if rc < 0:
                    break
                view[i] = <uint32_t>v
        if rc < 0:
            _raise_eg(rc)
        return out


def _raise_eg(int rc):
    if rc == -1:
        raise DecodeError("packet truncated: ran out of bits in an exp-Golomb code")
    if rc == -2:
        raise DecodeError("exp-Golomb prefix too long")
    raise DecodeError("exp-Golomb value out of range")


def eg_cost(const uint32_t[::1] values, int k) -> int:
    """Exact bits that ``values`` take as exp-Golomb of order ``k``."""
    cdef Py_ssize_t i
    cdef int64_t total = 0
    for i in range(values.shape[0]):
        total += 2 * _bitlen(<uint64_t>values[i] + (1ULL << k)) - 1 - k
    return total


def best_eg_order(const uint32_t[::1] values, int max_k=24):
    """The exp-Golomb order that codes ``values`` in the fewest bits, and that bit count.

    A histogram of bit lengths gives, for each order, the exact cost of every value whose bit
    length is at most ``k`` and a one-bit-tight estimate of the rest; the winner is then costed
    exactly. One pass over the data, however many orders are tried.
    """
    cdef int64_t hist[34]
    cdef Py_ssize_t i
    cdef int b, k, best_k = 0
    cdef int64_t cost, best = -1
    if max_k > MAX_EG_K:
        max_k = MAX_EG_K
    for b in range(34):
        hist[b] = 0
    with nogil:
        for i in range(values.shape[0]):
            hist[_bitlen(values[i])] += 1
    for k in range(max_k + 1):
        cost = 0
        for b in range(34):
            if hist[b] == 0:
                continue
            if b <= k:
                cost += hist[b] * (k + 1)
            else:
                cost += hist[b] * (2 * b - 1 - k)
        if best < 0 or cost < best:
            best = cost
            best_k = k
    return best_k, eg_cost(values, best_k)
