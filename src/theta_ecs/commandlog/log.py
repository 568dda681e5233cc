"""The command log: a signed, guarded, persistent set of entries in one total order.

Sans-I/O: :meth:`CommandLog.flush` returns packets (bytes) to send, :meth:`CommandLog.receive`
takes packets that arrived and returns packets to send back (sync answers). Remote input never
raises: every refusal is a counted drop. Local misuse (a command one's role forbids, a payload
too large, a flood) raises a typed error.

Integration of an entry: guards (payload size, signature, replay window, rate, role, command
type) → causal hold until the entry it was based on is present → per-scope fold
(:mod:`.conflicts`). What the fold changed is collected until :meth:`drain_changes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..interfaces import CommandStore
from ..telemetry import Telemetry
from .clock import MAX_CLOCK, LamportClock
from .conflicts import ConflictPolicy, Resolution, ScopeLog, Strategy
from .entry import (
    MAX_BATCH_ENTRIES,
    MAX_PACKET_ITEMS,
    NO_BASE,
    Entry,
    EntryId,
    PacketType,
    Scope,
    SignedBatch,
    decode_batch,
    decode_packet,
    encode_batch_body,
    encode_batches_packet,
    encode_sync_packet,
)
from .errors import (
    CommandLogError,
    CommandPayloadError,
    DecodeError,
    RateLimitedError,
    SignatureError,
    StoreCorruptError,
    UnknownAuthorError,
)
from .guards import GuardConfig, PayloadGuard, SequenceWindow, SeqVerdict, TokenBucket
from .roles import Permissions, Role, Roster
from .signing import Signer

Validator = Callable[[Entry], None]


@dataclass(frozen=True)
class CommandType:
    """A kind of command: the least role it needs, and a check of its scope and payload
    (raises CommandPayloadError) that every peer runs alike."""

    kind: str
    role: Role
    validate: Validator


@dataclass(frozen=True)
class Rejection:
    """An entry the conflict fold refused; its author is told through :class:`Changes`."""

    entry: Entry
    reason: str


@dataclass
class Changes:
    """What integration changed since the last :meth:`CommandLog.drain_changes`."""

    own_author: int = 0
    groups: set[tuple[int, int]] = field(default_factory=set)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def own_rejections(self) -> list[Rejection]:
        """Rejections of the local author's commands: what to tell the user."""
        return [r for r in self.rejections if r.entry.author == self.own_author]


#: Largest encoded packet :meth:`CommandLog.flush` produces (a reliable stream splits it further).
PACKET_BUDGET = 256 * 1024


