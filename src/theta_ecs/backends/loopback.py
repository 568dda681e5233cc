"""The in-process ``loopback`` transport, with a link model that impairs it like a real network.

Two layers, both sans-I/O:

* :class:`LoopbackLink` is one direction of a link, fed explicit time: ``send(data, now)`` and
  ``receive(now)``. It models, in this order, a sender-side bottleneck (a serialisation queue that
  drains at ``bandwidth_bps``, with an optional byte limit beyond which packets are tail-dropped),
  then the path: independent loss, duplication, a base latency with uniform jitter, and netem-style
  reordering (a reordered packet skips the base latency, so it overtakes packets sent before it).
  Every random draw comes from a numpy ``Generator`` seeded from the model, a fixed number of
  draws per packet, so a run replays exactly.
* :class:`LoopbackNetwork` reads one clock (``time.monotonic`` by default, or a
  :class:`ManualClock` in tests and benchmarks) and makes connected :class:`LoopbackTransport`
  pairs that implement :class:`theta_ecs.interfaces.Transport`.

``reliable=True`` models a reliable stream (QUIC stream, SCTP reliable channel): the message is
never lost (nor tail-dropped at a full bottleneck queue, nor held to the MTU: a stream buffers and
segments what it carries), never duplicated and never reordered against other reliable messages of
the same direction, but it still pays the bottleneck, the latency and the jitter, and each time the
loss model hits it, it pays one retransmission (an extra round trip, taken as twice the base
latency plus twice the jitter bound, at least 1 ms).
Head-of-line blocking follows: a reliable message is delivered no earlier than the reliable
messages sent before it.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..errors import ThetaError

__all__ = [
    "LinkModel",
    "LinkModelError",
    "LinkStats",
    "LinkTimeError",
    "LoopbackError",
    "LoopbackLink",
    "LoopbackNetwork",
    "LoopbackTransport",
    "LoopbackTransportFactory",
    "ManualClock",
    "TransportClosedError",
    "TransportStats",
]

#: A reliable message whose retransmissions keep failing is delivered after this many attempts
#: (a real stream would eventually time the connection out; the loopback keeps its promise).
MAX_RETRANSMISSIONS = 32
#: The smallest retransmission penalty, so a zero-latency link still shows that a loss happened.
MIN_RETRANSMIT_S = 0.001
#: Random draws per packet: loss, duplicate, reorder, jitter (original), jitter (duplicate).
_DRAWS_PER_PACKET = 5


class LoopbackError(ThetaError):
    """Base of the loopback transport's errors."""


class LinkModelError(LoopbackError, ValueError):
    """A link model parameter out of its range (a probability outside [0, 1], a negative delay)."""


class LinkTimeError(LoopbackError, ValueError):
    """Time that is not a finite number or that goes backwards."""


class TransportClosedError(LoopbackError, ConnectionError):
    """A send on a transport that was closed."""


def _check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LinkModelError(f"{name} must be a number, got {value!r}")
    val = float(value)
    if not math.isfinite(val):
        raise LinkModelError(f"{name} must be finite, got {value!r}")
    return val


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LinkTimeError(f"time must be a number of seconds, got {value!r}")
    t = float(value)
    if not math.isfinite(t):
        raise LinkTimeError(f"time must be finite, got {value!r}")
    return t


@dataclass(frozen=True)
class LinkModel:
    """The impairments of one link direction, in SI units.

    ``bandwidth_bps`` is the bottleneck rate in bits per second (``None``: unlimited);
    ``queue_limit_bytes`` bounds the bytes waiting at that bottleneck (``None``: unbounded, so an
    overloaded link grows its delay instead of dropping). ``mtu_bytes`` is the largest unreliable
    datagram the path carries (``None``: any size); larger ones are dropped and counted, as a path
    without fragmentation would, so a sender that ignores its packet budget finds out. ``loss``,
    ``duplicate`` and ``reorder`` are per-packet probabilities.
    """

    latency_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    bandwidth_bps: float | None = None
    seed: int = 0
    queue_limit_bytes: int | None = None
    mtu_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("latency_s", "jitter_s"):
            if _check_real(name, getattr(self, name)) < 0.0:
                raise LinkModelError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= _check_real(name, getattr(self, name)) <= 1.0:
                raise LinkModelError(
                    f"{name} is a probability in [0, 1], got {getattr(self, name)!r}"
                )
        if self.bandwidth_bps is not None and _check_real("bandwidth_bps", self.bandwidth_bps) <= 0:
            raise LinkModelError(f"bandwidth_bps must be positive, got {self.bandwidth_bps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise LinkModelError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise LinkModelError(f"seed must not be negative, got {self.seed!r}")
        for name in ("queue_limit_bytes", "mtu_bytes"):
            limit = getattr(self, name)
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit <= 0
            ):
                raise LinkModelError(f"{name} must be a positive integer, got {limit!r}")

    @property
    def retransmit_s(self) -> float:
        """What one lost attempt costs a reliable message: about one round trip."""
        return max(2.0 * (self.latency_s + self.jitter_s), MIN_RETRANSMIT_S)


