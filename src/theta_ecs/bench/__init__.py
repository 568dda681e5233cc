"""Benchmarks run by ``theta bench`` and ``make bench`` (never by the test suite)."""
