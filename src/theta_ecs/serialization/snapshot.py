"""Snapshots of replicated state, and their bit-packed full and delta encodings.

A :class:`Snapshot` is the quantized state of a set of entities: ids sorted by entity index,
a presence matrix (entity x component) and a ``uint32`` lane matrix. Working in the quantized
domain makes the receiver's copy bit-identical to what the sender encoded, and makes "unchanged"
exact: a cube at rest quantizes to the same lanes every tick and costs nothing in a delta.

Body layout (all bit-packed, counts as exp-Golomb, per-column orders chosen by the encoder):

1. removed: count, then gaps between their baseline positions;
2. added: count, index gaps, generations, presence per component, raw lanes per lane;
3. changed: count, gaps between positions among the surviving entities, presence changes,
   per-component "value changed" flags, then per lane the zigzag deltas against the baseline
   (or raw values for a component the entity just gained).

A full snapshot is a delta against the empty snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._entities import INDEX_BITS
from .._entities import INDEX_MASK as _INDEX_MASK
from ..world import World
from .bitpack import BitReader, BitWriter, best_eg_order
from .diff import apply_lane_deltas, changed_components, lane_deltas, match_sorted
from .errors import DecodeError, EncodeError
from .schema import ReplicationSchema

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
INDEX_MASK = np.uint64(_INDEX_MASK)
_COUNT_K = 0  # exp-Golomb order for counts (an empty delta is 3 bits)
_ORDER_BITS = 5  # width of a per-column exp-Golomb order


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Quantized replicated state; arrays are treated as immutable once built."""

    entities: npt.NDArray[np.uint64]
    presence: npt.NDArray[np.uint8]
    values: U32
    tick: int = 0

    def __len__(self) -> int:
        return int(self.entities.shape[0])

    @classmethod
    def empty(cls, schema: ReplicationSchema, tick: int = 0) -> Snapshot:
        return cls(
            np.zeros(0, np.uint64),
            np.zeros((0, schema.n_components), np.uint8),
            np.zeros((0, schema.n_lanes), np.uint32),
            tick,
        )

    def take(self, rows: npt.ArrayLike) -> Snapshot:
        """The sub-snapshot of ``rows`` (which must be increasing, to keep the sort)."""
        r = np.asarray(rows, np.int64)
        return Snapshot(
            self.entities[r], self.presence.take(r, axis=0), self.values.take(r, axis=0), self.tick
        )

    def same_state(self, other: Snapshot) -> bool:
        """Bit-identical entities, presence and lanes (the tick is not compared)."""
        return (
            np.array_equal(self.entities, other.entities)
            and np.array_equal(self.presence, other.presence)
            and np.array_equal(self.values, other.values)
        )

    def rows_of(self, entities: npt.ArrayLike) -> I64:
        """Row of each id in ``entities``, or -1 where absent."""
        ids = np.asarray(entities, np.uint64)
        if not len(self):
            return np.full(len(ids), -1, np.int64)
        pos = np.searchsorted(self.entities & INDEX_MASK, ids & INDEX_MASK)
        pos = np.minimum(pos, len(self) - 1)
        hit = self.entities[pos] == ids
        return np.where(hit, pos, -1).astype(np.int64)


def capture(world: World, schema: ReplicationSchema, tick: int | None = None) -> Snapshot:
    """Quantize the replicated components of every entity that has at least one of them."""
    wanted = schema.index_of
    ents: list[npt.NDArray[np.uint64]] = []
    pres: list[npt.NDArray[np.uint8]] = []
    vals: list[U32] = []
    for arch in world.archetypes:
        n = arch.count
        if not n:
            continue
        mine = [cid for cid in arch.component_ids if cid in wanted]
        if not mine:
            continue
        p = np.zeros((n, schema.n_components), np.uint8)
        v = np.zeros((n, schema.n_lanes), np.uint32)
        for cid in mine:
            ci = wanted[cid]
            p[:, ci] = 1
            v[:, schema.lane_slices[ci]] = schema.codecs[ci].to_lanes(arch.columns[cid][:n])
        ents.append(arch.entities[:n])
        pres.append(p)
        vals.append(v)
    t = world.tick if tick is None else tick
    if not ents:
        return Snapshot.empty(schema, t)
    e = np.concatenate(ents)
    order = np.argsort(e & INDEX_MASK, kind="stable")
    return Snapshot(
        np.ascontiguousarray(e[order]),
        np.ascontiguousarray(np.concatenate(pres)[order]),
        np.ascontiguousarray(np.concatenate(vals)[order]),
        t,
    )