@dataclass(frozen=True)
class LinkStats:
    """Counters of one link direction since it was made (packets unless the name says bytes).

    Nothing vanishes uncounted: ``sent + duplicated == delivered + lost + dropped_for_bandwidth +
    dropped_oversize + dropped_closed + in_flight`` (a duplicate copy is a packet of its own from
    the moment it is made). ``reordered`` counts packets the reorder model picked; ``out_of_order``
    counts deliveries that arrived after a packet sent later (whatever the cause, jitter included).
    """

    sent: int = 0
    sent_bytes: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    out_of_order: int = 0
    dropped_for_bandwidth: int = 0
    dropped_for_bandwidth_bytes: int = 0
    dropped_oversize: int = 0
    dropped_closed: int = 0
    retransmitted: int = 0
    in_flight: int = 0
    queued_bytes: int = 0


class LoopbackLink:
    """One direction of an impaired link, driven by explicit, non-decreasing time (seconds)."""

    def __init__(self, model: LinkModel | None = None, *, stream: int = 0) -> None:
        self.model = model if model is not None else LinkModel()
        if not isinstance(self.model, LinkModel):
            raise LinkModelError(f"expected a LinkModel, got {type(self.model).__name__}")
        # One generator per (seed, stream): the two directions of a pair never share draws.
        self._rng = np.random.default_rng([int(self.model.seed), int(stream)])
        self._heap: list[tuple[float, int, int, bytes]] = []  # (arrival, order, seq, data)
        self._order = 0  # tie-break: equal arrival times leave in send order
        self._seq = 0
        self._now = -math.inf
        self._busy_until = -math.inf  # when the bottleneck finishes what it has queued
        self._backlog: deque[tuple[float, int]] = deque()  # (finish time, bytes) at the bottleneck
        self._backlog_bytes = 0
        self._last_reliable_arrival = -math.inf
        self._highest_delivered_seq = -1
        self.closed = False
        self._c: dict[str, int] = {f.name: 0 for f in fields(LinkStats)}

    # -- time ---------------------------------------------------------------------------------
    def _advance(self, now: float) -> float:
        t = _seconds(now)
        if t < self._now:
            raise LinkTimeError(f"time went backwards: {t!r} after {self._now!r}")
        self._now = t
        while self._backlog and self._backlog[0][0] <= t:
            self._backlog_bytes -= self._backlog.popleft()[1]
        return t

    # -- the two operations -------------------------------------------------------------------
    def send(
        self, data: bytes | bytearray | memoryview, now: float, *, reliable: bool = False
    ) -> None:
        """Put ``data`` on the link at ``now``; it may be delayed, copied, reordered or lost."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LoopbackError(f"a datagram is bytes, got {type(data).__name__}")
        payload = bytes(data)
        t = self._advance(now)
        m = self.model
        c = self._c
        c["sent"] += 1
        c["sent_bytes"] += len(payload)
        seq = self._seq
        self._seq += 1
        # Draw a fixed amount per packet whatever the model, so changing one probability leaves
        # the other decisions of a seeded run where they were.
        u = self._rng.random(_DRAWS_PER_PACKET)
        if self.closed:
            c["dropped_closed"] += 1
            return
        if not reliable and m.mtu_bytes is not None and len(payload) > m.mtu_bytes:
            c["dropped_oversize"] += 1
            return

        # The bottleneck: the packet waits for the bytes ahead of it to be serialised.
        departure = t
        if m.bandwidth_bps is not None:
            if (
                not reliable  # a stream holds its data in the sender's buffer instead
                and m.queue_limit_bytes is not None
                and self._backlog_bytes + len(payload) > m.queue_limit_bytes
            ):
                c["dropped_for_bandwidth"] += 1
                c["dropped_for_bandwidth_bytes"] += len(payload)
                return
            start = max(t, self._busy_until)
            departure = start + len(payload) * 8.0 / m.bandwidth_bps
            self._busy_until = departure
            self._backlog.append((departure, len(payload)))
            self._backlog_bytes += len(payload)

        if reliable:
            arrival = departure + self._delay(float(u[3]), reordered=False)
            attempts = 0
            if m.loss > 0.0:
                # Each failed attempt is one more draw and one more round trip.
                lost_draw = float(u[0])
                while lost_draw < m.loss and attempts < MAX_RETRANSMISSIONS:
                    attempts += 1
                    lost_draw = float(self._rng.random())
            c["retransmitted"] += attempts
            arrival += attempts * m.retransmit_s
            arrival = max(arrival, self._last_reliable_arrival)  # one ordered stream
            self._last_reliable_arrival = arrival
            self._push(arrival, seq, payload)
            return

        if u[0] < m.loss:
            c["lost"] += 1
            return
        reordered = bool(u[2] < m.reorder)
        if reordered:
            c["reordered"] += 1
        self._push(departure + self._delay(float(u[3]), reordered=reordered), seq, payload)
        if u[1] < m.duplicate:
            c["duplicated"] += 1
            self._push(departure + self._delay(float(u[4]), reordered=False), seq, payload)

    def receive(self, now: float) -> list[bytes]:
        """Every packet that has arrived by ``now``, in arrival order."""
        return [data for _, data in self.receive_timed(now)]

    def receive_timed(self, now: float) -> list[tuple[float, bytes]]:
        """Like :meth:`receive`, with each packet's arrival time (for latency measurements)."""
        t = self._advance(now)
        out: list[tuple[float, bytes]] = []
        heap = self._heap
        c = self._c
        while heap and heap[0][0] <= t:
            arrival, _, seq, data = heapq.heappop(heap)
            if seq < self._highest_delivered_seq:
                c["out_of_order"] += 1
            self._highest_delivered_seq = max(self._highest_delivered_seq, seq)
            c["delivered_bytes"] += len(data)
            out.append((arrival, data))
        c["delivered"] += len(out)
        return out

    @property
    def now(self) -> float:
        """The latest time this link was told (``-inf`` before the first call)."""
        return self._now

    def next_arrival(self) -> float | None:
        """When the next packet arrives (``None``: nothing in flight); lets a driver skip ahead."""
        return self._heap[0][0] if self._heap else None

    # -- internals ----------------------------------------------------------------------------
    def _delay(self, draw: float, *, reordered: bool) -> float:
        m = self.model
        base = 0.0 if reordered else m.latency_s
        return max(0.0, base + (2.0 * draw - 1.0) * m.jitter_s)

    def _push(self, arrival: float, seq: int, payload: bytes) -> None:
        heapq.heappush(self._heap, (arrival, self._order, seq, payload))
        self._order += 1

    def close(self) -> None:
        """Drop what is in flight (counted as closed drops) and refuse future packets."""
        if self.closed:
            return
        self.closed = True
        self._c["dropped_closed"] += len(self._heap)
        self._heap.clear()

    @property
    def stats(self) -> LinkStats:
        """A snapshot of the counters."""
        c = dict(self._c)
        c["in_flight"] = len(self._heap)
        c["queued_bytes"] = self._backlog_bytes
        return LinkStats(**c)


