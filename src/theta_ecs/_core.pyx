# cython: boundscheck=False, wraparound=False, initializedcheck=False, binding=False
"""The per-entity core: archetype tables and the World's one-entity-at-a-time operations in C.

A gameplay script or a network apply touches one entity per call, so what matters there is the
fixed cost of a call. Each archetype keeps, per component, a :class:`Slot`: raw pointers to the
column and its row ticks, the row stride and the element kind. ``get``/``set``/``insert``/
``remove``/``spawn``/``despawn`` find the entity's row in the allocator, the component's slot
by object identity, and convert plain Python numbers straight into the row, so a call costs
one C method call. Anything unusual (numpy values, structured components, a Component object
that is equal to but not the registered one, a first move between two archetypes) takes the
checked Python path in :mod:`theta_ecs.world`, which applies the same rules.

Components hash and compare in C (:class:`ComponentKey`), vector values come back as a
:class:`Vector` (one small allocation, no per-part Python numbers), and :meth:`Archetype.batch`
makes a system's column views without numpy's slicing machinery.

Row indices used here come from ``count`` or from the allocator, checked against the table's
``count`` before use, so the loops run without bounds checks.
"""

import numpy as np
cimport cython
cimport numpy as cnp
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLong, PyLong_AsUnsignedLongLong
from libc.math cimport isfinite
from libc.stdint cimport (int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
                          uint64_t)
from libc.string cimport memcpy

from ._entities cimport EntityAllocator
from ._ids cimport ENTITY_INDEX_BITS, entity_generation_of, entity_index_of

from .errors import ComponentDataError, StaleEntityError, ThetaError, UnknownComponentError

cnp.import_array()

cdef extern from "Python.h":
    bint PyLong_CheckExact(object)
    bint PyFloat_CheckExact(object)
    bint PyBool_Check(object)
    bint PyTuple_CheckExact(object)
    bint PyList_CheckExact(object)
    bint PyDict_CheckExact(object)
    Py_ssize_t PyTuple_GET_SIZE(object)
    Py_ssize_t PyList_GET_SIZE(object)
    PyObject* PyTuple_GET_ITEM(object, Py_ssize_t)
    PyObject* PyList_GET_ITEM(object, Py_ssize_t)
    bint PyFloat_CheckExact_p "PyFloat_CheckExact"(PyObject*)
    double PyFloat_AS_DOUBLE_p "PyFloat_AS_DOUBLE"(PyObject*)

cdef extern from "numpy/arrayobject.h":
    object PyArray_NewFromDescr_raw "PyArray_NewFromDescr"(
        PyTypeObject* subtype, cnp.PyArray_Descr* descr, int nd, cnp.npy_intp* dims,
        cnp.npy_intp* strides, void* data, int flags, PyObject* obj)

cdef extern from "float.h":
    double FLT_MAX

# Element kinds converted in C; everything else goes through values.coerce_one.
cdef enum Kind:
    K_OTHER = 0
    K_F32
    K_F64
    K_I8
    K_I16
    K_I32
    K_I64
    K_U8
    K_U16
    K_U32
    K_U64
    K_BOOL

cdef enum:
    # A vector row is staged here before it is copied into the column, so a bad element
    # leaves the row untouched.
    STAGE_BYTES = 128

cdef dict _KINDS = {
    "float32": K_F32, "float64": K_F64,
    "int8": K_I8, "int16": K_I16, "int32": K_I32, "int64": K_I64,
    "uint8": K_U8, "uint16": K_U16, "uint32": K_U32, "uint64": K_U64,
    "bool": K_BOOL,
}


