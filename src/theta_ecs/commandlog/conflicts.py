"""Conflict strategies per scope, resolved as a deterministic fold over the total order.

Two commands conflict when they touch the same (entity, component) and the later one was not
based on the earlier: its ``base`` (the entry its author saw as current for that scope) is not
the entry that precedes it in the total order. Walking a scope's entries in order:

- last-writer-wins: the conflicting entry is accepted and replaces the value whole;
- merge: it is accepted and its value is merged field-wise (see :mod:`.editor`);
- reject: it is refused, so is every entry based on it, and its author is told.

An entry whose author lacked the role for its command type at its place in the order is denied:
it changes nothing, like a rejected entry (see :class:`.roles.RoleTimeline`).

After a checkpoint a scope starts from the entries the checkpoint retained (its ``base``, already
folded and vouched for by the checkpoint's signature); later entries fold on top of it in order.

Because the outcome is a function of the set of entries and their order, every peer that holds
the same entries computes the same outcome, whatever order they arrived in.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from .entry import NO_BASE, Entry, EntryId, Scope


class Strategy(Enum):
    LWW = "lww"
    MERGE = "merge"
    REJECT = "reject"


class ConflictPolicy:
    """Which strategy applies to a scope: per (entity, component), per component, or default.

    Like the roster, it is shared configuration: every peer must hold the same policy.
    """

    def __init__(
        self,
        default: Strategy = Strategy.LWW,
        components: Mapping[int, Strategy] | None = None,
    ) -> None:
        self.default = default
        self._components: dict[int, Strategy] = dict(components or {})
        self._scopes: dict[tuple[int, int], Strategy] = {}

    def set_component(self, component_id: int, strategy: Strategy) -> None:
        self._components[component_id] = strategy

    def set_scope(self, entity: int, component_id: int, strategy: Strategy) -> None:
        self._scopes[(entity, component_id)] = strategy

    def strategy_for(self, scope: Scope) -> Strategy:
        found = self._scopes.get(scope.group)
        if found is not None:
            return found
        return self._components.get(scope.component, self.default)


@dataclass
class Resolution:
    """The fold's outcome for one scope, in total order."""

    accepted: list[Entry] = field(default_factory=list)
    rejected: list[Entry] = field(default_factory=list)
    #: accepted entries that conflicted (overwrote or merged with a concurrent write)
    conflicted: list[Entry] = field(default_factory=list)
    #: entries whose author lacked the role for them at their place in the order
    denied: list[Entry] = field(default_factory=list)

    @property
    def head(self) -> EntryId:
        """The entry a new command on this scope should name as its base."""
        return self.accepted[-1].id if self.accepted else NO_BASE


class ScopeLog:
    """The entries of one (entity, component) scope in total order, with their resolution.

    Appends in order (the common case) extend the resolution in O(1); an entry that arrives
    before entries already integrated makes the next read refold the scope from its start.
    """

    __slots__ = (
        "_entries", "_keys", "_permit", "_resolution", "_stale", "base", "generation", "strategy"
    )

    def __init__(
        self,
        strategy: Strategy,
        permit: Callable[[Entry], bool] | None = None,
        base: Iterable[Entry] = (),
    ) -> None:
        self.strategy = strategy
        self._permit = permit
        #: entries a checkpoint retained: accepted, in order, never refolded
        self.base: tuple[Entry, ...] = tuple(base)
        self._entries: list[Entry] = []
        self._keys: list[tuple[int, int, int]] = []
        self._resolution = Resolution(accepted=list(self.base))
        self._stale = False
        #: bumped on every refold: until it changes, the resolution's lists only grow
        self.generation = 0

    def add(self, entry: Entry) -> None:
        key = entry.key
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
            self._entries.append(entry)
            if not self._stale:
                self._step(self._resolution, entry, self._permit)
            return
        at = bisect.bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            return  # already integrated
        self._keys.insert(at, key)
        self._entries.insert(at, entry)
        self._stale = True

    def discard(self, entry: Entry) -> None:
        """Take an entry out again (an equivocated one, see :mod:`.log`); refold at next read."""
        at = bisect.bisect_left(self._keys, entry.key)
        if at < len(self._keys) and self._entries[at].id == entry.id:
            del self._keys[at]
            del self._entries[at]
            self._stale = True

    def invalidate(self) -> None:
        """Refold at the next read (the roles behind the permission check changed)."""
        self._stale = True

    def fold(
        self, entries: Iterable[Entry], permit: Callable[[Entry], bool] | None = None
    ) -> Resolution:
        """The resolution of the base followed by ``entries`` (in order), judging roles with
        ``permit`` if given: the outcome of a prefix of the history (what a checkpoint holds)."""
        res = Resolution(accepted=list(self.base))
        for entry in entries:
            self._step(res, entry, permit or self._permit)
        return res

    def _step(
        self, res: Resolution, entry: Entry, permit: Callable[[Entry], bool] | None = None
    ) -> None:
        if permit is not None and not permit(entry):
            res.denied.append(entry)
            return
        concurrent = entry.base != res.head
        if concurrent and self.strategy is Strategy.REJECT:
            res.rejected.append(entry)
            return
        if concurrent:
            res.conflicted.append(entry)
        res.accepted.append(entry)

    @property
    def resolution(self) -> Resolution:
        if self._stale:
            self._resolution = self.fold(self._entries)
            self._stale = False
            self.generation += 1
        return self._resolution

    @property
    def entries(self) -> list[Entry]:
        """The base, then every later entry in order."""
        return [*self.base, *self._entries]

    @property
    def tail(self) -> list[Entry]:
        """The entries after the base, in order."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self.base) + len(self._entries)
