"""Checkpoints: the folded state of the log at a Lamport time, signed by an admin.

A checkpoint covers, per author, every entry up to a sequence number (its ``floors``). It holds
what the fold of exactly those entries leaves: each member's role (and public key), and per scope
the accepted entries that still matter to the fold (the scope's head, plus what each command
type's ``retain`` keeps, e.g. the newest transform per field). Rejected, denied and overwritten
entries are gone. A log that applies a checkpoint drops every covered entry and folds later
entries on top of it, so history before it is compacted in memory and in the store, and a
joining peer starts from the newest checkpoint plus the entries after it. Entries not covered
fold after the checkpoint's even when ordered before them (one its signer had not seen yet), so
a scope's retained entries are kept in fold order, which a later checkpoint must preserve.

Checkpoints travel like batches: in their own packet type, signed (with a domain of their own),
verified, refused unless their signer is an admin at the checkpoint's place in the order, and
decoded defensively (every length checked, :class:`DecodeError` and nothing else).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .clock import MAX_CLOCK
from .entry import ENTRY_VERSION, SIGNATURE_BYTES, U64, Entry, EntryId, decode_entry
from .errors import DecodeError
from .roles import Role
from .signing import author_id

MAGIC = b"TK"
# magic, version, flags, signer, clock, floors, members, scopes
_HEAD = struct.Struct("<2sBBQQIII")
_FLOOR = struct.Struct("<QQ")
_MEMBER = struct.Struct("<B32s")
_SCOPE = struct.Struct("<QQI")
_LEN = struct.Struct("<I")
_MIN_ENTRY = 4 + 63  # length prefix + the smallest entry encoding

#: Retention of one command type: given its accepted entries in one scope (in order), the ones
#: the fold still needs once older history is gone.
Retain = Callable[[list[Entry]], list[Entry]]


def keep_last(entries: list[Entry]) -> list[Entry]:
    """Retention of a command whose newest accepted entry alone decides its fold."""
    return entries[-1:]


def keep_none(entries: list[Entry]) -> list[Entry]:
    """Retention of a command whose effect the checkpoint holds elsewhere (role changes)."""
    return []


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A decoded checkpoint (its signature not yet checked)."""

    author: int
    clock: int
    floors: tuple[tuple[int, int], ...]
    #: (raw public key, role value; 0 for a member whose role was revoked)
    members: tuple[tuple[bytes, int], ...]
    scopes: tuple[tuple[tuple[int, int], tuple[Entry, ...]], ...]
    raw: bytes

    @property
    def signature(self) -> bytes:
        return self.raw[-SIGNATURE_BYTES:]

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:-SIGNATURE_BYTES]

    def floor_map(self) -> dict[int, int]:
        return dict(self.floors)

    def roles(self) -> tuple[dict[int, Role | None], dict[int, bytes]]:
        """Each member's role (None: revoked) and public key, by author id."""
        roles: dict[int, Role | None] = {}
        keys: dict[int, bytes] = {}
        for key, role in self.members:
            author = author_id(key)
            roles[author] = Role(role) if role else None
            keys[author] = key
        return roles, keys



def is_checkpoint(blob: bytes) -> bool:
    return blob[:2] == MAGIC


def encode_checkpoint_body(
    author: int,
    clock: int,
    floors: Mapping[int, int],
    members: Mapping[bytes, Role | None],
    scopes: Mapping[tuple[int, int], Iterable[Entry]],
) -> bytes:
    """The bytes a checkpoint's signature covers (items sorted, so the encoding is canonical)."""
    kept = sorted((g, list(es)) for g, es in scopes.items())
    kept = [(g, es) for g, es in kept if es]
    parts = [
        _HEAD.pack(MAGIC, ENTRY_VERSION, 0, author, clock, len(floors), len(members), len(kept))
    ]
    parts.extend(_FLOOR.pack(a, f) for a, f in sorted(floors.items()))
    parts.extend(_MEMBER.pack(int(r or 0), k) for k, r in sorted(members.items()))
    for (entity, component), entries in kept:
        parts.append(_SCOPE.pack(entity, component, len(entries)))
        for entry in entries:
            body = entry.encode()
            parts.append(_LEN.pack(len(body)))
            parts.append(body)
    return b"".join(parts)