class ManualClock:
    """A clock that moves only when told to: deterministic time for tests and benchmarks."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = _seconds(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> float:
        step = _seconds(dt)
        if step < 0:
            raise LinkTimeError(f"a clock advances by a non-negative step, got {dt!r}")
        self.now += step
        return self.now

    def set(self, now: float) -> None:
        t = _seconds(now)
        if t < self.now:
            raise LinkTimeError(f"time went backwards: {t!r} after {self.now!r}")
        self.now = t


@dataclass(frozen=True)
class TransportStats:
    """Both directions as seen from one endpoint."""

    outgoing: LinkStats
    incoming: LinkStats


class LoopbackTransport:
    """One endpoint of a connected pair; implements :class:`theta_ecs.interfaces.Transport`."""

    def __init__(
        self, outgoing: LoopbackLink, incoming: LoopbackLink, clock: Callable[[], float]
    ) -> None:
        self.outgoing = outgoing
        self.incoming = incoming
        self._clock = clock
        self.closed = False
        self.peer: LoopbackTransport | None = None

    def send(self, data: bytes | bytearray | memoryview, *, reliable: bool = False) -> None:
        """Send one datagram (or, with ``reliable=True``, one reliable, ordered message)."""
        if self.closed:
            raise TransportClosedError("send on a closed loopback transport")
        self.outgoing.send(data, self._clock(), reliable=reliable)

    def receive(self) -> list[bytes]:
        """Everything that has arrived by the clock's current time (empty once closed)."""
        if self.closed:
            return []
        return self.incoming.receive(self._clock())

    def close(self) -> None:
        """Close this end: nothing more is sent, and what the peer sends afterwards is dropped."""
        if self.closed:
            return
        self.closed = True
        self.incoming.close()

    @property
    def peer_closed(self) -> bool:
        return self.outgoing.closed

    @property
    def stats(self) -> TransportStats:
        return TransportStats(outgoing=self.outgoing.stats, incoming=self.incoming.stats)