cdef int _store(int kind, char* dst, object v, object comp) except -1:
    """Write the plain Python number ``v`` as ``kind`` at ``dst``: 1 when written, 0 when ``v``
    is not a plain number (the caller takes the checked path). Never a lossy cast."""
    cdef double d
    cdef long long i
    cdef unsigned long long u
    if PyFloat_CheckExact(v):
        d = PyFloat_AS_DOUBLE(v)
        if kind == K_F64:
            (<double*>dst)[0] = d
            return 1
        if kind == K_F32:
            if isfinite(d) and (d > FLT_MAX or d < -FLT_MAX):
                raise ComponentDataError(f"{comp.name}: {v} overflows float32")
            (<float*>dst)[0] = <float>d
            return 1
        raise ComponentDataError(f"{comp.name}: cannot store a float as {_kind_name(kind)}")
    if PyBool_Check(v):
        i = 1 if v is True else 0
    elif PyLong_CheckExact(v):
        if kind == K_F32 or kind == K_F64:
            # as the checked path: an int numpy cannot hold (beyond int64/uint64) is refused
            try:
                d = <double>PyLong_AsLongLong(v)
            except OverflowError:
                try:
                    d = <double>PyLong_AsUnsignedLongLong(v)
                except OverflowError:
                    raise ComponentDataError(
                        f"{comp.name}: {v} is beyond 64-bit integers, not stored as "
                        f"{_kind_name(kind)}"
                    ) from None
            if kind == K_F32:
                if d > FLT_MAX or d < -FLT_MAX:
                    raise ComponentDataError(f"{comp.name}: {v} overflows float32")
                (<float*>dst)[0] = <float>d
            else:
                (<double*>dst)[0] = d
            return 1
        if kind == K_BOOL:
            raise ComponentDataError(f"{comp.name}: cannot store an int as bool")
        if kind == K_U64:
            try:
                u = PyLong_AsUnsignedLongLong(v)
            except OverflowError:
                raise ComponentDataError(f"{comp.name}: {v} out of range for uint64") from None
            (<uint64_t*>dst)[0] = u
            return 1
        try:
            i = PyLong_AsLongLong(v)
        except OverflowError:
            raise ComponentDataError(
                f"{comp.name}: {v} out of range for {_kind_name(kind)}"
            ) from None
    else:
        return 0
    # an int (or a bool) into an integer, bool or float column
    if kind == K_F32:
        (<float*>dst)[0] = <float>i
    elif kind == K_F64:
        (<double*>dst)[0] = <double>i
    elif kind == K_BOOL:
        (<uint8_t*>dst)[0] = <uint8_t>i
    elif kind == K_I64:
        (<int64_t*>dst)[0] = i
    elif kind == K_I32:
        if i < -2147483648 or i > 2147483647:
            raise ComponentDataError(f"{comp.name}: {v} out of range for int32")
        (<int32_t*>dst)[0] = <int32_t>i
    elif kind == K_I16:
        if i < -32768 or i > 32767:
            raise ComponentDataError(f"{comp.name}: {v} out of range for int16")
        (<int16_t*>dst)[0] = <int16_t>i
    elif kind == K_I8:
        if i < -128 or i > 127:
            raise ComponentDataError(f"{comp.name}: {v} out of range for int8")
        (<int8_t*>dst)[0] = <int8_t>i
    elif kind == K_U64:
        if i < 0:
            raise ComponentDataError(f"{comp.name}: {v} out of range for uint64")
        (<uint64_t*>dst)[0] = <uint64_t>i
    elif kind == K_U32:
        if i < 0 or i > 4294967295:
            raise ComponentDataError(f"{comp.name}: {v} out of range for uint32")
        (<uint32_t*>dst)[0] = <uint32_t>i
    elif kind == K_U16:
        if i < 0 or i > 65535:
            raise ComponentDataError(f"{comp.name}: {v} out of range for uint16")
        (<uint16_t*>dst)[0] = <uint16_t>i
    elif kind == K_U8:
        if i < 0 or i > 255:
            raise ComponentDataError(f"{comp.name}: {v} out of range for uint8")
        (<uint8_t*>dst)[0] = <uint8_t>i
    else:
        return 0
    return 1


cdef str _kind_name(int kind):
    for name, k in _KINDS.items():
        if k == kind:
            return name
    return "this dtype"


cdef inline object _load(int kind, const char* p):
    """The element at ``p`` as a plain Python number."""
    if kind == K_F32:
        return (<const float*>p)[0]
    if kind == K_F64:
        return (<const double*>p)[0]
    if kind == K_I32:
        return (<const int32_t*>p)[0]
    if kind == K_I64:
        return (<const int64_t*>p)[0]
    if kind == K_U8:
        return (<const uint8_t*>p)[0]
    if kind == K_U32:
        return (<const uint32_t*>p)[0]
    if kind == K_U64:
        return (<const uint64_t*>p)[0]
    if kind == K_I8:
        return (<const int8_t*>p)[0]
    if kind == K_I16:
        return (<const int16_t*>p)[0]
    if kind == K_U16:
        return (<const uint16_t*>p)[0]
    if kind == K_BOOL:
        return (<const uint8_t*>p)[0] != 0
    return None


cdef object _rows(cnp.ndarray base, Py_ssize_t n):
    """A view of the first ``n`` rows of ``base`` (same dtype, strides and writability), made
    directly: a quarter of the cost of ``base[:n]``."""
    cdef int nd = cnp.PyArray_NDIM(base)
    cdef cnp.npy_intp dims[32]
    cdef int i
    for i in range(nd):
        dims[i] = cnp.PyArray_DIMS(base)[i]
    dims[0] = n
    cdef cnp.PyArray_Descr* descr = cnp.PyArray_DESCR(base)
    Py_INCREF(<object><PyObject*>descr)  # PyArray_NewFromDescr steals it
    cdef cnp.ndarray view = PyArray_NewFromDescr_raw(
        <PyTypeObject*>cnp.ndarray, descr, nd, dims, cnp.PyArray_STRIDES(base),
        cnp.PyArray_DATA(base), cnp.PyArray_FLAGS(base) & cnp.NPY_ARRAY_WRITEABLE, NULL,
    )
    cnp.set_array_base(view, base)
    return view


