"""Lamport clock: the first half of the total order every peer computes alike."""

from __future__ import annotations

from .errors import CommandLogError

#: Clocks at or above this are refused (deterministically, by every peer), so an author cannot
#: push the shared clock to the end of its 64-bit range in one entry.
MAX_CLOCK = 1 << 53
#: How far one remote entry may move this peer's clock forward. An entry stamped near MAX_CLOCK
#: (any member's, even a viewer's or a revoked one's: clocks are observed before the role fold)
#: would otherwise exhaust every peer's clock at once, so that nobody, admins included, could
#: issue a command again. Honest clocks never run this far ahead of a peer that integrates them.
MAX_CLOCK_STEP = 1 << 24


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

    def observe(self, remote: int, *, max_step: int | None = None) -> None:
        """Integrate a remote entry's clock, moving at most ``max_step`` forward if given (the
        log passes :data:`MAX_CLOCK_STEP` for entries; a signed checkpoint moves it all the way)."""
        if max_step is not None:
            remote = min(remote, self._value + max_step)
        if remote > self._value:
            self._value = remote

    def __repr__(self) -> str:
        return f"LamportClock({self._value})"