def decode_checkpoint(data: bytes | memoryview) -> Checkpoint:
    """A checkpoint; raises DecodeError on anything malformed or inconsistent."""
    view = memoryview(data)
    end = len(view) - SIGNATURE_BYTES
    if end < _HEAD.size:
        raise DecodeError(f"checkpoint of {len(view)} bytes is too short")
    magic, version, flags, author, clock, n_floors, n_members, n_scopes = _HEAD.unpack_from(view)
    if magic != MAGIC:
        raise DecodeError(f"not a checkpoint (magic {bytes(magic)!r})")
    if version != ENTRY_VERSION:
        raise DecodeError(f"unsupported checkpoint version {version}")
    if flags != 0:
        raise DecodeError(f"unknown checkpoint flags {flags:#x}")
    if author == 0 or not 1 <= clock < MAX_CLOCK:
        raise DecodeError("checkpoint signer must be non-zero and its clock in 1..2^53")
    pos = _HEAD.size
    fixed = n_floors * _FLOOR.size + n_members * _MEMBER.size + n_scopes * _SCOPE.size
    if n_floors == 0 or pos + fixed > end:
        raise DecodeError(
            f"checkpoint claims {n_floors} floors, {n_members} members and {n_scopes} scopes in "
            f"{end - pos} bytes"
        )
    floors: list[tuple[int, int]] = []
    for _ in range(n_floors):
        a, f = _FLOOR.unpack_from(view, pos)
        pos += _FLOOR.size
        if a == 0 or not 1 <= f <= U64 >> 1 or (floors and a <= floors[-1][0]):
            raise DecodeError("checkpoint floors must be non-zero and sorted by author")
        floors.append((a, f))
    floor_of = dict(floors)
    members: list[tuple[bytes, int]] = []
    for _ in range(n_members):
        role, key = _MEMBER.unpack_from(view, pos)
        pos += _MEMBER.size
        if role > Role.ADMIN or (members and key <= members[-1][0]):
            raise DecodeError("checkpoint members need a known role and sorted unique keys")
        members.append((bytes(key), role))
    scopes: list[tuple[tuple[int, int], tuple[Entry, ...]]] = []
    seen: set[EntryId] = set()
    for _ in range(n_scopes):
        if pos + _SCOPE.size > end:
            raise DecodeError("checkpoint truncated inside a scope header")
        entity, component, count = _SCOPE.unpack_from(view, pos)
        pos += _SCOPE.size
        group = (entity, component)
        if count == 0 or pos + count * _MIN_ENTRY > end or (scopes and group <= scopes[-1][0]):
            raise DecodeError("checkpoint scopes must be sorted, unique, non-empty and fit")
        entries: list[Entry] = []
        for _ in range(count):
            (n,) = _LEN.unpack_from(view, pos)
            pos += _LEN.size
            if pos + n > end:
                raise DecodeError("checkpoint truncated inside an entry")
            entry = decode_entry(view[pos : pos + n])
            pos += n
            if entry.scope.group != group:
                raise DecodeError("a checkpoint entry lies outside its scope")
            if entry.seq > floor_of.get(entry.author, 0) or entry.clock > clock:
                raise DecodeError("a checkpoint retains an entry it does not cover")
            # Kept in fold order, which is not always the total order: an entry that arrived
            # after an earlier checkpoint folds after its retained entries, even when its key
            # is lower (see the module docstring); the signature pins the order.
            if entry.id in seen:
                raise DecodeError("a checkpoint retains one entry twice")
            seen.add(entry.id)
            entries.append(entry)
        scopes.append((group, tuple(entries)))
    if pos != end:
        raise DecodeError(f"{end - pos} stray bytes after the checkpoint's scopes")
    return Checkpoint(
        author, clock, tuple(floors), tuple(members), tuple(scopes), bytes(view)
    )


def retain(accepted: list[Entry], rules: Mapping[str, Retain | None]) -> list[Entry]:
    """What a checkpoint keeps of one scope's accepted entries: per command type what its rule
    keeps (all of them without a rule), and always the head (the newest accepted entry), so new
    commands based on it are not taken for concurrent ones."""
    if not accepted:
        return []
    by_kind: dict[str, list[Entry]] = {}
    for entry in accepted:
        by_kind.setdefault(entry.kind, []).append(entry)
    keep: set[tuple[int, int, int]] = {accepted[-1].key}
    for kind, entries in by_kind.items():
        rule = rules.get(kind)
        keep.update(e.key for e in (entries if rule is None else rule(entries)))
    return [e for e in accepted if e.key in keep]