cdef class ComponentKey:
    """Identity of a component type for hashing and equality, in C.

    :class:`theta_ecs.component.Component` derives from this, so ``{Position: ...}`` dicts and
    the per-entity paths hash and compare components without a Python-level call. Two
    components are equal when their stable ids are.
    """

    cdef uint64_t _cid
    cdef Py_hash_t _hash

    def _set_identity(self, uint64_t cid):
        self._cid = cid
        self._hash = hash(cid)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        if isinstance(other, ComponentKey):
            return self._cid == (<ComponentKey>other)._cid
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, ComponentKey):
            return self._cid != (<ComponentKey>other)._cid
        return NotImplemented


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    """A 64-bit finaliser (splitmix64), so sums of mixed ids rarely collide."""
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= 0x94D049BB133111EBULL
    x ^= x >> 31
    return x


cdef enum:
    VECTOR_BYTES = 64


# Component objects a Vector may name, held for the life of the process (one entry per
# component definition), so a Vector keeps a bare pointer and is not a GC-tracked object.
cdef dict _PINNED_COMPONENTS = {}


cdef PyObject* _pin(object comp):
    _PINNED_COMPONENTS.setdefault(id(comp), comp)
    return <PyObject*>_PINNED_COMPONENTS[id(comp)]


@cython.final
@cython.freelist(32)
cdef class Vector:
    """A copy of one entity's vector component (``world.get(e, Position)``).

    Behaves as a read-only sequence of Python numbers (index, iterate, unpack, compare with a
    tuple or list), names its parts by the component's field names (``v.x``), and converts to
    a numpy array of the component's own dtype (``np.asarray(v)``). Holding the raw row instead
    of Python numbers makes a ``get`` one small allocation.
    """

    cdef char buf[VECTOR_BYTES]
    cdef Py_ssize_t width
    cdef Py_ssize_t itemsize
    cdef int kind
    cdef PyObject* _comp   # pinned in _PINNED_COMPONENTS

    def __init__(self, *args, **kwargs):
        raise TypeError("Vector values come from World.get")

    cdef object _component(self):
        if self._comp == NULL:
            raise TypeError("this Vector was not made by World.get")
        return <object>self._comp

    def __len__(self):
        return self.width

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.as_tuple()[index]
        cdef Py_ssize_t i = index
        if i < 0:
            i += self.width
        if not 0 <= i < self.width:
            raise IndexError(f"index {index} out of range for {self.width} parts")
        return _load(self.kind, self.buf + i * self.itemsize)

    def __iter__(self):
        return iter(self.as_tuple())

    def __getattr__(self, name):
        fields = self._component().fields
        if name in fields:
            return self[fields.index(name)]
        raise AttributeError(f"{self._component().name} has no field {name!r}")

    cpdef tuple as_tuple(self):
        """The parts as a tuple of Python numbers."""
        cdef Py_ssize_t i
        return tuple([_load(self.kind, self.buf + i * self.itemsize) for i in range(self.width)])

    def tolist(self):
        return list(self.as_tuple())

    @property
    def component(self):
        return self._component()

    def __array__(self, dtype=None, copy=None):
        arr = np.frombuffer(self.buf[: self.width * self.itemsize],
                            dtype=self._component().column_dtype).copy()
        return arr if dtype is None else arr.astype(dtype)

    def __eq__(self, other):
        if isinstance(other, Vector):
            return self.as_tuple() == (<Vector>other).as_tuple()
        if isinstance(other, (tuple, list)):
            return self.as_tuple() == tuple(other)
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.as_tuple())

    def __repr__(self):
        fields = self._component().fields
        parts = ", ".join(f"{f}={v!r}" for f, v in zip(fields, self.as_tuple()))
        return f"Vector({parts})"

    def __reduce__(self):
        return (tuple, (self.as_tuple(),))

    # Arithmetic gives numpy arrays of the component's dtype, as ``get`` used to return:
    # ``p = world.get(e, Position); p += v * dt; world.set(e, Position, p)`` keeps working.
    def __add__(self, other):
        return np.asarray(self) + other

    def __radd__(self, other):
        return other + np.asarray(self)

    def __sub__(self, other):
        return np.asarray(self) - other

    def __rsub__(self, other):
        return other - np.asarray(self)

    def __mul__(self, other):
        return np.asarray(self) * other

    def __rmul__(self, other):
        return other * np.asarray(self)

    def __truediv__(self, other):
        return np.asarray(self) / other

    def __rtruediv__(self, other):
        return other / np.asarray(self)

    def __neg__(self):
        return -np.asarray(self)