@dataclass(frozen=True)
class Diff:
    """What separates a snapshot from its baseline (computed by the Cython kernels)."""

    cur_to_base: I64  # baseline row of each current entity, -1 if added
    removed: I64  # baseline rows no longer present
    added: I64  # current rows new to the baseline
    changed: I64  # current rows (matched) whose presence or values differ
    component_changed: npt.NDArray[np.uint8]  # (n_cur, C)
    presence_changed: npt.NDArray[np.uint8]  # (n_cur,)
    magnitude: npt.NDArray[np.float32]  # (n_cur,) bits of change, for priorities


def diff(schema: ReplicationSchema, cur: Snapshot, base: Snapshot) -> Diff:
    """Compare ``cur`` with ``base`` column by column (no Python loop over entities)."""
    c2b, kept = match_sorted(cur.entities, base.entities)
    ch, pch, mag, dirty = changed_components(
        cur.values, base.values, cur.presence, base.presence, c2b, schema.lane_comp,
        schema.lane_bits,
    )
    return Diff(
        c2b,
        np.flatnonzero(kept == 0),
        np.flatnonzero(c2b < 0),
        np.flatnonzero(dirty),
        ch,
        pch,
        mag,
    )


def _gaps(positions: I64) -> U32:
    """Strictly increasing non-negative positions as gaps (first value, then step - 1)."""
    if not len(positions):
        return np.zeros(0, np.uint32)
    g = np.diff(positions, prepend=-1) - 1
    return g.astype(np.uint32)


def _ungaps(gaps: U32, limit: int, what: str) -> I64:
    pos = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if len(pos) and pos[-1] >= limit:
        raise DecodeError(f"{what} position {int(pos[-1])} beyond {limit}")
    return pos


def _write_column(w: BitWriter, values: U32) -> None:
    """Exp-Golomb column with its best order in front."""
    k, _ = best_eg_order(values)
    w.write(k, _ORDER_BITS)
    w.write_eg_array(values, k)


def _read_column(r: BitReader, n: int) -> U32:
    k = r.read(_ORDER_BITS)
    return r.read_eg_array(n, k)


def _write_change_flags(
    w: BitWriter, flags: npt.NDArray[np.bool_], both: npt.NDArray[np.bool_]
) -> None:
    """Which components changed, per changed entity (only where the baseline had them).

    Bodies that move usually change the same components together, so the most common pattern
    is sent once and each entity spends one bit on "same as that", else its own flags.
    """
    nc = flags.shape[1]
    if nc <= 8:
        patterns = np.packbits(flags, axis=1, bitorder="little")[:, 0].astype(np.int64)
    else:
        patterns = flags.astype(np.int64) @ (1 << np.arange(nc)).astype(np.int64)
    mode = int(np.bincount(patterns, minlength=1 << nc).argmax())
    w.write(mode, nc)
    is_mode = patterns == mode
    w.write_array(is_mode.astype(np.uint32), 1)
    rest = ~is_mode
    if rest.any():
        w.write_array(flags[rest][both[rest]].astype(np.uint32), 1)


