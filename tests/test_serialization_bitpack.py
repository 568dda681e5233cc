"""Bit writer/reader: exact round trips, and clean DecodeErrors on short or hostile input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.errors import ThetaError
from theta_ecs.serialization.bitpack import BitReader, BitWriter, best_eg_order, eg_cost
from theta_ecs.serialization.errors import DecodeError, EncodeError

u32 = st.integers(0, 2**32 - 1)


@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 2**64 - 1)), max_size=50))
def test_fixed_width_fields_round_trip(fields: list[tuple[int, int]]) -> None:
    w = BitWriter(1)
    expected = []
    for nbits, value in fields:
        v = value & ((1 << nbits) - 1)
        w.write(v, nbits)
        expected.append((nbits, v))
    assert w.bit_length == sum(n for n, _ in fields)
    data = w.getvalue()
    assert len(data) == (w.bit_length + 7) // 8
    r = BitReader(data)
    assert [r.read(n) for n, _ in expected] == [v for _, v in expected]
    assert r.remaining < 8


@given(st.lists(u32, max_size=200), st.integers(0, 31), st.integers(1, 32))
def test_arrays_round_trip(values: list[int], k: int, nbits: int) -> None:
    arr = np.array(values, np.uint32)
    narrow = arr & np.uint32((1 << nbits) - 1) if nbits < 32 else arr
    w = BitWriter()
    w.write_eg_array(arr, k)
    assert w.bit_length == eg_cost(arr, k)
    w.write_array(np.ascontiguousarray(narrow), nbits)
    r = BitReader(w.getvalue())
    assert np.array_equal(r.read_eg_array(len(arr), k), arr)
    assert np.array_equal(r.read_array(len(arr), nbits), narrow)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=300))
def test_best_order_is_optimal(values: list[int]) -> None:
    arr = np.array(values, np.uint32)
    k, bits = best_eg_order(arr)
    assert bits == eg_cost(arr, k)
    assert bits <= min(eg_cost(arr, j) + len(arr) for j in range(25))  # histogram estimate ±1 bit


def test_small_values_are_cheap() -> None:
    zeros = np.zeros(1000, np.uint32)
    assert best_eg_order(zeros) == (0, 1000)


def test_writer_refuses_values_that_do_not_fit() -> None:
    w = BitWriter()
    with pytest.raises(EncodeError):
        w.write(8, 3)
    with pytest.raises(EncodeError):
        w.write_array(np.array([4], np.uint32), 2)
    with pytest.raises(EncodeError):
        w.write_eg(2**32, 0)
    with pytest.raises(EncodeError):
        w.write_eg(1, 32)


def test_reader_overrun_raises() -> None:
    w = BitWriter()
    w.write(5, 3)
    r = BitReader(w.getvalue())
    r.read(8)
    with pytest.raises(DecodeError):
        r.read(1)
    with pytest.raises(DecodeError):
        BitReader(b"\x00\x00").read_eg(0)  # all zeros: no terminating 1-bit
    with pytest.raises(DecodeError):
        BitReader(b"\x01").read_array(9, 1)
    with pytest.raises(DecodeError):
        BitReader(b"\xff" * 4).read_eg_array(10**9, 3)


def test_overlong_exp_golomb_prefix_is_rejected() -> None:
    data = b"\x00" * 5 + b"\x01" + b"\xff" * 10  # 40 leading zeros
    with pytest.raises(DecodeError, match="prefix"):
        BitReader(data).read_eg(0)


@settings(max_examples=300)
@given(st.binary(max_size=64), st.integers(0, 31), st.integers(0, 100))
def test_hostile_bytes_never_crash(data: bytes, k: int, n: int) -> None:
    r = BitReader(data)
    try:
        out = r.read_eg_array(n, k)
        assert len(out) == n
        assert r.position <= len(data) * 8
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)