@cython.final
cdef class Slot:
    """One component's column in one archetype, as raw pointers for the per-entity paths."""

    cdef readonly object comp
    cdef readonly object cid
    cdef uint64_t ccid
    cdef object col
    cdef object ticks
    cdef char* data
    cdef uint64_t* tick_data
    cdef Py_ssize_t stride
    cdef Py_ssize_t width      # 0: scalar, k: 1-D vector of k, -1: structured or n-D rows
    cdef Py_ssize_t itemsize
    cdef int kind
    cdef readonly uint64_t column_tick   # last tick the whole column was handed out writable
    cdef PyObject* pinned                # comp, pinned for the Vectors this slot makes

    def __cinit__(self, comp):
        self.comp = comp
        self.cid = comp.id
        self.ccid = comp.id
        shape = comp.row_shape
        base = comp.column_dtype
        self.kind = _KINDS.get(base.name, K_OTHER) if not base.names else K_OTHER
        self.itemsize = base.itemsize
        if self.kind == K_OTHER or len(shape) > 1:
            self.width = -1
        elif len(shape) == 1:
            self.width = shape[0]
        else:
            self.width = 0
        self.column_tick = 0
        self.pinned = _pin(comp)

    cdef void bind(self, cnp.ndarray col, cnp.ndarray ticks):
        self.col = col
        self.ticks = ticks
        self.data = <char*>cnp.PyArray_DATA(col)
        self.tick_data = <uint64_t*>cnp.PyArray_DATA(ticks)
        self.stride = cnp.PyArray_STRIDE(col, 0)

    cdef inline object read(self, Py_ssize_t row):
        """A copy of one row: a number, a tuple of numbers, or (other dtypes) a numpy copy."""
        cdef const char* p = self.data + row * self.stride
        cdef Py_ssize_t i
        cdef object item
        if self.width == 0:
            return _load(self.kind, p)
        cdef Vector vec
        if self.width > 0 and self.stride <= VECTOR_BYTES:
            vec = Vector.__new__(Vector)
            memcpy(vec.buf, p, self.stride)
            vec.width = self.width
            vec.itemsize = self.itemsize
            vec.kind = self.kind
            vec._comp = self.pinned
            return vec
        if self.width > 0:
            out = PyTuple_New(self.width)
            for i in range(self.width):
                item = _load(self.kind, p + i * self.itemsize)
                Py_INCREF(item)
                PyTuple_SET_ITEM(out, i, item)
            return out
        value = self.col[row]
        return value.copy()  # np.void and sub-arrays are views into the column

    cdef int write(self, Py_ssize_t row, object value) except -1:
        """Store ``value`` in ``row``: 1 when done in C, 0 when it needs the checked path."""
        cdef char* dst = self.data + row * self.stride
        cdef char stage[STAGE_BYTES]
        cdef Py_ssize_t i, n
        cdef PyObject* item
        if self.width == 0:
            return _store(self.kind, dst, value, self.comp)
        if self.width < 0 or self.stride > STAGE_BYTES:
            return 0
        cdef double d
        if PyTuple_CheckExact(value):
            n = PyTuple_GET_SIZE(value)
            if n != self.width:
                return 0
            for i in range(n):
                item = PyTuple_GET_ITEM(value, i)
                if self.kind == K_F32 and PyFloat_CheckExact_p(item):  # the common case, inline
                    d = PyFloat_AS_DOUBLE_p(item)
                    if isfinite(d) and (d > FLT_MAX or d < -FLT_MAX):
                        raise ComponentDataError(f"{self.comp.name}: {d} overflows float32")
                    (<float*>stage)[i] = <float>d
                elif not _store(self.kind, stage + i * self.itemsize, <object>item, self.comp):
                    return 0
        elif PyList_CheckExact(value):
            n = PyList_GET_SIZE(value)
            if n != self.width:
                return 0
            for i in range(n):
                item = PyList_GET_ITEM(value, i)
                if not _store(self.kind, stage + i * self.itemsize, <object>item, self.comp):
                    return 0
        else:
            return 0
        memcpy(dst, stage, self.stride)
        return 1