def _read_change_flags(r: BitReader, both: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    n, nc = both.shape
    mode = r.read(nc)
    mode_flags = ((mode >> np.arange(nc)) & 1).astype(bool)
    is_mode = r.read_array(n, 1).astype(bool)
    flags = np.zeros((n, nc), bool)
    flags[is_mode] = mode_flags & both[is_mode]
    rest = ~is_mode
    if rest.any():
        sub = np.zeros((int(rest.sum()), nc), bool)
        mask = both[rest]
        sub[mask] = r.read_array(int(mask.sum()), 1).astype(bool)
        flags[rest] = sub
    return flags


def encode_body(
    schema: ReplicationSchema,
    cur: Snapshot,
    base: Snapshot | None = None,
    age: int | None = None,
) -> bytes:
    """Bit-packed delta of ``cur`` against ``base`` (a full snapshot when ``base`` is None).

    ``age`` (ticks from the baseline to ``cur``, default from their ticks) drives prediction.
    """
    if base is not None and age is None:
        age = cur.tick - base.tick
    if base is None:
        base = Snapshot.empty(schema)
    if cur.values.shape[1] != schema.n_lanes or cur.presence.shape[1] != schema.n_components:
        raise EncodeError("snapshot does not match the schema")
    d = diff(schema, cur, base)
    nc = schema.n_components
    w = BitWriter(64 + len(cur) * (schema.bits_per_entity // 8 + 4))

    w.write_eg(len(d.removed), _COUNT_K)
    if len(d.removed):
        _write_column(w, _gaps(d.removed))

    w.write_eg(len(d.added), _COUNT_K)
    if len(d.added):
        ids = cur.entities[d.added]
        _write_column(w, _gaps((ids & INDEX_MASK).astype(np.int64)))
        _write_column(w, (ids >> np.uint64(INDEX_BITS)).astype(np.uint32))
        pres = cur.presence[d.added]
        if nc > 1:
            for ci in range(nc):
                w.write_array(np.ascontiguousarray(pres[:, ci], np.uint32), 1)
        for lane in range(schema.n_lanes):
            ci = int(schema.lane_comp[lane])
            rows = d.added[pres[:, ci] != 0]
            if len(rows):
                bits = int(schema.lane_bits[lane])
                w.write_array(np.ascontiguousarray(cur.values[rows, lane]), bits)

    w.write_eg(len(d.changed), _COUNT_K)
    if len(d.changed):
        if len(d.added):
            survivors_pos = np.cumsum(d.cur_to_base >= 0) - 1  # position among survivors
            _write_column(w, _gaps(survivors_pos[d.changed]))
        else:
            _write_column(w, _gaps(d.changed))
        rows = d.changed
        brows = d.cur_to_base[rows]
        pch = d.presence_changed[rows]
        any_p = bool(pch.any())
        w.write(int(any_p), 1)
        if any_p:
            w.write_array(pch.astype(np.uint32), 1)
            flagged = rows[pch != 0]
            for ci in range(nc):
                w.write_array(np.ascontiguousarray(cur.presence[flagged, ci], np.uint32), 1)
        cur_has = cur.presence.take(rows, axis=0)
        base_has = base.presence.take(brows, axis=0)
        both = (cur_has != 0) & (base_has != 0)
        gained = (cur_has != 0) & (base_has == 0)
        value_changed = d.component_changed.take(rows, axis=0) != 0
        pc = schema.predicted_component
        pred_cols = schema.predicted_lanes
        pred_ref: U32 | None = None
        if nc > 1:
            _write_change_flags(w, value_changed & both, both)
        delta_mask = both & value_changed
        per_comp: dict[int, tuple[I64, I64, I64]] = {}  # rows coded as deltas / raw, per comp
        for lane in schema.lane_order:
            ci = int(schema.lane_comp[lane])
            bits = int(schema.lane_bits[lane])
            if ci not in per_comp:
                dsel = delta_mask[:, ci]
                per_comp[ci] = (rows[dsel], brows[dsel], rows[gained[:, ci]])
            drows, dbrows, grows = per_comp[ci]
            if len(drows):
                if ci == pc and age:
                    if pred_ref is None:
                        vc = schema.index_of[schema.prediction.velocity.id]  # type: ignore[union-attr]
                        pred_ref = schema.predict(
                            base.values, dbrows, cur.values, drows,
                            base.presence[dbrows, vc] != 0, cur.presence[drows, vc] != 0, age,
                        )
                    ref_rows = np.arange(len(drows), dtype=np.int64)
                    z = lane_deltas(
                        cur.values, pred_ref, drows, ref_rows, lane, bits, pred_cols[lane]
                    )
                else:
                    z = lane_deltas(cur.values, base.values, drows, dbrows, lane, bits)
                _write_column(w, z)
            if len(grows):
                w.write_array(np.ascontiguousarray(cur.values[grows, lane]), bits)
    return w.getvalue()


#: Bits of the longest exp-Golomb code of a 32-bit value (any order): 2 * 32 + 1.
_EG_MAX_BITS = 65
#: Bits of the longest count code (a count is up to 64 bits).
_COUNT_MAX_BITS = 129


def max_body_bytes(schema: ReplicationSchema, base_entities: int, max_added: int) -> int:
    """The most bytes :func:`encode_body` can write against a baseline of ``base_entities``
    adding at most ``max_added`` entities: what a receiver needs to inflate a compressed body
    at most (anything larger is a decompression bomb, however well it compresses).

    Every entity of the baseline is removed or changed (its position, presence and change
    flags, one worst-case delta per lane) and every added one costs its id and raw values.
    """
    nc, nl = schema.n_components, schema.n_lanes
    fixed = 3 * _COUNT_MAX_BITS + (nl + 4) * _ORDER_BITS + 1 + nc
    per_base = max(_EG_MAX_BITS, _EG_MAX_BITS + 2 + 2 * nc + nl * _EG_MAX_BITS)
    per_added = 2 * _EG_MAX_BITS + nc + schema.bits_per_entity
    return (fixed + base_entities * per_base + max_added * per_added + 7) // 8 + 8


def decode_body(
    schema: ReplicationSchema,
    body: bytes,
    base: Snapshot | None = None,
    tick: int | None = None,
    age: int | None = None,
) -> Snapshot:
    """Rebuild the snapshot that :func:`encode_body` encoded against ``base``.

    The result carries ``tick`` (default: the baseline's tick plus ``age``).

    Every count, position and value is checked against what the packet and the baseline can
    hold; anything inconsistent raises :class:`DecodeError`.
    """
    if base is None:
        base = Snapshot.empty(schema)
    if tick is None:
        tick = base.tick + (age or 0)
    if age is None:
        age = tick - base.tick
    nc = schema.n_components
    nl = schema.n_lanes
    r = BitReader(body)

    n_removed = r.read_eg(_COUNT_K)
    if n_removed > len(base):
        raise DecodeError(f"{n_removed} removals from a baseline of {len(base)}")
    removed = _ungaps(_read_column(r, n_removed), len(base), "removed") if n_removed else None
    keep = np.ones(len(base), bool)
    if removed is not None:
        keep[removed] = False
    surv = np.flatnonzero(keep)

    n_added = r.read_eg(_COUNT_K)
    if n_added * 2 > r.remaining:
        raise DecodeError(f"{n_added} added entities cannot fit in the packet")
    if n_added:
        idx = _ungaps(_read_column(r, n_added), 1 << 32, "entity index")
        gens = _read_column(r, n_added).astype(np.uint64)
        added_ids = (gens << np.uint64(32)) | idx.astype(np.uint64)
        if nc > 1:
            apres = np.empty((n_added, nc), np.uint8)
            for ci in range(nc):
                apres[:, ci] = r.read_array(n_added, 1)
            if not apres.any(axis=1).all():
                raise DecodeError("an added entity has no replicated component")
        else:
            apres = np.ones((n_added, 1), np.uint8)
    else:
        added_ids = np.zeros(0, np.uint64)
        apres = np.zeros((0, nc), np.uint8)

    surv_ids = base.entities[surv]
    if not n_added:  # the common delta: no merge needed
        ents = surv_ids
        surv_rows = np.arange(len(surv), dtype=np.int64)
        added_rows = np.zeros(0, np.int64)
        vals = base.values.take(surv, axis=0)
        pres = base.presence.take(surv, axis=0)
    else:
        # Merge survivors and added entities by index (a duplicate index is hostile).
        all_ids = np.concatenate([surv_ids, added_ids])
        order = np.argsort(all_ids & INDEX_MASK, kind="stable")
        ents = all_ids[order]
        if len(ents) > 1 and not (np.diff((ents & INDEX_MASK).astype(np.int64)) > 0).all():
            raise DecodeError("two entities with the same index")
        new_row = np.empty(len(all_ids), np.int64)
        new_row[order] = np.arange(len(all_ids))
        surv_rows = new_row[: len(surv)]
        added_rows = new_row[len(surv) :]
        vals = np.zeros((len(ents), nl), np.uint32)
        pres = np.zeros((len(ents), nc), np.uint8)
        vals[surv_rows] = base.values.take(surv, axis=0)
        pres[surv_rows] = base.presence.take(surv, axis=0)
        pres[added_rows] = apres
    for lane in range(nl):
        ci = int(schema.lane_comp[lane])
        sel = added_rows[apres[:, ci] != 0]
        if len(sel):
            vals[sel, lane] = r.read_array(len(sel), int(schema.lane_bits[lane]))

    n_changed = r.read_eg(_COUNT_K)
    if n_changed > len(surv):
        raise DecodeError(f"{n_changed} changed entities but {len(surv)} survivors")
    if n_changed:
        cpos = _ungaps(_read_column(r, n_changed), len(surv), "changed")
        rows = surv_rows[cpos]
        base_has = pres.take(rows, axis=0)
        if r.read(1):
            flags = r.read_array(n_changed, 1).astype(bool)
            flagged = rows[flags]
            newp = np.empty((len(flagged), nc), np.uint8)
            for ci in range(nc):
                newp[:, ci] = r.read_array(len(flagged), 1)
            if len(flagged) and not newp.any(axis=1).all():
                raise DecodeError("an entity lost every replicated component")
            pres[flagged] = newp
        cur_has = pres.take(rows, axis=0)
        both = (cur_has != 0) & (base_has != 0)
        gained = (cur_has != 0) & (base_has == 0)
        pc = schema.predicted_component
        pred_cols = schema.predicted_lanes
        pred_ref: U32 | None = None
        brows = surv[cpos]
        value_changed = _read_change_flags(r, both) if nc > 1 else both.copy()
        for lane in schema.lane_order:
            ci = int(schema.lane_comp[lane])
            bits = int(schema.lane_bits[lane])
            dmask = both[:, ci] & value_changed[:, ci]
            dsel = rows[dmask]
            if len(dsel):
                if ci == pc and age:
                    if pred_ref is None:
                        vc = schema.index_of[schema.prediction.velocity.id]  # type: ignore[union-attr]
                        pred_ref = schema.predict(
                            base.values, brows[dmask], vals, dsel,
                            base.presence[brows[dmask], vc] != 0, pres[dsel, vc] != 0, age,
                        )
                    vals[dsel, lane] = pred_ref[:, pred_cols[lane]]
                apply_lane_deltas(vals, dsel, lane, _read_column(r, len(dsel)), bits)
            gsel = rows[gained[:, ci]]
            if len(gsel):
                vals[gsel, lane] = r.read_array(len(gsel), bits)
        # A component the entity lost leaves zero lanes, as capture() would.
        lost = (pres[rows] == 0) & (base_has != 0)
        if lost.any():
            for lc in np.flatnonzero(lost.any(axis=0)):
                ci = int(lc)
                vals[np.ix_(rows[lost[:, ci]], np.arange(nl)[schema.lane_slices[ci]])] = 0

    if r.remaining >= 8:
        raise DecodeError(f"{r.remaining // 8} trailing bytes after the body")
    return Snapshot(ents, pres, vals, tick)


def merge_selected(base: Snapshot, cur: Snapshot, d: Diff, send: npt.NDArray[np.bool_]) -> Snapshot:
    """The state a receiver holds after a delta that carries only the ``send`` rows of ``cur``.

    Removals always travel (they are cheap and keep the receiver honest); an added row not
    selected stays absent; a changed row not selected keeps its baseline value.
    """
    matched = d.cur_to_base >= 0
    include = matched | send
    rows = np.flatnonzero(include)
    ents = cur.entities[rows]
    pres = cur.presence.take(rows, axis=0)
    vals = cur.values.take(rows, axis=0)
    hold = matched[rows] & ~send[rows]
    if hold.any():
        b = d.cur_to_base[rows[hold]]
        pres[hold] = base.presence[b]
        vals[hold] = base.values[b]
    return Snapshot(ents, pres, vals, cur.tick)
