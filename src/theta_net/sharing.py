"""One encode per (state, baseline) per tick, shared by every client that needs it.

Clients that acknowledged the same baseline and see the same entities need the very same delta:
:class:`SharedEncoder` wraps each replicator's codec and memoizes ``encode`` within a tick, keyed
by the identity of the target and baseline snapshots (the replicators keep those objects, so equal
identities mean equal content) and the compression settings.
"""

from __future__ import annotations

import time
from typing import Any

from theta_ecs.serialization.codec import StateCodec
from theta_ecs.serialization.snapshot import Snapshot


class EncodeCache:
    """The per-tick memo shared by the server's encoders; :meth:`new_tick` empties it."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], tuple[bytes, int]] = {}  # key -> (packet, encoder)
        self._pins: list[object] = []  # keep keyed objects alive so ids stay unique in the tick
        self.encodes = 0
        self.shared = 0  # answered from the cache
        self.shared_between = 0  # ... for another client than the one it was encoded for
        self.encode_seconds = 0.0  # time spent in real encodes (a hit saves about the mean)

    def new_tick(self) -> None:
        self._memo.clear()
        self._pins.clear()


class SharedEncoder:
    """A :class:`StateCodec` stand-in for one replicator, answering from the tick's cache."""

    def __init__(self, codec: StateCodec, cache: EncodeCache) -> None:
        self.codec = codec
        self.cache = cache

    def encode(
        self,
        target: Snapshot,
        sequence: int,
        base: Snapshot | None,
        base_sequence: int | None,
        *,
        compress: bool,
        dictionary_id: int,
    ) -> bytes:
        cache = self.cache
        key = (id(target), sequence, id(base) if base is not None else None, base_sequence,
               compress, dictionary_id)
        hit = cache._memo.get(key)
        if hit is not None:
            cache.shared += 1
            if hit[1] != id(self):
                cache.shared_between += 1
            return hit[0]
        t0 = time.perf_counter()
        data = self.codec.encode(target, sequence, base, base_sequence, compress=compress,
                                 dictionary_id=dictionary_id)
        cache.encode_seconds += time.perf_counter() - t0
        cache.encodes += 1
        cache._memo[key] = (data, id(self))
        cache._pins.append(target)
        if base is not None:
            cache._pins.append(base)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.codec, name)