@cython.final
cdef class Archetype:
    """One table: the entities that have exactly ``components``.

    Each component is one numpy column (``capacity`` rows, grown geometrically), so a query
    hands a system contiguous arrays. Each column carries two kinds of change stamp (the world's
    change tick, a 64-bit counter that never wraps): a per-row tick written by per-entity
    access, and a whole-column tick written when a system receives the column writable.
    """

    cdef readonly Py_ssize_t id
    cdef readonly tuple components
    cdef readonly frozenset component_ids
    cdef Py_ssize_t _count
    cdef Py_ssize_t _capacity
    cdef readonly object entities
    cdef uint64_t* _ents
    cdef readonly dict columns
    cdef readonly dict row_ticks
    cdef readonly dict add_edges
    cdef readonly dict remove_edges
    cdef list _slots
    cdef dict _slot_by_cid
    cdef dict _read_only   # column id (None: entity ids) -> read-only view of all rows

    def __init__(self, Py_ssize_t archetype_id, components, Py_ssize_t capacity=8):
        self.id = archetype_id
        self.components = tuple(sorted(components, key=lambda c: c.id))
        self.component_ids = frozenset(c.id for c in self.components)
        self._capacity = max(capacity, 8)
        self._count = 0
        self.add_edges = {}
        self.remove_edges = {}
        self._read_only = {}
        self._slots = [Slot(c) for c in self.components]
        self._slot_by_cid = {s.cid: s for s in self._slots}
        self.entities = np.zeros(self._capacity, np.uint64)
        self.columns = {c.id: c.empty(self._capacity) for c in self.components}
        self.row_ticks = {c.id: np.zeros(self._capacity, np.uint64) for c in self.components}
        self._bind()

    cdef void _bind(self):
        """Point the slots at the current arrays (after every reallocation)."""
        cdef Slot s
        self._ents = <uint64_t*>cnp.PyArray_DATA(self.entities)
        for s in self._slots:
            s.bind(self.columns[s.cid], self.row_ticks[s.cid])

    def __repr__(self):
        names = ", ".join(c.name for c in self.components)
        return f"Archetype#{self.id}[{names}] ({self._count} rows)"

    @property
    def capacity(self):
        return self._capacity

    @property
    def count(self):
        """Rows in use; set only after the rows up to it were written (batch appends)."""
        return self._count

    @count.setter
    def count(self, Py_ssize_t n):
        if not 0 <= n <= self._capacity:
            raise ValueError(f"row count {n} outside 0..{self._capacity}")
        self._count = n

    @property
    def column_ticks(self):
        """{component id: tick the column was last handed out writable} (a copy)."""
        return {s.cid: s.column_tick for s in self._slots}

    def mark_written(self, cid, uint64_t tick):
        """Record that the whole column ``cid`` was handed out writable at ``tick``."""
        cdef Slot s = self._slot_by_cid[cid]
        s.column_tick = tick

    def read_view(self, cid):
        """A read-only view of the rows in use of column ``cid`` (None: the entity ids).

        Its buffer is read-only, so it cannot be made writable again; the full-capacity view
        behind it is made once per allocation, and each call only slices it.
        """
        return self._read_view(cid)

    cdef object _read_view(self, object cid):
        full = self._read_only.get(cid)
        if full is None:
            base = self.entities if cid is None else self.columns[cid]
            full = np.asarray(memoryview(base).toreadonly())
            self._read_only[cid] = full
        return _rows(full, self._count)

    def batch(self, tuple ids, frozenset writable, uint64_t tick):
        """(read-only entity ids, one view per column id in ``ids``) over the rows in use.

        Columns in ``writable`` come as writable views and count as changed at ``tick``; the
        others are read-only views.
        """
        cdef Slot s
        cols = []
        for cid in ids:
            if cid in writable:
                s = <Slot>self._slot_by_cid[cid]
                s.column_tick = tick
                cols.append(_rows(s.col, self._count))
            else:
                cols.append(self._read_view(cid))
        return self._read_view(None), tuple(cols)

    def column_tick(self, cid):
        return (<Slot>self._slot_by_cid[cid]).column_tick

    # -- C helpers for the world's per-entity paths -----------------------------------------
    cdef inline Slot slot_for(self, object comp):
        """The slot of exactly this Component object, or None."""
        cdef Py_ssize_t i
        cdef PyObject* s
        for i in range(PyList_GET_SIZE(self._slots)):
            s = PyList_GET_ITEM(self._slots, i)  # _slots holds only Slots
            if (<Slot>s).comp is comp:
                return <Slot>s
        return None

    cdef inline Slot slot_by_id(self, uint64_t cid):
        cdef Slot s
        for s in self._slots:
            if s.ccid == cid:
                return s
        return None

    cdef int grow_one(self) except -1:
        if self._count >= self._capacity:
            self.reserve(1)
        return 0

    cdef uint64_t take_row(self, Py_ssize_t row, bint* moved) noexcept:
        """Swap-remove ``row``; returns the entity moved into it (``moved`` says whether)."""
        cdef Py_ssize_t last = self._count - 1
        cdef Slot s
        self._count = last
        if row == last:
            moved[0] = False
            return 0
        cdef uint64_t m = self._ents[last]
        self._ents[row] = m
        for s in self._slots:
            memcpy(s.data + row * s.stride, s.data + last * s.stride, s.stride)
            s.tick_data[row] = s.tick_data[last]
        moved[0] = True
        return m

    # -- table operations -------------------------------------------------------------------
    def reserve(self, Py_ssize_t extra):
        """Make room for ``extra`` more rows, doubling so appends stay amortised O(1)."""
        cdef Py_ssize_t needed = self._count + extra
        if needed <= self._capacity:
            return
        cap = max(needed, 2 * self._capacity)
        n = self._count
        ents = np.zeros(cap, np.uint64)
        ents[:n] = self.entities[:n]
        self.entities = ents
        for comp in self.components:
            col = comp.empty(cap)
            col[:n] = self.columns[comp.id][:n]
            self.columns[comp.id] = col
            ticks = np.zeros(cap, np.uint64)
            ticks[:n] = self.row_ticks[comp.id][:n]
            self.row_ticks[comp.id] = ticks
        self._capacity = cap
        self._read_only = {}
        self._bind()

    def append(self, entities, values, tick):
        """Append rows for ``entities``; ``values`` holds a block per component id.

        Returns the first new row. Every new row counts as changed at ``tick``.
        """
        k = len(entities)
        self.reserve(k)
        start = self._count
        end = start + k
        self.entities[start:end] = entities
        for cid, col in self.columns.items():
            col[start:end] = values[cid]
            self.row_ticks[cid][start:end] = tick
        self._count = end
        return start

    def append_one(self, entity, values, tick):
        self.reserve(1)
        row = self._count
        self.entities[row] = entity
        for cid, col in self.columns.items():
            col[row] = values[cid]
            self.row_ticks[cid][row] = tick
        self._count = row + 1
        return row

    def copy_rows_into(self, rows, Archetype dest, Py_ssize_t dest_first):
        """Copy the shared columns (values and row ticks) of ``rows`` into ``dest``."""
        k = len(rows)
        for cid in self.component_ids & dest.component_ids:
            dest.columns[cid][dest_first : dest_first + k] = self.columns[cid][rows]
            src_ticks = np.maximum(self.row_ticks[cid][rows], self.column_tick(cid))
            dest.row_ticks[cid][dest_first : dest_first + k] = src_ticks

    def swap_remove(self, Py_ssize_t row):
        """Remove ``row`` by moving the last row into it; returns the moved entity, if any."""
        if not 0 <= row < self._count:
            raise IndexError(f"row {row} outside 0..{self._count - 1}")
        cdef bint moved
        cdef uint64_t m = self.take_row(row, &moved)
        return m if moved else None

    def remove_rows(self, rows):
        """Remove distinct ``rows`` at once, filling holes from the tail.

        Returns (entities that moved, their new rows) so the caller can update locations.
        """
        n = self._count
        m = len(rows)
        keep_n = n - m
        holes = rows[rows < keep_n]
        holes.sort()
        doomed_tail = np.zeros(m, np.bool_)
        doomed_tail[rows[rows >= keep_n] - keep_n] = True
        movers = keep_n + np.flatnonzero(~doomed_tail)
        if len(holes):
            self.entities[holes] = self.entities[movers]
            for cid, col in self.columns.items():
                col[holes] = col[movers]
                ticks = self.row_ticks[cid]
                ticks[holes] = ticks[movers]
        self._count = keep_n
        return self.entities[holes].copy(), holes.astype(np.int64)

    def changed_mask(self, component_id, since):
        """Per row: did ``component_id`` change after tick ``since``? A column handed out
        writable counts as changed in every row."""
        if self.column_tick(component_id) > since:
            return np.ones(self._count, np.bool_)
        return self.row_ticks[component_id][: self._count] > since


