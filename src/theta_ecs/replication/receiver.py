"""The receiving side: decode state packets, apply the newest to a local World, acknowledge.

Network ids are the server's entity ids; the receiver spawns its own local entities and keeps
the mapping as an array aligned with the applied snapshot (so applying a delta is a handful of
batched World calls, not a loop over entities). Packets may arrive late, twice, out of order,
or not at all: stale and duplicate ones are counted and ignored, a delta whose baseline we no
longer hold is dropped (the sender will move to a newer acked baseline), malformed bytes are a
counted drop, and a schema mismatch or unknown dictionary is refused with our exception.

A delta newer than anything applied whose baseline we never held cannot be fixed by waiting:
the sender took an ack for a state we lack (a corrupted or forged ack). The receiver then sends
a :class:`~theta_ecs.serialization.packet.ResyncRequest` (every ``resync_interval`` while it
lasts) and the replicator falls back to a full state. Chunk reassembly is bounded by count, age
and a sequence window after the applied state, so junk chunks cannot keep genuine state out; a
whole state packet outside that window is dropped and counted too (``out_of_window``), so one
forged datagram with a far-future sequence cannot make every genuine state stale. A compressed
state inflating beyond what ``max_entities`` entities can need (a decompression bomb) is refused
while inflating, at that bound, and counted (``oversize``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..serialization.chunking import ChunkDrops, Reassembler
from ..serialization.codec import DEFAULT_MAX_ENTITIES, StateCodec
from ..serialization.compression import DictionaryRegistry
from ..serialization.errors import (
    BodyTooLargeError,
    DecodeError,
    SchemaMismatchError,
    UnknownDictionaryError,
)
from ..serialization.packet import (
    AckPacket,
    ChunkPacket,
    ResyncRequest,
    StatePacket,
    decode_packet,
    encode_packet,
)
from ..serialization.schema import ReplicationSchema
from ..serialization.snapshot import Snapshot, diff
from ..world import World


@dataclass
class ReceiverStats:
    packets: int = 0
    bytes: int = 0
    applied: int = 0
    stale: int = 0
    duplicate: int = 0
    missing_baseline: int = 0
    malformed: int = 0
    chunks: int = 0
    acks_sent: int = 0
    chunk_requests: int = 0
    resync_requests: int = 0  # "I lack your baseline, send a full state" messages sent
    out_of_window: int = 0  # states implausibly far ahead of the applied one, dropped
    oversize: int = 0  # compressed states inflating beyond what max_entities can need, dropped
    chunk_drops: ChunkDrops = field(default_factory=ChunkDrops)  # by reason: see ChunkDrops


class Receiver:
    """Client-side replication endpoint for one server."""

    def __init__(
        self,
        schema: ReplicationSchema,
        world: World | None = None,
        *,
        dictionaries: DictionaryRegistry | None = None,
        max_history: int = 64,
        ack_interval: float = 0.0,
        reack_interval: float = 0.1,
        resync_interval: float = 0.2,
        max_entities: int = DEFAULT_MAX_ENTITIES,
    ) -> None:
        self.schema = schema
        self.world = world if world is not None else World()
        # the most entities a state may hold: bounds decompression (a bomb is a counted drop)
        self.codec = StateCodec(schema, dictionaries, max_entities=max_entities)
        self.stats = ReceiverStats()
        self.max_history = max_history
        self.ack_interval = ack_interval
        self.reack_interval = reack_interval
        self.resync_interval = resync_interval
        self.reassembler = Reassembler(drops=self.stats.chunk_drops)
        self._lacking: ResyncRequest | None = None  # latest delta we could not decode, if stuck
        self._lacking_at = 0.0
        self._last_resync = -1e18
        self._history: dict[int, Snapshot] = {}
        self._floor = -1  # sequences below this can no longer serve as baselines
        self._dirty = False
        self._last_ack = -1e18
        self.applied: Snapshot = Snapshot.empty(schema)
        self.applied_sequence = -1
        self.local_ids: npt.NDArray[np.uint64] = np.zeros(0, np.uint64)

    # -- incoming ------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float = 0.0) -> bool:
        """Handle one datagram; True when it changed the applied state.

        Pass the local clock as ``now``: the window of plausible sequences after the applied
        state widens with the time since it was applied, so after a long outage the sender's
        newer states still fit (with ``now`` left at 0 the window stays 1,024 states wide).
        """
        self.stats.packets += 1
        self.stats.bytes += len(data)
        try:
            pkt = decode_packet(data)
            if isinstance(pkt, ChunkPacket):
                self.stats.chunks += 1
                message = self.reassembler.add(pkt, now)
                if message is None:
                    return False
                pkt = decode_packet(message)
            if not isinstance(pkt, StatePacket):
                raise DecodeError("a client expects state packets")
            return self._on_state(pkt, now)
        except (SchemaMismatchError, UnknownDictionaryError):
            raise
        except BodyTooLargeError:
            self.stats.oversize += 1
            return False
        except DecodeError:
            self.stats.malformed += 1
            return False

    def _on_state(self, pkt: StatePacket, now: float = 0.0) -> bool:
        self.codec.check(pkt)
        seq = pkt.sequence
        if seq in self._history:
            self.stats.duplicate += 1
            self._dirty = True  # re-ack: our previous ack may have been lost
            return False
        if seq <= self.applied_sequence:
            self.stats.stale += 1
            return False
        if not self.reassembler.plausible(seq, now):
            # A state far ahead of any the sender can have reached (junk, or a corrupted
            # sequence): applying it would make every genuine state look stale for good.
            self.stats.out_of_window += 1
            return False
        base = None
        if pkt.baseline is not None:
            base = self._history.get(pkt.baseline)
            if base is None:
                self.stats.missing_baseline += 1
                # Newer than what we applied yet undecodable: the sender's baseline is a state
                # we never held, and only a full state gets us out (see the module docstring).
                # The latest such packet is named (junk cannot pin an old one), and only one in the
                # plausible window after the applied state.
                if self.reassembler.plausible(seq, now):
                    self._lacking, self._lacking_at = ResyncRequest(seq, pkt.baseline), now
                return False
        state = self.codec.decode(pkt, base)
        self._history[seq] = state
        self._dirty = True
        if pkt.baseline is not None and pkt.baseline > self._floor:
            # The sender only ever moves its baseline forward: older states are dead weight.
            self._floor = pkt.baseline
        self._evict()
        self._apply(state)
        self.reassembler.advance(seq, now)
        self._lacking = None  # progress: if still stuck, the next undecodable delta says so
        return True

    def _evict(self) -> None:
        for s in [s for s in self._history if s < self._floor and s != self.applied_sequence]:
            del self._history[s]
        # The floor is the baseline the sender deltas against: while our acks are lost it stays
        # put as new states pile up, and dropping it would make every later delta undecodable.
        keep = (self._floor, self.applied_sequence)
        while len(self._history) > self.max_history:
            victims = [s for s in self._history if s not in keep]
            if not victims:
                break
            del self._history[min(victims)]

    # -- applying to the world -----------------------------------------------------------------
    def _apply(self, new: Snapshot) -> None:
        world = self.world
        schema = self.schema
        old, old_local = self.applied, self.local_ids
        d = diff(schema, new, old)
        if len(d.removed):
            world.despawn_batch(old_local[d.removed])
        local = np.zeros(len(new), np.uint64)
        matched = d.cur_to_base >= 0
        local[matched] = old_local[d.cur_to_base[matched]]
        if len(d.added):
            pres = new.presence[d.added]
            patterns, which = np.unique(pres, axis=0, return_inverse=True)
            for p, pattern in enumerate(patterns):
                rows = d.added[np.asarray(which).reshape(-1) == p]
                cols = {
                    schema.components[int(ci)]: self._column(int(ci), new, rows)
                    for ci in np.flatnonzero(pattern)
                }
                local[rows] = world.spawn_batch(cols)
        if len(d.changed):
            rows = d.changed
            old_rows = d.cur_to_base[rows]
            for ci, comp in enumerate(schema.components):
                upd = rows[d.component_changed[rows, ci] != 0]
                if len(upd):
                    world.insert_batch(local[upd], comp, self._column(ci, new, upd))
                lost = rows[(new.presence[rows, ci] == 0) & (old.presence[old_rows, ci] != 0)]
                if len(lost):
                    world.remove_batch(local[lost], comp)
        self.applied = new
        self.applied_sequence = new.tick
        self.local_ids = local
        self.stats.applied += 1

    def _column(
        self, ci: int, state: Snapshot, rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.generic]:
        lanes = state.values[rows][:, self.schema.lane_slices[ci]]
        return self.schema.codecs[ci].from_lanes(np.ascontiguousarray(lanes))

    def local_entity(self, net_id: int) -> int | None:
        """The local entity standing for server entity ``net_id``, if replicated."""
        row = int(self.applied.rows_of(np.array([net_id], np.uint64))[0])
        return None if row < 0 else int(self.local_ids[row])

    # -- outgoing ------------------------------------------------------------------------------
    def produce(self, now: float) -> list[bytes]:
        """An ack (when something new arrived, or periodically: acks get lost too), requests
        for missing chunks, and a resync request while deltas arrive against a baseline we lack."""
        out = [encode_packet(r) for r in self.reassembler.requests(now)]
        self.stats.chunk_requests += len(out)
        if self._lacking is not None and (
            self._lacking.baseline in self._history  # it turned up after all (reordered)
            or now - self._lacking_at > 4 * self.resync_interval + 1.0  # no such delta lately
        ):
            self._lacking = None
        if self._lacking is not None and now - self._last_resync >= self.resync_interval:
            out.append(encode_packet(self._lacking))
            self.stats.resync_requests += 1
            self._last_resync = now
        due = self._dirty or now - self._last_ack >= self.reack_interval
        if due and self._history and now - self._last_ack >= self.ack_interval:
            latest = max(self._history)
            mask = 0
            for i in range(32):
                if latest - 1 - i in self._history:
                    mask |= 1 << i
            out.append(encode_packet(AckPacket(latest, mask)))
            self.stats.acks_sent += 1
            self._dirty = False
            self._last_ack = now
        return out