class CommandLog:
    """Entries of every author, verified and ordered by (Lamport clock, author, seq)."""

    def __init__(
        self,
        roster: Roster,
        signer: Signer | None = None,
        *,
        permissions: Permissions | None = None,
        policy: ConflictPolicy | None = None,
        guards: GuardConfig | None = None,
        store: CommandStore | None = None,
        telemetry: Telemetry | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.roster = roster
        self.signer = signer
        self.permissions = permissions if permissions is not None else Permissions()
        self.policy = policy if policy is not None else ConflictPolicy()
        self.config = guards if guards is not None else GuardConfig()
        self.payload_guard = PayloadGuard(self.config.max_payload, self.config.max_packet)
        self.store = store
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.clock = LamportClock()
        self._now = now
        self._types: dict[str, CommandType] = {}
        self._entries: dict[EntryId, Entry] = {}
        self._order: list[Entry] = []
        self._order_sorted = True
        self._scopes: dict[tuple[int, int], ScopeLog] = {}
        self._windows: dict[int, SequenceWindow] = {}
        self._buckets: dict[int, TokenBucket] = {}
        self._pending: dict[EntryId, list[Entry]] = {}
        self._pending_count = 0
        self._outgoing: list[Entry] = []
        self._batches: dict[int, list[tuple[int, bytes]]] = {}  # author -> (max seq, raw)
        self._changes = Changes(signer.author if signer else 0)
        self._reported_rejections: set[EntryId] = set()
        self._reported_conflicts: set[EntryId] = set()
        self._drained: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._seq = 0
        self._next_sync_answer = float("-inf")
        self._sync_requested_at = float("-inf")
        if signer is not None and signer.author not in roster:
            raise UnknownAuthorError(f"the local author {signer.author:016x} is not in the roster")

    # -- configuration --------------------------------------------------------------------------
    def register(self, ctype: CommandType) -> None:
        """Declare a command type; its role becomes the permission unless the table (shared
        configuration) already says otherwise."""
        self._types[ctype.kind] = ctype
        if self.permissions.required(ctype.kind) is None:
            self.permissions.require(ctype.kind, ctype.role)

    @property
    def author(self) -> int:
        if self.signer is None:
            raise CommandLogError("this log has no signer: it can only receive")
        return self.signer.author

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: EntryId) -> Entry | None:
        return self._entries.get(entry_id)

    def ordered(self) -> list[Entry]:
        """Every integrated entry in the total order (identical on every peer with the same set)."""
        if not self._order_sorted:
            self._order.sort(key=lambda e: e.key)
            self._order_sorted = True
        return list(self._order)

    def resolution(self, group: tuple[int, int]) -> Resolution:
        scope = self._scopes.get(group)
        return scope.resolution if scope is not None else Resolution()

    def head(self, scope: Scope) -> EntryId:
        """The base a new command on ``scope`` should carry."""
        return self.resolution(scope.group).head

    def strategy(self, scope: Scope) -> Strategy:
        """The strategy folding ``scope`` (fixed when its first entry arrived)."""
        existing = self._scopes.get(scope.group)
        return existing.strategy if existing is not None else self.policy.strategy_for(scope)

    @property
    def pending(self) -> int:
        """Entries held until the entry they were based on arrives."""
        return self._pending_count

    def version_vector(self) -> dict[int, int]:
        """Per author, the sequence number below which this log holds every entry."""
        return {a: w.floor for a, w in self._windows.items()}

    # -- local commands -------------------------------------------------------------------------
    def append(self, kind: str, scope: Scope, payload: bytes, base: EntryId | None = None) -> Entry:
        """Issue a local command: checked, ordered and integrated now, signed at :meth:`flush`."""
        author = self.author
        ctype = self._types.get(kind)
        if ctype is None:
            raise CommandPayloadError(f"unknown command type {kind!r}")
        self.permissions.check(self.roster.role_of(author), kind)
        if not self.payload_guard.payload_ok(len(payload)):
            self.telemetry.count("payload_guard_drops")
            raise CommandPayloadError(
                f"payload of {len(payload)} bytes exceeds the {self.config.max_payload}-byte guard"
            )
        entry = Entry(
            self.clock.value + 1, author, self._seq + 1, kind, scope, bytes(payload),
            self.head(scope) if base is None else base,
        )
        ctype.validate(entry)  # the same check remote peers run
        entry.encode()  # length limits
        if not self._bucket(author, local=True).take(self._now()):
            self.telemetry.count("rate_limit_drops")
            raise RateLimitedError(
                f"more than {self.config.local_rate:g} commands/s (burst "
                f"{self.config.local_burst:g}); try again next frame"
            )
        self.clock.tick()
        self._seq += 1
        self._window(author).mark(entry.seq)
        self._integrate(entry)
        self._outgoing.append(entry)
        self.telemetry.count("commands_appended")
        return entry

    def flush(self) -> list[bytes]:
        """Sign this frame's local entries, persist them, and return the packets to send.

        Entries are acknowledged (durable in the store) once this returns.
        """
        if not self._outgoing:
            return []
        signer = self.signer
        assert signer is not None
        out = self._outgoing
        raws: list[bytes] = []
        sealed: list[tuple[int, bytes]] = []
        t0 = time.perf_counter()
        for i in range(0, len(out), MAX_BATCH_ENTRIES):
            chunk = tuple(out[i : i + MAX_BATCH_ENTRIES])
            body = encode_batch_body(signer.author, chunk)
            raw = body + signer.sign(body)
            raws.append(raw)
            sealed.append((chunk[-1].seq, raw))
        self.telemetry.gauge("command_sign_ms", (time.perf_counter() - t0) * 1e3)
        if self.store is not None:
            self.store.append(raws)  # on StoreError the entries stay queued for the next flush
        self._outgoing = []
        self._batches.setdefault(signer.author, []).extend(sealed)
        self.telemetry.count("commands_sent", len(out))
        return _pack(raws)

    # -- remote packets -------------------------------------------------------------------------
    def receive(self, packet: bytes) -> list[bytes]:
        """Integrate a packet from a peer; returns packets to send back to it (maybe none)."""
        if not self.payload_guard.packet_ok(len(packet)):
            self.telemetry.count("payload_guard_drops")
            return []
        try:
            decoded = decode_packet(packet)
        except DecodeError:
            self.telemetry.count("malformed_packets")
            return []
        if decoded.type is PacketType.SYNC:
            now = self._now()
            if now < self._next_sync_answer:
                self.telemetry.count("sync_rate_drops")
                return []
            self._next_sync_answer = now + self.config.sync_answer_interval_s
            return self._answer_sync(dict(decoded.floors))
        now = self._now()
        solicited = (
            decoded.type is PacketType.SYNC_ANSWER
            and now - self._sync_requested_at <= self.config.sync_answer_window_s
        )
        # an answer to our own sync resends entries we may hold: not an attack, counted apart
        dup_counter = "sync_duplicates" if solicited else "replay_rejections"
        kept: list[bytes] = []
        for raw in decoded.batches:
            if self._ingest(raw, now, restoring=False, dup_counter=dup_counter):
                kept.append(raw)
        if kept and self.store is not None:
            self.store.append(kept)
        self._gauges()
        return []

    def sync_request(self) -> bytes:
        """A packet asking a peer for every entry this log lacks (after a restart or a drop)."""
        self._sync_requested_at = self._now()
        return encode_sync_packet(self.version_vector())

    def _answer_sync(self, floors: dict[int, int]) -> list[bytes]:
        raws = [
            raw
            for author, batches in sorted(self._batches.items())
            for max_seq, raw in batches
            if max_seq > floors.get(author, 0)
        ]
        return _pack(raws, answer=True)

    def _ingest(
        self, raw: bytes, now: float, *, restoring: bool, dup_counter: str = "replay_rejections"
    ) -> bool:
        """Guards and integration of one batch; True when it held a new entry worth storing."""
        tel = self.telemetry
        try:
            batch = decode_batch(raw)
        except DecodeError:
            if restoring:
                raise StoreCorruptError("the store holds an undecodable batch") from None
            tel.count("malformed_packets")
            return False
        n = len(batch.entries)
        if not all(self.payload_guard.payload_ok(len(e.payload)) for e in batch.entries):
            tel.count("payload_guard_drops", n)
            return False
        if batch.author not in self.roster:
            tel.count("permission_rejections", n)
            tel.count("unknown_author_drops", n)
            return False
        window = self._window(batch.author)
        if all(window.check(e.seq) is SeqVerdict.REPLAY for e in batch.entries):
            # nothing new: skip the signature check, so a replay flood costs no Ed25519 time
            if not restoring:
                tel.count(dup_counter, n)
            return False
        t0 = time.perf_counter()
        try:
            self.roster.verifier.verify(batch)
        except (SignatureError, UnknownAuthorError):
            if restoring:
                raise StoreCorruptError(
                    f"a stored batch from {batch.author:016x} fails its signature check"
                ) from None
            tel.count("signature_rejections", n)
            return False
        finally:
            elapsed = time.perf_counter() - t0
            tel.gauge("command_verify_us_per_entry", elapsed * 1e6 / n)
            tel.count("commands_verified", n)
        return self._admit(batch, now, restoring=restoring, dup_counter=dup_counter)

    def _admit(
        self, batch: SignedBatch, now: float, *, restoring: bool, dup_counter: str
    ) -> bool:
        tel = self.telemetry
        author = batch.author
        window = self._window(author)
        role = self.roster.role_of(author)
        fresh: list[Entry] = []
        for entry in batch.entries:
            verdict = window.check(entry.seq)
            if verdict is SeqVerdict.REPLAY:
                if not restoring:
                    tel.count(dup_counter)
                continue
            if verdict is SeqVerdict.TOO_FAR:
                tel.count("sequence_window_drops")
                continue
            fresh.append(entry)
        if not fresh:
            return False
        if not restoring:
            bucket = self._bucket(author, local=False)
            allowed = 0
            while allowed < len(fresh) and bucket.take(now):
                allowed += 1
            if allowed < len(fresh):
                tel.count("rate_limit_drops", len(fresh) - allowed)  # not marked seen: resendable
                fresh = fresh[:allowed]
        stored = False
        for entry in fresh:
            window.mark(entry.seq)
            if not self._acceptable(entry, role):
                continue
            stored = True
            if author == self._own_author():
                self._seq = max(self._seq, entry.seq)
            self._integrate(entry)
            tel.count("commands_received")
        if stored:
            self._batches.setdefault(author, []).append((batch.entries[-1].seq, batch.raw))
        return stored

    def _acceptable(self, entry: Entry, role: Role) -> bool:
        """Deterministic checks: every peer refuses the same entries (so they are marked seen)."""
        tel = self.telemetry
        ctype = self._types.get(entry.kind)
        if ctype is None:
            tel.count("unknown_command_drops")
            return False
        if not self.permissions.allowed(role, entry.kind):
            tel.count("permission_rejections")
            return False
        if entry.clock >= MAX_CLOCK:
            tel.count("invalid_command_drops")
            return False
        try:
            ctype.validate(entry)
        except CommandPayloadError:
            tel.count("invalid_command_drops")
            return False
        return True

    def _own_author(self) -> int:
        return self.signer.author if self.signer is not None else 0

    # -- integration ----------------------------------------------------------------------------
    def _integrate(self, entry: Entry) -> None:
        if entry.base != NO_BASE and entry.base not in self._entries:
            if self._pending_count >= self.config.max_pending:
                self.telemetry.count("pending_overflow_drops")
                return
            self._pending.setdefault(entry.base, []).append(entry)
            self._pending_count += 1
            return
        ready = [entry]
        while ready:
            e = ready.pop()
            if e.id in self._entries:
                continue
            self._entries[e.id] = e
            if self._order and self._order_sorted and e.key < self._order[-1].key:
                self._order_sorted = False
            self._order.append(e)
            self.clock.observe(e.clock)
            group = e.scope.group
            scope = self._scopes.get(group)
            if scope is None:
                scope = self._scopes[group] = ScopeLog(self.policy.strategy_for(e.scope))
            scope.add(e)
            self._changes.groups.add(group)
            waiting = self._pending.pop(e.id, None)
            if waiting:
                self._pending_count -= len(waiting)
                ready.extend(waiting)

    def drain_changes(self) -> Changes:
        """Groups whose resolution may have changed, and newly rejected entries, since last call.

        Counts ``command_conflicts`` and ``command_rejections`` (each entry once).
        """
        changes, self._changes = self._changes, Changes(self._own_author())
        tel = self.telemetry
        for group in sorted(changes.groups):
            scope = self._scopes[group]
            res = scope.resolution
            seen = self._drained.get(group)
            if seen is not None and seen[0] == scope.generation:
                rejected, conflicted = res.rejected[seen[1] :], res.conflicted[seen[2] :]
            else:  # first look, or refolded: the reported-id sets keep counts exact
                rejected, conflicted = res.rejected, res.conflicted
            self._drained[group] = (scope.generation, len(res.rejected), len(res.conflicted))
            for e in rejected:
                if e.id not in self._reported_rejections:
                    self._reported_rejections.add(e.id)
                    changes.rejections.append(Rejection(e, "conflicts with a concurrent command"))
                    tel.count("command_rejections")
                    tel.count("command_conflicts")
            for e in conflicted:
                if e.id not in self._reported_conflicts:
                    self._reported_conflicts.add(e.id)
                    tel.count("command_conflicts")
        return changes

    def _gauges(self) -> None:
        self.telemetry.gauge("command_pending", float(self._pending_count))
        self.telemetry.gauge("command_log_entries", float(len(self._entries)))

    def _window(self, author: int) -> SequenceWindow:
        w = self._windows.get(author)
        if w is None:
            w = self._windows[author] = SequenceWindow(self.config.window_span)
        return w

    def _bucket(self, author: int, *, local: bool) -> TokenBucket:
        key = author if not local else -1
        b = self._buckets.get(key)
        if b is None:
            rate, burst = (
                (self.config.local_rate, self.config.local_burst)
                if local
                else (self.config.rate, self.config.burst)
            )
            b = self._buckets[key] = TokenBucket(rate, burst, self._now())
        return b

    # -- persistence ----------------------------------------------------------------------------
    def restore(self) -> int:
        """Rebuild from the store (every batch re-verified); returns the entries integrated.

        Raises StoreCorruptError when a stored batch is undecodable or its signature fails.
        """
        if self.store is None:
            return 0
        before = len(self._entries)
        now = self._now()
        for raw in self.store.load():
            self._ingest(raw, now, restoring=True)
        self._gauges()
        return len(self._entries) - before

    def restore_from(self, raws: Iterable[bytes]) -> None:
        """Integrate batches known to be good (e.g. exported from another log), unthrottled."""
        now = self._now()
        for raw in raws:
            self._ingest(raw, now, restoring=True)

    def export(self) -> list[bytes]:
        """Every batch this log holds (what a sync from zero would send)."""
        return [raw for _, batches in sorted(self._batches.items()) for _, raw in batches]


def _pack(raws: list[bytes], *, answer: bool = False) -> list[bytes]:
    """Batches grouped into packets of at most PACKET_BUDGET bytes (a lone big batch goes alone)."""
    packets: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for raw in raws:
        if group and (size + len(raw) > PACKET_BUDGET or len(group) >= MAX_PACKET_ITEMS):
            packets.append(encode_batches_packet(group, answer=answer))
            group, size = [], 0
        group.append(raw)
        size += len(raw) + 4
    if group:
        packets.append(encode_batches_packet(group, answer=answer))
    return packets