cdef class WorldCore:
    """The World's per-entity operations; :class:`theta_ecs.world.World` adds the rest.

    The Python subclass provides the checked slow paths (``_entity_id``, ``_known``,
    ``_slot_missing``, ``_with``, ``_without``, ``_spawn_checked``); this class only takes the
    common case in C and hands everything else to them.
    """

    cdef public EntityAllocator _entities
    cdef public list _archetypes
    cdef dict _spawn_routes
    cdef dict _value_slots   # component id -> a one-row scratch Slot for checking values
    #: Change counter: advances before every system run and every deferred apply, so a
    #: change made anywhere in a frame is newer than the last run of every other system.
    cdef public uint64_t change_tick

    def __cinit__(self, *args, **kwargs):
        self._archetypes = []
        self._spawn_routes = {}
        self._value_slots = {}
        self.change_tick = 1

    def advance_change_tick(self):
        self.change_tick += 1
        return self.change_tick

    @cython.final
    cdef inline uint64_t _id(self, object entity) except? 0:
        cdef uint64_t e
        if PyLong_CheckExact(entity):
            try:
                e = entity  # Cython's conversion reads the digits inline (2-3 digit ids too)
            except OverflowError:  # negative or above 2^64 - 1
                raise StaleEntityError(f"{entity!r} is not an entity id") from None
            return e
        return self._entity_id(entity)

    @cython.final
    cdef inline Archetype _locate(self, object entity, int64_t* row):
        """The archetype of a live entity (its row into ``row``), else StaleEntityError."""
        cdef uint64_t e = self._id(entity)
        cdef EntityAllocator alloc = self._entities
        cdef uint64_t idx = entity_index_of(e)
        cdef int32_t a = -1
        if idx < <uint64_t>alloc._high and alloc._gen[idx] == entity_generation_of(e):
            a = alloc._arch[idx]
            row[0] = alloc._row[idx]
        if a < 0:
            raise StaleEntityError(
                f"entity {e:#x} (index {entity_index_of(e)}, generation "
                f"{entity_generation_of(e)}) is not alive"
            )
        # the allocator is reachable from Python (world._entities): never trust it blindly
        if a >= PyList_GET_SIZE(self._archetypes) or not (
            0 <= row[0] < (<Archetype>PyList_GET_ITEM(self._archetypes, a))._count
        ):
            raise StaleEntityError(f"entity {e:#x} has no valid location (archetype {a})")
        return <Archetype>PyList_GET_ITEM(self._archetypes, a)

    @cython.final
    cdef inline Slot _slot(self, Archetype arch, object entity, object comp):
        """The slot of ``comp`` in ``arch``: by identity, else through the registry; raises
        UnknownComponentError when ``comp`` is no Component or the entity lacks it."""
        cdef Slot s = arch.slot_for(comp)
        if s is not None:
            return s
        known = self._known(comp)
        s = arch.slot_by_id(known.id)
        if s is None:
            raise UnknownComponentError(f"entity {self._id(entity):#x} has no {known.name}")
        return s

    def has(self, entity, comp):
        """Whether the entity has ``comp``."""
        cdef int64_t row
        cdef Archetype arch = self._locate(entity, &row)
        if arch.slot_for(comp) is not None:
            return True
        return self._known(comp).id in arch.component_ids

    def get(self, entity, comp):
        """A copy of the entity's value of ``comp``: a number for scalar components, a tuple
        of numbers for vector components, a numpy copy (``np.void`` row) for structured ones."""
        cdef int64_t row
        cdef Archetype arch = self._locate(entity, &row)
        return self._slot(arch, entity, comp).read(row)

    def set(self, entity, comp, value):
        """Overwrite the entity's value of ``comp`` and mark that row changed."""
        cdef int64_t row
        cdef Archetype arch = self._locate(entity, &row)
        cdef Slot s = self._slot(arch, entity, comp)
        if not s.write(row, value):
            s.col[row] = self._coerce(s.comp, value)
        s.tick_data[row] = self.change_tick

    def insert(self, entity, comp, value):
        """Add ``comp`` to the entity (moving it to another archetype), or set it if present."""
        cdef int64_t row
        cdef Archetype arch = self._locate(entity, &row)
        cdef Slot s = arch.slot_for(comp)
        if s is None:
            if isinstance(comp, ComponentKey):
                # a cached edge whose table holds this very object: comp is the registered one
                dest = arch.add_edges.get((<ComponentKey>comp)._cid)
                if dest is not None and (<Archetype>dest).slot_for(comp) is not None:
                    self._move(self._id(entity), arch, row, <Archetype>dest,
                               (<ComponentKey>comp)._cid, value)
                    return
            known = self._known(comp)
            s = arch.slot_by_id(known.id)
            if s is None:
                dest = arch.add_edges.get(known.id)
                if dest is None:
                    dest = self._with(arch, known)
                self._move(self._id(entity), arch, row, <Archetype>dest, known.id, value)
                return
        if not s.write(row, value):
            s.col[row] = self._coerce(s.comp, value)
        s.tick_data[row] = self.change_tick

    def remove(self, entity, comp):
        """Take ``comp`` off the entity."""
        cdef int64_t row
        cdef Archetype arch = self._locate(entity, &row)
        cdef Slot s = self._slot(arch, entity, comp)
        dest = arch.remove_edges.get(s.cid)
        if dest is None:
            dest = self._without(arch, s.comp)
        self._move(self._id(entity), arch, row, <Archetype>dest, None, None)

    cdef int _move(self, uint64_t entity, Archetype src, int64_t row, Archetype dest,
                   object added, object value) except -1:
        """Move one entity from ``src`` to ``dest``, writing ``value`` for the component
        ``added`` (None on removal). The value is written first, so a bad one changes nothing."""
        dest.grow_one()
        cdef Py_ssize_t new_row = dest._count
        cdef Slot d, s
        cdef uint64_t t
        if added is not None:
            d = <Slot>dest._slot_by_cid[added]
            if not d.write(new_row, value):
                d.col[new_row] = self._coerce(d.comp, value)
            d.tick_data[new_row] = self.change_tick
        for d in dest._slots:
            s = src.slot_by_id(d.ccid)
            if s is None:
                continue  # the added component, written above
            memcpy(d.data + new_row * d.stride, s.data + row * s.stride, d.stride)
            t = s.tick_data[row]
            d.tick_data[new_row] = t if t > s.column_tick else s.column_tick
        dest._ents[new_row] = entity
        dest._count = new_row + 1
        cdef bint moved
        cdef uint64_t m = src.take_row(row, &moved)
        if moved:
            self._entities.put(m, <int32_t>src.id, row)
        self._entities.put(entity, <int32_t>dest.id, new_row)
        return 0

    def spawn(self, components=None):
        """Create one entity with ``components`` ({Component: value}); returns its id."""
        if components is None:
            components = {}
        cdef uint64_t e
        cdef int done = self._spawn_fast(components, &e, False)
        if done:
            return e
        return self._spawn_checked(components)

    def spawn_reserved(self, entity, components):
        """Place a reserved id; if the values are bad the id is released and the error raised."""
        cdef uint64_t e = self._id(entity)
        if not self._entities.is_reserved(e):
            raise StaleEntityError(f"entity {e:#x} was not reserved (or is already placed)")
        try:
            if not self._spawn_fast(components, &e, True):
                self._spawn_reserved_checked(e, components)
        except ThetaError:
            if self._entities.is_reserved(e):
                self._entities.release(e)
            raise

    cdef int _spawn_fast(self, object components, uint64_t* entity, bint reserved) except -1:
        """Place a new entity (``reserved``: the id in ``entity``; else a fresh id, stored
        there) when every component is a registered object with a known route: 1 when done,
        0 (having changed nothing) when the checked path must decide."""
        if not PyDict_CheckExact(components):
            return 0
        cdef Archetype arch
        cdef Slot s
        cdef Py_ssize_t row
        cdef uint64_t key = 0
        for c in components:
            if not isinstance(c, ComponentKey):
                return 0  # not a Component: a typed error on the checked path
            key += _mix((<ComponentKey>c)._cid)
        route = self._spawn_routes.get(key)
        if route is None:
            return 0
        arch = <Archetype>route
        if len(arch._slots) != len(components):  # a key collision: the checked path decides
            return 0
        arch.grow_one()
        row = arch._count
        for comp, value in components.items():
            s = arch.slot_for(comp)
            if s is None:  # equal to, but not, the registered object: check it properly
                return 0
            if not s.write(row, value):
                s.col[row] = self._coerce(s.comp, value)
        if not reserved:
            self._entities.take_one(entity)
        arch._ents[row] = entity[0]
        for s in arch._slots:
            s.tick_data[row] = self.change_tick
        arch._count = row + 1
        self._entities.put(entity[0], <int32_t>arch.id, row)
        return 1

    def _checked_value(self, comp, value):
        """(registered component, value safe to store later) for a deferred command: checked
        now by the same rules as a write, and never the caller's mutable object."""
        cdef Slot s = None
        if isinstance(comp, ComponentKey):
            s = self._value_slots.get((<ComponentKey>comp)._cid)
        if s is None or s.comp is not comp:
            known = self._known(comp)
            if known is not comp:
                return known, self._coerce(known, value)
            s = Slot(known)
            s.bind(known.empty(1), np.zeros(1, np.uint64))
            self._value_slots[(<ComponentKey>known)._cid] = s
        if s.write(0, value):  # a plain number, or an exact tuple or list of them
            return comp, (tuple(value) if PyList_CheckExact(value) else value)
        return comp, self._coerce(comp, value)

    def _remember_spawn_route(self, Archetype arch):
        """Let later spawns of exactly ``arch``'s components go straight to it."""
        cdef uint64_t key = 0
        cdef Slot s
        for s in arch._slots:
            key += _mix(s.ccid)
        self._spawn_routes[key] = arch

    def despawn(self, entity):
        cdef int64_t row
        cdef Archetype arch = self._locate(entity, &row)
        cdef uint64_t e = self._id(entity)
        cdef bint moved
        cdef uint64_t m = arch.take_row(row, &moved)
        if moved:
            self._entities.put(m, <int32_t>arch.id, row)
        self._entities.release(e)
