"""The per-peer replicator (server side): what this peer gets each tick, and against what.

Sans-I/O: ``produce(state, now)`` returns the datagrams to send, ``receive(data, now)`` takes
the peer's acks and chunk requests. For every packet it remembers the exact state the peer will
hold if that packet arrives (a ring by sequence); the newest acknowledged one is the baseline of
the next delta, so a lost packet never corrupts the peer, it only makes the next delta larger.

A bandwidth budget per tick is honoured with priority accumulators: every entity that needs
sending gains priority each tick it waits (more when it changed more, or is new), the highest go
first, and what does not fit keeps its baseline value in the remembered state and waits.

Acks are checked before they move the baseline: an ack naming a sequence this replicator never
sent (ahead of the newest, in a gap between sent sequences, or a chunked state whose chunks have
not all left) is refused whole and counted (``forged_acks``). An ack of a state that was sent but
never arrived cannot be told from a real one; the receiver then cannot decode the deltas that
follow and says so with a ``ResyncRequest``, and the replicator falls back to a full state
(``resyncs``), refusing later acks of the state the peer disowned.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..errors import DecodeError
from ..serialization.chunking import DEFAULT_BUDGET, split
from ..serialization.codec import StateCodec
from ..serialization.compression import NO_DICTIONARY, DictionaryRegistry
from ..serialization.packet import AckPacket, ChunkRequest, ResyncRequest, decode_packet
from ..serialization.schema import ReplicationSchema
from ..serialization.snapshot import INDEX_MASK, Snapshot, diff, merge_selected
from ..telemetry import Telemetry


@dataclass(frozen=True)
class ReplicatorConfig:
    """Which optimisations run, and the limits they respect."""

    delta: bool = True  # delta against the newest acked state, else a full snapshot each tick
    compress: bool = True  # zstd when it shrinks the body
    dictionary_id: int = NO_DICTIONARY  # trained dictionary to compress with (0: none)
    packet_budget: int = DEFAULT_BUDGET  # larger packets are chunked
    bandwidth_budget: int | None = None  # bytes per tick for new state (None: unlimited)
    max_history: int = 64  # sent states remembered as possible baselines
    resend_interval: float = 0.05  # a chunk request for the same state is served at most this often
    max_resend: int = 1024  # chunks queued for resending, at most
    chunk_timeout: float = 1.0  # a chunked state unacked this long is superseded
    added_bonus: float = 4.0  # priority a newly visible entity gains per tick


@dataclass
class ReplicatorStats:
    ticks: int = 0
    packets_sent: int = 0
    bytes_sent: int = 0
    state_packets: int = 0
    chunks_sent: int = 0
    chunks_resent: int = 0
    acks_received: int = 0
    stale_acks: int = 0
    malformed: int = 0
    deferred_entities: int = 0
    full_snapshots: int = 0
    ignored_requests: int = 0
    forged_acks: int = 0  # acks naming a state never (or not yet wholly) sent: refused whole
    resyncs: int = 0  # full states sent because the peer lacked the acked baseline
    refused_resyncs: int = 0  # resync requests naming a packet/baseline pair never sent
    stale_resyncs: int = 0  # resync requests about a baseline no longer in use


#: How many recently sent sequences are remembered (with their baselines) to judge acks and
#: resync requests; an ack names at most 33 sequences back from its newest.
SENT_MEMORY = 1024


@dataclass
class _Sent:
    state: Snapshot
    time: float
    chunks: list[bytes] = field(default_factory=list)
    served: float = float("-inf")  # when a chunk request for this state was last served
    unsent: set[int] = field(default_factory=set)  # chunks never yet put out: no genuine ack
    disowned: bool = False  # the peer said it lacks this state: never a baseline again


class Replicator:
    """Replication towards one peer."""

    def __init__(
        self,
        schema: ReplicationSchema,
        config: ReplicatorConfig | None = None,
        *,
        dictionaries: DictionaryRegistry | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.schema = schema
        self.config = config or ReplicatorConfig()
        self.codec = StateCodec(schema, dictionaries)
        self.telemetry = telemetry
        self.stats = ReplicatorStats()
        self._history: dict[int, _Sent] = {}
        self._acked: int | None = None
        self._last_sequence = -1
        self._inflight: int | None = None  # a chunked state waiting for its ack
        # (sequence, chunk index, chunk) requested again, and of large states paced by the budget
        self._resend: list[tuple[int, int, bytes]] = []
        self._outbox: deque[tuple[int, int, bytes]] = deque()
        self._sent_baselines: OrderedDict[int, int | None] = OrderedDict()  # recent seq -> base
        self._priority = np.zeros(1024, np.float64)
        self.last_state: Snapshot = Snapshot.empty(schema)

    # -- incoming ------------------------------------------------------------------------------
    @property
    def acked_sequence(self) -> int | None:
        """Newest sequence the peer acknowledged (the baseline of the next delta)."""
        return self._acked

    def receive(self, data: bytes, now: float) -> None:
        """Take an ack or chunk request from the peer; malformed ones are counted and dropped."""
        try:
            pkt = decode_packet(data)
        except DecodeError:
            self.stats.malformed += 1
            return
        if isinstance(pkt, AckPacket):
            self._on_ack(pkt)
        elif isinstance(pkt, ChunkRequest):
            sent = self._history.get(pkt.sequence)
            if sent is None or not sent.chunks:
                return
            # Serve each state's requests at most every resend_interval, and bound the queue, so
            # a peer (or a forger) cannot turn small requests into a flood.
            if now - sent.served < self.config.resend_interval:
                self.stats.ignored_requests += 1
                return
            sent.served = now
            room = self.config.max_resend - len(self._resend)
            wanted = [i for i in pkt.missing if i < len(sent.chunks)][: max(room, 0)]
            self._resend.extend((pkt.sequence, i, sent.chunks[i]) for i in wanted)
        elif isinstance(pkt, ResyncRequest):
            self._on_resync(pkt)
        else:
            self.stats.malformed += 1

    def _never_sent(self, seq: int) -> bool:
        """Whether ``seq`` is provably not a state the peer can hold: ahead of the newest sent,
        inside the remembered span yet never sent, or a state whose chunks have not all left."""
        if seq > self._last_sequence:
            return True
        if seq in self._sent_baselines:
            sent = self._history.get(seq)
            return sent is not None and bool(sent.unsent)
        return bool(self._sent_baselines) and seq > next(iter(self._sent_baselines))

    def _on_ack(self, pkt: AckPacket) -> None:
        self.stats.acks_received += 1
        named = pkt.sequences()
        if any(self._never_sent(seq) for seq in named):
            self.stats.forged_acks += 1
            return
        newest = None
        for seq in named:
            sent = self._history.get(seq)
            if sent is not None and not sent.disowned and (newest is None or seq > newest):
                newest = seq
        if newest is None:
            self.stats.stale_acks += 1
            return
        if self._inflight is not None and newest >= self._inflight:
            self._inflight = None
            self._drop_outbox()  # the peer has the join: its queued chunks are moot
        if self._acked is None or newest > self._acked:
            self._acked = newest
            self._prune()
        else:
            self.stats.stale_acks += 1

    def _on_resync(self, req: ResyncRequest) -> None:
        """The peer cannot decode packet ``req.sequence`` for lack of its baseline."""
        if self._sent_baselines.get(req.sequence, -1) != req.baseline:
            self.stats.refused_resyncs += 1  # not a packet we sent against that baseline
            return
        if req.baseline != self._acked:
            self.stats.stale_resyncs += 1  # we have moved to another baseline since
            return
        lost = self._history.get(req.baseline)
        if lost is not None:
            lost.disowned = True
        self._acked = None  # the next state is a full one
        self._inflight = None
        self._drop_outbox()  # deltas against the lost baseline are useless to the peer
        self.stats.resyncs += 1

    def _drop_outbox(self) -> None:
        """Forget queued chunks; their states keep them as unsent, so acks for them are refused."""
        self._outbox.clear()

    def _prune(self) -> None:
        keep_from = self._acked if self._acked is not None else -1
        for seq in [s for s in self._history if s < keep_from]:
            del self._history[seq]
        while len(self._history) > self.config.max_history:
            oldest = min(s for s in self._history if s != self._acked)
            del self._history[oldest]

    # -- outgoing ------------------------------------------------------------------------------
    def baseline(self) -> tuple[int, Snapshot] | None:
        if not self.config.delta or self._acked is None:
            return None
        sent = self._history.get(self._acked)
        return None if sent is None else (self._acked, sent.state)

    def produce(
        self, state: Snapshot, now: float, visible: npt.NDArray[np.bool_] | None = None
    ) -> list[bytes]:
        """Datagrams for this tick: requested chunk resends, then the new state (if any).

        ``state.tick`` is the sequence number and must increase; ``visible`` (a mask over the
        state's rows from interest management) restricts what this peer may see.
        """
        if state.tick <= self._last_sequence:
            raise ValueError(f"sequence {state.tick} does not follow {self._last_sequence}")
        self.stats.ticks += 1
        out = self._drain(now)
        if self._inflight is not None:
            sent = self._history.get(self._inflight)
            # Wait for the ack while chunks are still leaving, then for chunk_timeout more.
            if sent is not None and (self._outbox or now - sent.time < self.config.chunk_timeout):
                return self._account(out)
            self._inflight = None
        self._last_sequence = state.tick
        target = state if visible is None else state.take(np.flatnonzero(visible))
        base = self.baseline()
        base_state = base[1] if base is not None else Snapshot.empty(self.schema)
        target = self._fit_budget(target, base_state, base)
        packet = self._encode(target, base)
        self.stats.state_packets += 1
        if base is None:
            self.stats.full_snapshots += 1
        sent = _Sent(target, now)
        self._history[state.tick] = sent
        self._sent_baselines[state.tick] = base[0] if base is not None else None
        while len(self._sent_baselines) > SENT_MEMORY:
            self._sent_baselines.popitem(last=False)
        if len(packet) > self.config.packet_budget:
            sent.chunks = split(packet, state.tick, self.config.packet_budget)
            sent.unsent = set(range(len(sent.chunks)))
            self.stats.chunks_sent += len(sent.chunks)
            if self.config.delta and base is None:
                self._inflight = state.tick
            self._outbox.extend((state.tick, i, c) for i, c in enumerate(sent.chunks))
            out = out + self._drain(now, used=sum(len(p) for p in out))
        else:
            out = [*out, packet]
        self.last_state = target
        self._prune()
        return self._account(out)

    def _drain(self, now: float, used: int = 0) -> list[bytes]:
        """Requested resends, then queued chunks, within the bandwidth budget (at least one
        packet per tick, so a budget smaller than a chunk still makes progress).

        A chunked join waits for its ack (serving chunk requests) rather than stacking further
        full snapshots on a link it already fills; its timeout starts when its last chunk left.
        """
        budget = self.config.bandwidth_budget
        out: list[bytes] = []
        resent = 0
        while self._resend or self._outbox:
            queue = self._resend if self._resend else None
            seq, index, nxt = queue[0] if queue is not None else self._outbox[0]
            if budget is not None and (out or used) and used + len(nxt) > budget:
                break
            if queue is not None:
                queue.pop(0)
                resent += 1
            else:
                self._outbox.popleft()
            owner = self._history.get(seq)
            if owner is not None:
                owner.unsent.discard(index)
            out.append(nxt)
            used += len(nxt)
        self.stats.chunks_resent += resent
        if out and not self._outbox and self._inflight is not None:
            sent = self._history.get(self._inflight)
            if sent is not None:
                sent.time = now
        return out

    def _encode(self, target: Snapshot, base: tuple[int, Snapshot] | None) -> bytes:
        return self.codec.encode(
            target,
            target.tick,
            base[1] if base is not None else None,
            base[0] if base is not None else None,
            compress=self.config.compress,
            dictionary_id=self.config.dictionary_id,
        )

    def _fit_budget(
        self, target: Snapshot, base_state: Snapshot, base: tuple[int, Snapshot] | None
    ) -> Snapshot:
        """Trim ``target`` to the bandwidth budget by priority (identity when unlimited)."""
        budget = self.config.bandwidth_budget
        if budget is None:
            return target
        d = diff(self.schema, target, base_state)
        cand = np.concatenate([d.added, d.changed])
        if not len(cand):
            return target
        idx = (target.entities[cand] & INDEX_MASK).astype(np.int64)
        top = int(idx.max()) + 1
        if top > len(self._priority):
            grown = np.zeros(max(top, 2 * len(self._priority)), np.float64)
            grown[: len(self._priority)] = self._priority
            self._priority = grown
        gain = 1.0 + d.magnitude[cand] / 8.0
        gain[: len(d.added)] += self.config.added_bonus
        self._priority[idx] += gain
        packet = self._encode(target, base)
        if len(packet) <= budget:
            self._priority[idx] = 0.0
            return target
        order = np.argsort(-self._priority[idx], kind="stable")
        k = len(cand)
        chosen = target
        send = np.zeros(len(target), bool)
        for _ in range(8):
            k = int(k * budget / max(len(packet), 1) * 0.95)
            send[:] = False
            send[cand[order[:k]]] = True
            chosen = merge_selected(base_state, target, d, send)
            packet = self._encode(chosen, base)
            if len(packet) <= budget or k == 0:
                break
        sent_idx = idx[order[:k]]
        self._priority[sent_idx] = 0.0
        self.stats.deferred_entities += len(cand) - k
        return chosen

    def _account(self, out: list[bytes]) -> list[bytes]:
        n = sum(len(p) for p in out)
        self.stats.packets_sent += len(out)
        self.stats.bytes_sent += n
        if self.telemetry is not None:
            self.telemetry.count("replication.bytes_sent", n)
            self.telemetry.count("replication.packets_sent", len(out))
        return out
