from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t


cdef class EntityAllocator:
    cdef public object generation   # uint32[cap]
    cdef public object archetype    # int32[cap]
    cdef public object row          # int64[cap]
    cdef uint32_t[::1] _gen
    cdef int32_t[::1] _arch
    cdef int64_t[::1] _row
    cdef object _free               # int64 stack of free indices
    cdef Py_ssize_t _nfree
    cdef Py_ssize_t _high           # indices [0, _high) were handed out at least once
    cdef Py_ssize_t _allocated      # reserved + live
    cdef Py_ssize_t _reserved
    cdef Py_ssize_t _retired

    cdef _set_arrays(self, gen, arch, row)
    cdef _grow(self, Py_ssize_t needed)
    cdef bint _matches(self, uint64_t entity) noexcept nogil
    cpdef bint is_alive(self, uint64_t entity)
    cpdef bint is_reserved(self, uint64_t entity)
    cpdef tuple locate(self, uint64_t entity)
    cpdef void place(self, uint64_t entity, int32_t archetype, int64_t row) except *
    cdef int32_t find(self, uint64_t entity, int64_t* row) noexcept
    cdef void put(self, uint64_t entity, int32_t archetype, int64_t row) noexcept
    cdef int take_one(self, uint64_t* out) except -1
    cdef int _check_placeable(self, const uint64_t[::1] entities) except -1
    cdef void _place_rows(self, const uint64_t[::1] entities, int32_t archetype,
                          const int64_t* rows, int64_t first_row)
    cdef void _free_index(self, uint64_t idx)