class LoopbackNetwork:
    """Makes connected loopback pairs that share one clock and one base link model.

    Each pair and each direction gets its own random stream derived from the model's seed and the
    order the pairs were made in, so a run that makes the same pairs replays exactly.
    """

    def __init__(
        self, model: LinkModel | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = model if model is not None else LinkModel()
        if not isinstance(self.model, LinkModel):
            raise LinkModelError(f"expected a LinkModel, got {type(self.model).__name__}")
        if not callable(clock):
            raise LoopbackError("clock must be a callable returning seconds")
        self.clock = clock
        self._pairs = 0

    def pair(
        self, model: LinkModel | None = None, *, reverse: LinkModel | None = None
    ) -> tuple[LoopbackTransport, LoopbackTransport]:
        """Two connected endpoints ``(a, b)``: ``model`` impairs a→b, ``reverse`` (default: the
        same model) impairs b→a."""
        forward_model = model if model is not None else self.model
        backward_model = reverse if reverse is not None else forward_model
        k = self._pairs
        self._pairs += 1
        a_to_b = LoopbackLink(forward_model, stream=2 * k)
        b_to_a = LoopbackLink(backward_model, stream=2 * k + 1)
        a = LoopbackTransport(a_to_b, b_to_a, self.clock)
        b = LoopbackTransport(b_to_a, a_to_b, self.clock)
        a.peer, b.peer = b, a
        return a, b


_MODEL_FIELDS = frozenset(f.name for f in fields(LinkModel))


class LoopbackTransportFactory:
    """The ``loopback`` entry of ``theta.transports``.

    ``LoopbackTransportFactory(model=LinkModel(...), clock=...)`` or the model's fields directly
    (``LoopbackTransportFactory(latency_s=0.05, loss=0.01)``); ``connect_pair()`` returns two
    connected transports.
    """

    def __init__(
        self,
        model: LinkModel | None = None,
        clock: Callable[[], float] = time.monotonic,
        **model_fields: Any,
    ) -> None:
        unknown = set(model_fields) - _MODEL_FIELDS
        if unknown:
            raise LinkModelError(
                f"unknown loopback options {sorted(unknown)} (known: model, clock, "
                f"{', '.join(sorted(_MODEL_FIELDS))})"
            )
        if model is not None and model_fields:
            raise LinkModelError("give either model= or the model's fields, not both")
        if model is None:
            model = LinkModel(**model_fields)
        self.network = LoopbackNetwork(model, clock=clock)

    @property
    def model(self) -> LinkModel:
        return self.network.model

    def connect_pair(self) -> tuple[LoopbackTransport, LoopbackTransport]:
        return self.network.pair()
