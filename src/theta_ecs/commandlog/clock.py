"""Lamport clock: the first half of the total order every peer computes alike."""

from __future__ import annotations

from .errors import CommandLogError

#: Clocks at or above this are refused (deterministically, by every peer), so an author cannot
#: push the shared clock to the end of its 64-bit range in one entry.
MAX_CLOCK = 1 << 53


class ClockExhaustedError(CommandLogError):
    """No clock value is left for a new local entry."""


class LamportClock:
    """``tick`` before issuing; ``observe`` remote clocks so later local entries order after."""

    __slots__ = ("_value",)

    def __init__(self, value: int = 0) -> None:
        if not 0 <= value < MAX_CLOCK:
            raise ValueError(f"clock value {value} out of range")
        self._value = value

    @property
    def value(self) -> int:
        return self._value

    def tick(self) -> int:
        """The clock for a new local entry (strictly greater than anything seen)."""
        if self._value + 1 >= MAX_CLOCK:
            raise ClockExhaustedError("the Lamport clock reached its limit (2^53)")
        self._value += 1
        return self._value

    def observe(self, remote: int) -> None:
        """Integrate a remote entry's clock."""
        if remote > self._value:
            self._value = remote

    def __repr__(self) -> str:
        return f"LamportClock({self._value})"
