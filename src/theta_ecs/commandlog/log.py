"""The command log: a signed, guarded, persistent set of entries in one total order.

Sans-I/O: :meth:`CommandLog.flush` returns packets (bytes) to send, :meth:`CommandLog.receive`
takes packets that arrived and returns packets to send back (sync answers). Remote input never
raises: every refusal is a counted drop. Local misuse (a command one's role forbids, a payload
too large, a flood) raises a typed error.

Integration of an entry: guards (payload size, signature, replay window, rate, command type)
→ causal hold until the entry it was based on is present → per-scope fold (:mod:`.conflicts`),
which also denies entries whose author lacked the role at their place in the order (roles change
through admin-signed grant/revoke commands, :mod:`.roles`). What the fold changed is collected
until :meth:`drain_changes`.

Entries already seen are sorted out before any signature check:

- ``duplicates_dropped``: an exact copy of an entry this log holds or refused (the network
  duplicated it, or a peer resent it): harmless, nothing to see;
- ``sync_duplicates``: the same, inside an answer to this log's own sync request;
- ``covered_drops``: an entry a checkpoint here already covers (its effect is in the checkpoint,
  its bytes are gone, so it cannot be compared): harmless;
- ``replay_rejections``: an entry reusing an (author, seq) this log holds with *different*
  content: a forgery, an equivocating author, or an author that lost its store and reuses
  sequence numbers. Never benign: this counter means an attack or a broken peer.

An author that signs two valid versions of one (author, seq) (an equivocation) would split peers
that integrated different ones. Once a log holds one version and receives another that passes
the same deterministic checks, it counts ``equivocations``, withdraws the version it held (the
id then counts as present, so entries based on it still integrate) and keeps both signed
batches as the proof: they go out with its next :meth:`CommandLog.flush` and in every sync
answer, so every peer they reach withdraws it too, whatever order the versions arrived in. A
version the checks refused never counted: another version of that seq is judged as new.
(Two peers that each hold one version and only sync with each other do not find out; a peer
that saw both, such as the server relaying them, tells them.)

An entry whose author has no role at its place in the order as this log knows it (revoked before
it, or never granted) is not stored, nor marked seen: counted ``revoked_drops``, it waits in a
quarantine bounded in bytes (``GuardConfig.max_quarantine_bytes``, oldest evicted and counted
``quarantine_evictions``) in case a grant ordered before it arrives, and its digest is kept so
resends cost no signature check. A log that held such entries when the revoke arrived moves
them there too, so every peer holds the same entries. Only an entry evicted under a flood needs
a resend (or a sync) to come back after such a grant.

Checkpoints (:mod:`.checkpoint`, :meth:`CommandLog.checkpoint`) compact the history: an admin
signs the folded state of every entry up to per-author floors; every log that applies it drops
the covered entries in memory and in its store, and answers a sync from below the checkpoint
with the checkpoint first and the entries after it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from ..interfaces import CommandStore
from ..telemetry import Telemetry
from .checkpoint import (
    Checkpoint,
    Retain,
    decode_checkpoint,
    encode_checkpoint_body,
    is_checkpoint,
    keep_none,
    retain,
)
from .clock import MAX_CLOCK, MAX_CLOCK_STEP, LamportClock
from .conflicts import ConflictPolicy, Resolution, ScopeLog, Strategy
from .entry import (
    MAX_BATCH_ENTRIES,
    MAX_PACKET_ITEMS,
    NO_BASE,
    U64,
    Entry,
    EntryId,
    PacketType,
    Scope,
    SignedBatch,
    decode_batch,
    decode_packet,
    encode_batch_body,
    encode_batches_packet,
    encode_checkpoint_packet,
    encode_sync_packet,
    packet_type,
)
from .errors import (
    CheckpointError,
    CommandLogError,
    CommandPayloadError,
    DecodeError,
    PermissionDeniedError,
    RateLimitedError,
    SignatureError,
    StoreCorruptError,
    UnknownAuthorError,
)
from .guards import GuardConfig, PayloadGuard, SequenceWindow, SeqVerdict, TokenBucket
from .roles import (
    GRANT,
    REVOKE,
    ROLES_SCOPE,
    Permissions,
    Role,
    RoleTimeline,
    Roster,
    StartRoles,
    check_grant,
    check_revoke,
    grant_payload,
    revoke_payload,
)
from .signing import CHECKPOINT_DOMAIN, Signer, Verifier, verify_signature

Validator = Callable[[Entry], None]


@dataclass(frozen=True)
class CommandType:
    """A kind of command: the least role it needs, a check of its scope and payload (raises
    CommandPayloadError) that every peer runs alike, and what a checkpoint must keep of its
    accepted entries in one scope (None: all of them; see :mod:`.checkpoint`)."""

    kind: str
    role: Role
    validate: Validator
    retain: Retain | None = None


#: Role changes, built into every log (admins only).
ROLE_COMMANDS = (
    CommandType(GRANT, Role.ADMIN, check_grant, keep_none),
    CommandType(REVOKE, Role.ADMIN, check_revoke, keep_none),
)


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


#: The sync-request item that names the asker's checkpoint (author 0 is never an author).
_CHECKPOINT_ITEM = 0

#: Sources whose sync-answer throttle is remembered before the expired ones are forgotten.
_MAX_SYNC_SOURCES = 4096

#: Entries refused for their author's lack of a role whose digests are kept (oldest forgotten).
_MAX_REVOKED_HELD = 1 << 16

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
        joining: bool = False,
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
        self._pending: dict[EntryId, dict[EntryId, Entry]] = {}  # base -> entries waiting on it
        self._pending_of: dict[int, dict[EntryId, Entry]] = {}  # author -> its waiting entries
        self._pending_count = 0
        self._outgoing: list[Entry] = []
        self._batches: dict[int, list[tuple[int, bytes]]] = {}  # author -> (max seq, raw)
        self._changes = Changes(signer.author if signer else 0)
        self._reported_rejections: set[EntryId] = set()
        self._reported_conflicts: set[EntryId] = set()
        self._drained: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._seq = 0
        # per source given to receive(): when its next sync request may be answered
        self._next_sync_answer: dict[Hashable | None, float] = {}
        self._sync_requested_at = float("-inf")
        self._waste: dict[Hashable, TokenBucket] = {}  # per named source: wasted signature checks
        # digests of entries the admission refused (to tell a duplicate from a replay; the
        # entries themselves are not kept, so refused junk costs no payload memory)
        self._refused: dict[EntryId, bytes] = {}
        self._pending_ids: dict[EntryId, Entry] = {}
        # equivocated ids: the digests of their versions, and the signed batches proving it
        self._equivocated: dict[EntryId, set[bytes]] = {}
        self._proofs: dict[EntryId, tuple[bytes, ...]] = {}
        self._proof_out: list[bytes] = []
        # entries refused because their author had no role there: digests only, bounded
        self._revoked_held: dict[EntryId, bytes] = {}
        self._quarantine: dict[EntryId, tuple[Entry, bytes]] = {}  # ... and the entries, bounded
        self._quarantine_bytes = 0
        # checkpoints refused for a signer not (yet) known as an admin: tried again on role changes
        self._deferred_cps: list[bytes] = []
        self._retrying = False
        self._author_groups: dict[int, set[tuple[int, int]]] = {}
        self._reported_denials: set[EntryId] = set()
        self._checkpoint: Checkpoint | None = None
        self._cp_floors: dict[int, int] = {}
        # role changes: integrated grant/revoke entries after the checkpoint, folded in order
        self._role_entries: dict[EntryId, Entry] = {}
        self._start_roles = StartRoles(roster)
        self._cp_keys: dict[int, bytes] = {}  # members a checkpoint admitted (not in the roster)
        self._timeline = RoleTimeline(self._start_roles, self._start_keys())
        self._admitted = Verifier()  # keys of members the roster lacks (granted in the log)
        for ctype in ROLE_COMMANDS:
            self.register(ctype)
        if signer is not None and signer.author not in roster and not joining:
            raise UnknownAuthorError(
                f"the local author {signer.author:016x} is not in the roster (pass joining=True "
                "if a grant in the log admits it)"
            )

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
        """Entries held: those a checkpoint retained and every later one (denied ones too: a
        grant ordered before them may still arrive)."""
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: EntryId) -> Entry | None:
        return self._entries.get(entry_id)

    def ordered(self) -> list[Entry]:
        """Every entry held, in the total order (identical on every peer holding the same
        entries and the same checkpoint)."""
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
        return existing.strategy if existing is not None else self._strategy_for(scope)

    @property
    def pending(self) -> int:
        """Entries held until the entry they were based on arrives."""
        return self._pending_count

    def version_vector(self) -> dict[int, int]:
        """Per author, the sequence number below which this log holds every entry."""
        return {a: w.floor for a, w in self._windows.items()}

    def role_of(self, author: int, at: tuple[int, int, int] | None = None) -> Role | None:
        """The author's role after every role change in the log, or for an entry at key ``at``
        (None: revoked or never admitted)."""
        if at is None:
            return self._timeline.role(author)
        return self._timeline.role_at(author, at)

    @property
    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint this log's history starts from (None: it holds all history)."""
        return self._checkpoint

    # -- local commands -------------------------------------------------------------------------
    def append(self, kind: str, scope: Scope, payload: bytes, base: EntryId | None = None) -> Entry:
        """Issue a local command: checked, ordered and integrated now, signed at :meth:`flush`."""
        author = self.author
        ctype = self._types.get(kind)
        if ctype is None:
            raise CommandPayloadError(f"unknown command type {kind!r}")
        self.permissions.check(self._timeline.role(author), kind)
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

    def grant(self, public_key: bytes, role: Role) -> Entry:
        """Give the author of ``public_key`` a role from this point of the order on (admins only;
        a key the roster lacks is admitted by it)."""
        return self.append(GRANT, ROLES_SCOPE, grant_payload(public_key, role))

    def revoke(self, author: int) -> Entry:
        """Take every role from ``author`` from this point of the order on (admins only): its
        later commands are refused by every peer."""
        return self.append(REVOKE, ROLES_SCOPE, revoke_payload(author))

    def flush(self) -> list[bytes]:
        """Sign this frame's local entries, persist them, and return the packets to send.

        Entries are acknowledged (durable in the store) once this returns. Proofs of
        equivocations found since the last call go out too (see the module doc).
        """
        proofs, self._proof_out = self._proof_out, []
        tail = _pack(list(dict.fromkeys(proofs))) if proofs else []
        if not self._outgoing:
            return tail
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
        return _pack(raws) + tail

    # -- remote packets -------------------------------------------------------------------------
    def receive(self, packet: bytes, source: Hashable | None = None) -> list[bytes]:
        """Integrate a packet from a peer; returns packets to send back to it (maybe none).

        ``source`` names the peer it came from (e.g. a session id): sync requests are answered
        at most once per ``sync_answer_interval_s`` per source, so one peer asking in a loop
        cannot use up the answers other peers need to catch up, and a named source may waste
        only so much signature work (``GuardConfig.source_waste_rate``) before its batches are
        dropped ahead of the check. Batches from an author already over its rate are dropped
        before the check too, whatever their source.
        """
        limit_ok = (
            len(packet) <= self.config.max_checkpoint
            if packet_type(packet) == PacketType.CHECKPOINT
            else self.payload_guard.packet_ok(len(packet))
        )
        if not limit_ok:
            self.telemetry.count("payload_guard_drops")
            return []
        try:
            decoded = decode_packet(packet)
        except DecodeError:
            self.telemetry.count("malformed_packets")
            return []
        if decoded.type is PacketType.CHECKPOINT:
            self._receive_checkpoint(decoded.batches[0], restoring=False)
            self._gauges()
            return []
        if decoded.type is PacketType.SYNC:
            now = self._now()
            if now < self._next_sync_answer.get(source, float("-inf")):
                self.telemetry.count("sync_rate_drops")
                return []
            if len(self._next_sync_answer) >= _MAX_SYNC_SOURCES:
                self._next_sync_answer = {
                    s: t for s, t in self._next_sync_answer.items() if t > now
                }
            self._next_sync_answer[source] = now + self.config.sync_answer_interval_s
            return self._answer_sync(dict(decoded.floors))
        now = self._now()
        solicited = (
            decoded.type is PacketType.SYNC_ANSWER
            and now - self._sync_requested_at <= self.config.sync_answer_window_s
        )
        # an answer to our own sync resends entries we may hold: expected, counted apart
        dup_counter = "sync_duplicates" if solicited else "duplicates_dropped"
        kept: list[bytes] = []
        for raw in decoded.batches:
            if self._ingest(raw, now, restoring=False, dup_counter=dup_counter, source=source):
                kept.append(raw)
        if kept and self.store is not None:
            self.store.append(kept)
        self._gauges()
        return []

    def sync_request(self) -> bytes:
        """A packet asking a peer for every entry this log lacks (after a restart or a drop),
        and for its newest checkpoint when this log does not hold it yet."""
        self._sync_requested_at = self._now()
        vector = self.version_vector()
        vector[_CHECKPOINT_ITEM] = self._checkpoint_weight()
        return encode_sync_packet(vector)

    def _checkpoint_weight(self) -> int:
        """Grows with every newer checkpoint (their floors dominate the older ones')."""
        return min(sum(self._cp_floors.values()), U64)

    def _answer_sync(self, floors: dict[int, int]) -> list[bytes]:
        """What the asker lacks: the checkpoint first when it is behind it, then batches."""
        out: list[bytes] = []
        cp = self._checkpoint
        behind = floors.get(_CHECKPOINT_ITEM, 0) < self._checkpoint_weight()
        if cp is not None and (behind or any(floors.get(a, 0) < f for a, f in cp.floors)):
            out.append(encode_checkpoint_packet(cp.raw))
        raws = [
            raw
            for author, batches in sorted(self._batches.items())
            for max_seq, raw in batches
            if max_seq > floors.get(author, 0)
        ]
        # proofs of equivocation go to every asker: its floors cannot tell which version it holds
        raws.extend(r for proof in self._proofs.values() for r in proof)
        return out + _pack(list(dict.fromkeys(raws)), answer=True)

    def _ingest(
        self,
        raw: bytes,
        now: float,
        *,
        restoring: bool,
        dup_counter: str = "duplicates_dropped",
        source: Hashable | None = None,
    ) -> bool:
        """Guards and integration of one batch; True when it held a new entry worth storing."""
        tel = self.telemetry
        if restoring and is_checkpoint(raw):
            self._receive_checkpoint(raw, restoring=True)
            return False
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
        verifier = self.roster.verifier
        if not verifier.knows(batch.author):
            verifier = self._admitted
            if not verifier.knows(batch.author):
                # not marked seen: a grant may admit the author later, and a sync resend it
                tel.count("permission_rejections", n)
                tel.count("unknown_author_drops", n)
                return False
        window = self._window(batch.author)
        if all(self._settled(window, e) for e in batch.entries):
            # nothing new: skip the signature check, so a replay flood costs no Ed25519 time
            if not restoring:
                for entry in batch.entries:
                    tel.count(self._seen_verdict(entry, dup_counter))
            return False
        waste = None
        if not restoring:
            if source is not None:
                waste = self._waste_bucket(source, now)
                if waste.available(now) < 1:
                    tel.count("source_rate_drops", n)  # not marked seen: resendable
                    return False
            if self._bucket(batch.author, local=False).available(now) < 1 and any(
                window.check(e.seq) is SeqVerdict.NEW for e in batch.entries
            ):
                tel.count("rate_limit_drops", n)  # over its author's rate: no signature work
                return False
        t0 = time.perf_counter()
        try:
            verifier.verify(batch)
        except (SignatureError, UnknownAuthorError):
            if restoring:
                raise StoreCorruptError(
                    f"a stored batch from {batch.author:016x} fails its signature check"
                ) from None
            tel.count("signature_rejections", n)
            if waste is not None:
                waste.take(now)
            return False
        finally:
            elapsed = time.perf_counter() - t0
            tel.gauge("command_verify_us_per_entry", elapsed * 1e6 / n)
        tel.count("commands_verified", n)  # only entries whose signature checked out
        kept = self._admit(batch, now, restoring=restoring, dup_counter=dup_counter)
        if not kept and waste is not None:
            waste.take(now)
        return kept

    def _waste_bucket(self, source: Hashable, now: float) -> TokenBucket:
        """The signature work ``source`` may still waste (see GuardConfig.source_waste_rate)."""
        bucket = self._waste.get(source)
        if bucket is None:
            if len(self._waste) >= _MAX_SYNC_SOURCES:  # forget the sources back at full budget
                self._waste = {
                    s: b for s, b in self._waste.items() if b.available(now) < b.burst
                }
            bucket = self._waste[source] = TokenBucket(
                self.config.source_waste_rate, self.config.source_waste_burst, now
            )
        return bucket

    def _admit(
        self, batch: SignedBatch, now: float, *, restoring: bool, dup_counter: str
    ) -> bool:
        tel = self.telemetry
        author = batch.author
        window = self._window(author)
        fresh: list[Entry] = []
        proved = False
        for entry in batch.entries:
            verdict = window.check(entry.seq)
            if verdict is SeqVerdict.REPLAY:
                if self._unjudged_version(entry):
                    held = self._entries.get(entry.id) or self._pending_ids.get(entry.id)
                    if held is None:  # the version seen here was refused: judge this one
                        fresh.append(entry)
                    elif self._acceptable(entry):
                        self._equivocation(held, entry, batch.raw)
                        proved = True
                    elif not restoring:  # an invalid second version: the held one stands
                        tel.count("replay_rejections")
                    continue
                if not restoring:
                    tel.count(self._seen_verdict(entry, dup_counter))
                continue
            if verdict is SeqVerdict.TOO_FAR:
                tel.count("sequence_window_drops")
                continue
            fresh.append(entry)
        if proved and not fresh:
            self._batches.setdefault(author, []).append((batch.entries[-1].seq, batch.raw))
            return True
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
            if self._timeline.role_at(author, entry.key) is None:
                # revoked before it (as far as this log knows): not stored, not marked seen
                self._refuse_revoked(entry, batch.raw)
                continue
            window.mark(entry.seq)
            if not self._acceptable(entry):
                self._refused[entry.id] = _digest(entry)
                continue
            stored = True
            self._refused.pop(entry.id, None)
            if author == self._own_author():
                self._seq = max(self._seq, entry.seq)
            self._integrate(entry)
            tel.count("commands_received")
        if stored or proved:
            self._batches.setdefault(author, []).append((batch.entries[-1].seq, batch.raw))
        return stored or proved

    def _settled(self, window: SequenceWindow, entry: Entry) -> bool:
        """Whether ``entry`` was judged before, so its batch needs no signature check for it:
        a seen seq (unless another version of it), or a copy of one refused for its author's
        lack of a role."""
        revoked = self._revoked_held.get(entry.id)
        if revoked is not None and revoked == _digest(entry):
            return True
        return window.check(entry.seq) is SeqVerdict.REPLAY and not self._unjudged_version(entry)

    def _unjudged_version(self, entry: Entry) -> bool:
        """Whether ``entry``, of a seq already seen, is a version this log has not judged: other
        content than the entry it holds (an equivocation, if it is valid), or than the version
        it refused (which never counted). Only then is its signature worth checking."""
        if entry.id in self._equivocated or entry.seq <= self._cp_floors.get(entry.author, 0):
            return False
        held = self._entries.get(entry.id) or self._pending_ids.get(entry.id)
        if held is not None:
            return held != entry
        refused = self._refused.get(entry.id)
        return refused is not None and refused != _digest(entry)

    def _equivocation(self, held: Entry, other: Entry, raw: bytes) -> None:
        """Two valid signed versions of one id: withdraw the held one, keep and send the proof."""
        eid = held.id
        self._equivocated[eid] = {_digest(held), _digest(other)}
        encoded = held.encode()
        held_raw = next(
            (r for m, r in self._batches.get(held.author, ()) if m >= held.seq and encoded in r),
            None,
        )
        proof = (raw,) if held_raw is None else (held_raw, raw)
        self._proofs[eid] = proof
        self._proof_out.extend(proof)
        self.telemetry.count("equivocations")
        if self._withdraw(held):
            self._refold_roles()
        self._release(eid)  # the id now counts as present

    def _withdraw(self, held: Entry) -> bool:
        """Take a held or pending entry out of the log; True when it was a role change (the
        caller refolds the roles)."""
        eid = held.id
        if self._pending_ids.pop(eid, None) is not None:
            mine = self._pending_of[held.author]
            del mine[eid]
            if not mine:
                del self._pending_of[held.author]
            siblings = self._pending[held.base]
            del siblings[eid]
            if not siblings:
                del self._pending[held.base]
            self._pending_count -= 1
            return False
        del self._entries[eid]
        self._order.remove(held)
        group = held.scope.group
        self._scopes[group].discard(held)
        self._changes.groups.add(group)
        return self._role_entries.pop(eid, None) is not None

    def _release(self, entry_id: EntryId) -> None:
        """Integrate the entries waiting on ``entry_id`` (it counts as present now)."""
        waiting = self._pending.pop(entry_id, None)
        if waiting:
            self._pending_count -= len(waiting)
            for e in sorted(waiting.values(), key=lambda e: e.key):
                self._integrate(e)

    def _refuse_revoked(self, entry: Entry, raw: bytes) -> None:
        """Set aside an entry whose author had no role there (see the module doc): its digest,
        and the entry with its signed batch in the bounded quarantine; entries based on it are
        not held back for it."""
        self.telemetry.count("revoked_drops")
        if len(self._revoked_held) >= _MAX_REVOKED_HELD:
            del self._revoked_held[next(iter(self._revoked_held))]
        self._revoked_held[entry.id] = _digest(entry)
        if entry.id not in self._quarantine:
            self._quarantine[entry.id] = (entry, raw)
            self._quarantine_bytes += len(raw)
            while self._quarantine_bytes > self.config.max_quarantine_bytes:
                _, old = self._quarantine.pop(next(iter(self._quarantine)))  # the oldest
                self._quarantine_bytes -= len(old)
                self.telemetry.count("quarantine_evictions")
        self._release(entry.id)

    def _rejudge(self, authors: set[int]) -> None:
        """Quarantined entries of ``authors`` that have a role at their place now (a grant
        before them arrived) join the log."""
        back = [
            (e, raw)
            for e, raw in self._quarantine.values()
            if e.author in authors and self._timeline.role_at(e.author, e.key) is not None
        ]
        for e, raw in sorted(back, key=lambda item: item[0].key):
            del self._quarantine[e.id]
            self._quarantine_bytes -= len(raw)
            self._revoked_held.pop(e.id, None)
            window = self._window(e.author)
            if window.check(e.seq) is not SeqVerdict.NEW:
                continue  # a checkpoint covered it meanwhile
            window.mark(e.seq)
            if not self._acceptable(e):
                self._refused[e.id] = _digest(e)
                continue
            batches = self._batches.setdefault(e.author, [])
            if raw and all(r != raw for _, r in batches):
                batches.append((max(x.seq for x in decode_batch(raw).entries), raw))
                if self.store is not None:
                    self.store.append([raw])
            self._integrate(e)

    def _seen_verdict(self, entry: Entry, dup_counter: str) -> str:
        """The counter for an entry whose (author, seq) was seen before (see the module doc)."""
        if entry.id in self._revoked_held:
            return "revoked_drops"
        versions = self._equivocated.get(entry.id)
        if versions is not None:
            return dup_counter if _digest(entry) in versions else "replay_rejections"
        known = self._entries.get(entry.id) or self._pending_ids.get(entry.id)
        if known is not None:
            return dup_counter if known == entry else "replay_rejections"
        refused = self._refused.get(entry.id)
        if refused is not None:
            return dup_counter if refused == _digest(entry) else "replay_rejections"
        if entry.seq <= self._cp_floors.get(entry.author, 0):
            return "covered_drops"
        return "replay_rejections"

    def _acceptable(self, entry: Entry) -> bool:
        """Deterministic checks of the entry alone: every peer refuses the same entries (so they
        are marked seen). The role check depends on the order, so the fold makes it."""
        tel = self.telemetry
        ctype = self._types.get(entry.kind)
        if ctype is None:
            tel.count("unknown_command_drops")
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
    def _present(self, entry_id: EntryId) -> bool:
        """Whether a base is here: held, or folded into the checkpoint."""
        return (
            entry_id in self._entries
            or entry_id.seq <= self._cp_floors.get(entry_id.author, 0)
            or entry_id in self._equivocated
            or entry_id in self._revoked_held
        )

    def _permit(self, entry: Entry) -> bool:
        role = self._timeline.role_at(entry.author, entry.key)
        return self.permissions.allowed(role, entry.kind)

    def _scope(
        self, group: tuple[int, int], scope: Scope, base: tuple[Entry, ...] = ()
    ) -> ScopeLog:
        found = self._scopes.get(group)
        if found is None:
            found = self._scopes[group] = ScopeLog(
                self._strategy_for(scope), self._permit, base
            )
        return found

    def _strategy_for(self, scope: Scope) -> Strategy:
        """The policy's strategy, except for role changes: every admin's grant or revoke takes
        effect in order (the role timeline folds them all), so their scope is last-writer-wins
        and none is reported rejected while in force."""
        if scope.group == ROLES_SCOPE.group:
            return Strategy.LWW
        return self.policy.strategy_for(scope)

    def _integrate(self, entry: Entry) -> None:
        if entry.seq <= self._cp_floors.get(entry.author, 0):
            return  # a checkpoint applied meanwhile (a deferred one, see _retry_checkpoints)
        if entry.base != NO_BASE and not self._present(entry.base):
            if self._pending_count >= self.config.max_pending and not self._make_room(entry):
                self.telemetry.count("pending_overflow_drops")
                self._refused[entry.id] = _digest(entry)
                return
            self._pending.setdefault(entry.base, {})[entry.id] = entry
            self._pending_of.setdefault(entry.author, {})[entry.id] = entry
            self._pending_ids[entry.id] = entry
            self._pending_count += 1
            return
        ready = [entry]
        roles_changed = False
        while ready:
            e = ready.pop()
            if e.id in self._entries:
                continue
            if self._pending_ids.pop(e.id, None) is not None:
                mine = self._pending_of[e.author]
                del mine[e.id]
                if not mine:
                    del self._pending_of[e.author]
            self._entries[e.id] = e
            if self._order and self._order_sorted and e.key < self._order[-1].key:
                self._order_sorted = False
            self._order.append(e)
            self.clock.observe(e.clock, max_step=MAX_CLOCK_STEP)
            group = e.scope.group
            self._scope(group, e.scope).add(e)
            self._author_groups.setdefault(e.author, set()).add(group)
            self._changes.groups.add(group)
            if e.kind in (GRANT, REVOKE):
                self._role_entries[e.id] = e
                roles_changed = True
            waiting = self._pending.pop(e.id, None)
            if waiting:
                self._pending_count -= len(waiting)
                ready.extend(waiting.values())
        if roles_changed:
            self._refold_roles()

    def _make_room(self, entry: Entry) -> bool:
        """The pending buffer is full: drop the newest waiting entry of the author holding the
        most (counted, and remembered as refused), unless that is ``entry``'s own author. One
        member's entries on bases that never come must not cost other authors theirs: a
        dropped entry is marked seen, so no resend brings it back."""
        hog = max(self._pending_of, key=lambda a: len(self._pending_of[a]), default=None)
        mine = len(self._pending_of.get(entry.author, ()))
        if hog is None or hog == entry.author or len(self._pending_of[hog]) <= mine + 1:
            return False
        victims = self._pending_of[hog]
        vid, victim = victims.popitem()
        if not victims:
            del self._pending_of[hog]
        siblings = self._pending[victim.base]
        del siblings[vid]
        if not siblings:
            del self._pending[victim.base]
        del self._pending_ids[vid]
        self._pending_count -= 1
        self._refused[vid] = _digest(victim)
        self.telemetry.count("pending_overflow_drops")
        return True

    def _start_keys(self) -> dict[int, bytes]:
        """Public keys of the members before the held history: the roster's and the
        checkpoint's."""
        return {**{m.author: m.public_key for m in self.roster}, **self._cp_keys}

    def _refold_roles(self) -> None:
        """Recompute the role timeline; refold every scope of an author whose roles changed."""
        old = self._timeline
        new = self._timeline = RoleTimeline(
            self._start_roles, self._start_keys(), self._role_entries.values()
        )
        for author, key in new.granted.items():
            if not self.roster.verifier.knows(author) and not self._admitted.knows(author):
                self._admitted.add(key)
        changed = {a for a in old.changed() | new.changed() if old.history(a) != new.history(a)}
        for author in changed:
            # its set-aside entries may be in order now: the quarantined join, resends of the
            # ones it forgot are judged again
            self._revoked_held = {
                i: d
                for i, d in self._revoked_held.items()
                if i.author != author or i in self._quarantine
            }
            for group in self._author_groups.get(author, ()):
                self._scopes[group].invalidate()
                self._changes.groups.add(group)
        self._withdraw_revoked(changed)
        self._rejudge(changed)
        self._retry_checkpoints()

    def _retry_checkpoints(self) -> None:
        """Checkpoints refused because their signer was no admin in the covered history as this
        log knew it: the roles changed, so judge them again (a grant arrived after one)."""
        if self._retrying or not self._deferred_cps:
            return
        self._retrying = True
        try:
            pending, self._deferred_cps = self._deferred_cps, []
            for raw in pending:
                self._receive_checkpoint(raw, restoring=False, retry=True)
        finally:
            self._retrying = False

    def _withdraw_revoked(self, authors: set[int]) -> None:
        """Entries held of ``authors`` that have no role at their place now (a revoke before
        them arrived late) leave the log as if refused on arrival, so every peer ends up holding
        the same entries; their seqs are unmarked, so a grant before them can still bring them
        back."""
        floors = self._cp_floors
        gone = [
            e
            for e in [*self._entries.values(), *self._pending_ids.values()]
            if e.author in authors
            and e.seq > floors.get(e.author, 0)
            and self._timeline.role_at(e.author, e.key) is None
        ]
        if not gone:
            return
        roles_changed = False
        for e in gone:
            roles_changed |= self._withdraw(e)
            self._window(e.author).unmark(e.seq)
        for e in gone:
            encoded = e.encode()
            raw = next(
                (r for m, r in self._batches.get(e.author, ()) if m >= e.seq and encoded in r), b""
            )
            self._refuse_revoked(e, raw)
        if roles_changed:  # a role change of an author without a role changed nothing
            self._timeline = RoleTimeline(
                self._start_roles, self._start_keys(), self._role_entries.values()
            )

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint(self) -> list[bytes]:
        """Sign the folded state of every entry this log holds without a gap, compact to it, and
        return the packets to send (this frame's local entries first, then the checkpoint).

        Only an admin may; raises CheckpointError without a signer or without any entry to cover,
        PermissionDeniedError when the local author is not an admin now.
        """
        signer = self.signer
        if signer is None:
            raise CheckpointError("this log has no signer: it cannot sign a checkpoint")
        if self._timeline.role(signer.author) is not Role.ADMIN:
            raise PermissionDeniedError("only an admin may sign a checkpoint")
        out = self.flush()
        floors = self._coverable_floors()
        if floors == self._cp_floors:
            raise CheckpointError("no entry since the last checkpoint to cover")

        def covered(e: Entry) -> bool:
            return e.seq <= floors.get(e.author, 0)

        timeline = RoleTimeline(
            self._start_roles,
            self._start_keys(),
            [e for e in self._role_entries.values() if covered(e)],
        )
        if timeline.role(signer.author) is not Role.ADMIN:
            raise PermissionDeniedError("the local author is not an admin in the covered history")
        held = [e for e in self._entries.values() if covered(e)]
        clock = max([e.clock for e in held] + [self._checkpoint.clock if self._checkpoint else 1])

        def permit(e: Entry) -> bool:
            return self.permissions.allowed(timeline.role_at(e.author, e.key), e.kind)

        rules = {kind: ctype.retain for kind, ctype in self._types.items()}
        scopes: dict[tuple[int, int], list[Entry]] = {}
        for group, scope in self._scopes.items():
            res = scope.fold((e for e in scope.tail if covered(e)), permit)
            scopes[group] = retain(res.accepted, rules)
        roles = timeline.roles()
        members = {
            key: roles.get(a) for a, key in {**self._start_keys(), **timeline.granted}.items()
        }
        body = encode_checkpoint_body(signer.author, clock, floors, members, scopes)
        raw = body + signer.sign(body, CHECKPOINT_DOMAIN)
        cp = decode_checkpoint(raw)
        self._apply_checkpoint(cp, restoring=False)
        self.telemetry.count("checkpoints_made")
        return [*out, encode_checkpoint_packet(raw)]

    def _coverable_floors(self) -> dict[int, int]:
        """Per author, the highest seq below which every entry is integrated or refused, and
        closed under bases: a covered entry's base is covered too, so the checkpoint's fold of
        its prefix equals the full history's (entries waiting for a base stay in the tail)."""
        floors = {a: w.floor for a, w in self._windows.items() if w.floor}
        for e in self._pending_ids.values():
            if e.seq <= floors.get(e.author, 0):
                floors[e.author] = e.seq - 1
        # An entry stamped beyond this log's clock moved it only MAX_CLOCK_STEP (see
        # _integrate): covering it would make its clock the checkpoint's, which every peer
        # observes whole, so it stays in the tail.
        limit = self.clock.value
        for e in self._entries.values():
            if e.clock > limit and e.seq <= floors.get(e.author, 0):
                floors[e.author] = e.seq - 1
        for a, f in self._cp_floors.items():
            floors[a] = max(f, floors.get(a, 0))
        held = sorted(
            (e for e in self._entries.values() if e.base != NO_BASE), key=lambda e: e.key
        )
        lowered = True
        while lowered:
            lowered = False
            for e in held:
                base = e.base
                if (
                    e.seq <= floors.get(e.author, 0)
                    and base.seq > floors.get(base.author, 0)
                    and e.seq > self._cp_floors.get(e.author, 0)
                ):
                    floors[e.author] = e.seq - 1
                    lowered = True
        return {a: f for a, f in floors.items() if f}

    def _receive_checkpoint(self, raw: bytes, *, restoring: bool, retry: bool = False) -> None:
        """Decode, authenticate and apply a checkpoint that arrived or was stored (``retry``: a
        deferred one tried again, see :meth:`_retry_checkpoints`)."""
        tel = self.telemetry
        try:
            cp = decode_checkpoint(raw)
        except DecodeError:
            if restoring:
                raise StoreCorruptError("the store holds an undecodable checkpoint") from None
            tel.count("malformed_packets")
            return
        if self._checkpoint is not None and cp.raw == self._checkpoint.raw:
            if not restoring:
                tel.count("duplicates_dropped")
            return
        new_floors = cp.floor_map()
        rival = False
        if any(new_floors.get(a, 0) < f for a, f in self._cp_floors.items()):
            if all(f <= self._cp_floors.get(a, 0) for a, f in new_floors.items()):
                tel.count("stale_checkpoint_drops")  # older than ours: a harmless resend
                return
            # neither covers the other: another admin's concurrent checkpoint. It cannot be
            # applied on top of ours, and peers that hold it fold late entries apart from us
            # until a checkpoint covering both arrives: counted apart once it is authentic.
            rival = True
        key = self.roster.verifier.key_of(cp.author) or self._admitted.key_of(cp.author)
        signed = CHECKPOINT_DOMAIN + cp.signed_bytes
        if key is None or not verify_signature(key, cp.signature, signed):
            if restoring:
                raise StoreCorruptError("a stored checkpoint fails its signature check")
            tel.count("signature_rejections")
            return
        if not self._checkpoint_signer_ok(cp, new_floors, restoring=restoring):
            if restoring:
                raise StoreCorruptError("a stored checkpoint is signed by a non-admin")
            if not retry:
                tel.count("checkpoint_permission_rejections")
            if cp.roles()[0].get(cp.author) is Role.ADMIN:
                # its own table says admin: the grant may not have arrived yet. Kept (the
                # newest few) and tried again when the roles change.
                self._deferred_cps = [*[r for r in self._deferred_cps if r != raw][-3:], raw]
            return
        if rival:
            tel.count("rival_checkpoint_drops")
            return
        self._apply_checkpoint(cp, restoring=restoring)
        tel.count("checkpoints_applied")

    def _checkpoint_signer_ok(
        self, cp: Checkpoint, floors: dict[int, int], *, restoring: bool
    ) -> bool:
        """Whether the signer was an admin after the history the checkpoint covers.

        Judged alike by every peer that holds that history: the checkpoint's own signed role
        table must say admin, and so must this log's roles folded over the covered role changes
        only (a change the signer had not seen, e.g. a late revoke, cannot make peers disagree).
        A peer without the history (a joiner) knows the roster's admins only, so it refuses a
        checkpoint of an admin granted in the log; a refused one whose own table says admin is
        kept and tried again when the roles change (the grant arriving after it). A joiner
        whose sync starts from such a checkpoint never receives the covered grant: it stays
        refused there until a roster admin's checkpoint (known limitation). A log restoring
        its own store accepted the checkpoint before: the signed table alone vouches for it.
        """
        if cp.roles()[0].get(cp.author) is not Role.ADMIN:
            return False
        if restoring:
            return True
        covered = RoleTimeline(
            self._start_roles,
            self._start_keys(),
            [e for e in self._role_entries.values() if e.seq <= floors.get(e.author, 0)],
        )
        return covered.role(cp.author) is Role.ADMIN

    def _apply_checkpoint(self, cp: Checkpoint, *, restoring: bool) -> None:
        """Replace the history the checkpoint covers by its state; refold the rest on top."""
        floors = cp.floor_map()

        def covered(author: int, seq: int) -> bool:
            return seq <= floors.get(author, 0)

        tail = [e for e in self._entries.values() if not covered(e.author, e.seq)]
        waiting = [e for e in self._pending_ids.values() if not covered(e.author, e.seq)]
        old_groups = set(self._scopes)
        self._checkpoint, self._cp_floors = cp, floors
        roles, keys = cp.roles()
        # the table overrides the roster only where the log's role changes made them differ, so
        # members nobody changed in the log keep following the (live) roster
        self._start_roles = StartRoles(
            self.roster,
            {
                a: r
                for a, r in roles.items()
                if a not in self.roster or self.roster.role_of(a) is not r
            },
        )
        self._cp_keys = {a: k for a, k in keys.items() if a not in self.roster}
        for author, key in keys.items():
            if not self.roster.verifier.knows(author) and not self._admitted.knows(author):
                self._admitted.add(key)
        self._role_entries = {e.id: e for e in tail if e.kind in (GRANT, REVOKE)}
        self._timeline = RoleTimeline(
            self._start_roles, self._start_keys(), self._role_entries.values()
        )
        self._refused = {i: e for i, e in self._refused.items() if not covered(*i)}
        self._equivocated = {i: v for i, v in self._equivocated.items() if not covered(*i)}
        self._proofs = {i: p for i, p in self._proofs.items() if not covered(*i)}
        self._quarantine = {i: q for i, q in self._quarantine.items() if not covered(*i)}
        self._quarantine_bytes = sum(len(raw) for _, raw in self._quarantine.values())
        self._revoked_held = {i: d for i, d in self._revoked_held.items() if not covered(*i)}
        self._reported_rejections = {i for i in self._reported_rejections if not covered(*i)}
        self._reported_conflicts = {i for i in self._reported_conflicts if not covered(*i)}
        self._reported_denials = {i for i in self._reported_denials if not covered(*i)}
        self._drained = {}
        self._entries, self._order, self._order_sorted = {}, [], True
        self._scopes, self._author_groups = {}, {}
        self._pending, self._pending_ids, self._pending_count = {}, {}, 0
        self._pending_of = {}
        for group, retained in cp.scopes:
            self._scope(group, retained[0].scope, retained)
            for e in retained:
                self._entries[e.id] = e
                self._order.append(e)
                self._author_groups.setdefault(e.author, set()).add(group)
        self._order_sorted = False
        self.clock.observe(cp.clock)
        for author, floor in floors.items():
            self._window(author).raise_floor(floor)
        own = self._own_author()
        if own in floors:
            self._seq = max(self._seq, floors[own])
        self._outgoing = [e for e in self._outgoing if not covered(e.author, e.seq)]
        self._batches = {
            a: [(m, raw) for m, raw in bs if m > floors.get(a, 0)]
            for a, bs in self._batches.items()
        }
        for e in sorted(tail + waiting, key=lambda e: e.key):
            self._integrate(e)
        self._withdraw_revoked({e.author for e in tail + waiting})  # roles from the table
        self._rejudge({e.author for e, _ in self._quarantine.values()})
        self._changes.groups |= old_groups | set(self._scopes)
        if not restoring and self.store is not None:
            compact = getattr(self.store, "compact", None)
            if compact is not None:
                compact([cp.raw, *self._export_batches()])
            else:  # a store that cannot compact still restores to the same state
                self.store.append([cp.raw])
        self._gauges()

    def drain_changes(self) -> Changes:
        """Groups whose resolution may have changed, and newly rejected entries, since last call.

        Counts ``command_conflicts`` and ``command_rejections`` (each entry once).
        """
        changes, self._changes = self._changes, Changes(self._own_author())
        tel = self.telemetry
        for group in sorted(changes.groups):
            scope = self._scopes.get(group)
            if scope is None:  # compacted away by a checkpoint (it had nothing accepted)
                continue
            res = scope.resolution
            seen = self._drained.get(group)
            if seen is not None and seen[0] == scope.generation:
                rejected, conflicted = res.rejected[seen[1] :], res.conflicted[seen[2] :]
            else:  # first look, or refolded: the reported-id sets keep counts exact
                rejected, conflicted = res.rejected, res.conflicted
            self._drained[group] = (scope.generation, len(res.rejected), len(res.conflicted))
            for e in res.denied:
                if e.id not in self._reported_denials:
                    self._reported_denials.add(e.id)
                    role = self._timeline.role_at(e.author, e.key)
                    held = role.name.lower() if role is not None else "no role"
                    changes.rejections.append(
                        Rejection(e, f"its author had {held} at its place in the order")
                    )
                    tel.count("permission_rejections")
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
        """Rebuild from the store (the checkpoint and every batch re-verified); returns the change
        in the number of entries held (a checkpoint replaces covered entries by what it retained).

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
        """The checkpoint (if any) and every batch after it: what a sync from zero would send,
        and what :meth:`restore_from` takes."""
        head = [self._checkpoint.raw] if self._checkpoint is not None else []
        return head + self._export_batches()

    def _export_batches(self) -> list[bytes]:
        return [raw for _, batches in sorted(self._batches.items()) for _, raw in batches]


def _digest(entry: Entry) -> bytes:
    """What is kept of a refused entry: enough to tell an exact copy from other content."""
    return hashlib.blake2b(entry.encode(), digest_size=16).digest()


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

