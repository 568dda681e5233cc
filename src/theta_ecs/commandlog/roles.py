"""Authors, roles and per-command-type permissions, and role changes that travel in the log.

The roster (the roles at session start) and the permission table are shared configuration:
every peer must hold the same. Admins change roles later with signed ``grant`` and ``revoke``
commands; :class:`RoleTimeline` folds them in the total order, so an entry's author is judged by
the role it held at the entry's place in that order, identically on every peer whatever order
the entries arrived in (a permission check is part of the deterministic fold, not a local
opinion).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from .entry import Entry, Scope
from .errors import CommandPayloadError, PermissionDeniedError, UnknownAuthorError
from .signing import Verifier, author_id


class Role(IntEnum):
    """Ordered: a higher role may do everything a lower one may."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3


@dataclass(frozen=True)
class Member:
    author: int
    public_key: bytes
    role: Role
    name: str = ""


class Roster:
    """The authors of a session: public key and role of each, by author id."""

    def __init__(self) -> None:
        self._members: dict[int, Member] = {}
        self.verifier = Verifier()

    def add(self, public_key: bytes, role: Role, name: str = "") -> int:
        """Admit an author; returns its id. Authors whose ids share their low 32 bits are refused
        (net ids use those bits as the author's namespace)."""
        author = self.verifier.add(public_key)
        for other in self._members.values():
            if other.author != author and (other.author & 0xFFFFFFFF) == (author & 0xFFFFFFFF):
                raise ValueError("two authors share a net-id namespace; generate another key")
        self._members[author] = Member(author, bytes(public_key), Role(role), name)
        return author

    def role_of(self, author: int) -> Role:
        try:
            return self._members[author].role
        except KeyError:
            raise UnknownAuthorError(f"author {author:016x} is not in the roster") from None

    def __contains__(self, author: object) -> bool:
        return author in self._members

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def __len__(self) -> int:
        return len(self._members)


class Permissions:
    """The least role each command type needs. Unknown command types are refused outright."""

    def __init__(self, required: Mapping[str, Role] | None = None) -> None:
        self._required: dict[str, Role] = dict(required or {})

    def require(self, kind: str, role: Role) -> None:
        self._required[kind] = Role(role)

    def required(self, kind: str) -> Role | None:
        return self._required.get(kind)

    def allowed(self, role: Role | None, kind: str) -> bool:
        need = self._required.get(kind)
        return need is not None and role is not None and role >= need

    def check(self, role: Role | None, kind: str) -> None:
        need = self._required.get(kind)
        if need is None:
            raise PermissionDeniedError(f"no permission is defined for command type {kind!r}")
        if role is None:
            raise PermissionDeniedError(
                f"{kind!r} refused: the author holds no role (revoked or never granted)"
            )
        if role < need:
            raise PermissionDeniedError(
                f"{kind!r} needs role {need.name.lower()}, author has {role.name.lower()}"
            )


# --- role changes in the log ------------------------------------------------------------------
GRANT = "theta.roles.grant"
REVOKE = "theta.roles.revoke"
#: The scope every role change is issued on (entity 0 is no author's namespace in use).
ROLES_SCOPE = Scope(0, 0x726F6C6573, "")  # "roles"
_GRANT = struct.Struct("<B32s")
_REVOKE = struct.Struct("<Q")


def grant_payload(public_key: bytes, role: Role) -> bytes:
    """Payload of a grant: the role and the raw 32-byte public key (which admits a newcomer)."""
    if len(public_key) != 32:
        raise CommandPayloadError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    return _GRANT.pack(Role(role), bytes(public_key))


def revoke_payload(author: int) -> bytes:
    if not 0 < author < 1 << 64:
        raise CommandPayloadError("revoke names a non-zero 64-bit author id")
    return _REVOKE.pack(author)


def check_grant(entry: Entry) -> None:
    if entry.scope != ROLES_SCOPE:
        raise CommandPayloadError("grant: scope is the roles scope")
    if len(entry.payload) != _GRANT.size:
        raise CommandPayloadError(f"grant: payload must be {_GRANT.size} bytes")
    role, _key = _GRANT.unpack(entry.payload)
    if not Role.VIEWER <= role <= Role.ADMIN:
        raise CommandPayloadError(f"grant: unknown role {role}")


def check_revoke(entry: Entry) -> None:
    if entry.scope != ROLES_SCOPE:
        raise CommandPayloadError("revoke: scope is the roles scope")
    if len(entry.payload) != _REVOKE.size or not _REVOKE.unpack(entry.payload)[0]:
        raise CommandPayloadError(f"revoke: payload is a non-zero {_REVOKE.size}-byte author id")


#: A position in the total order: (clock, author, seq).
Key = tuple[int, int, int]


class RoleTimeline:
    """Each author's role at every position of the total order.

    Built from the starting roles (the roster's, or a checkpoint's) and the role-change entries
    in order: a change counts only when its author is an admin at its own position; a grant
    whose key's author id clashes with another member's net-id namespace is ignored. Role of an
    entry's author = the last effective change strictly before the entry, else the start role.
    ``start`` is read live, not copied: a roster edited after the log was made still counts for
    authors that no change in the log touched.
    """

    def __init__(
        self,
        start: Mapping[int, Role | None],
        keys: Mapping[int, bytes],
        changes: Iterable[Entry] = (),
    ) -> None:
        self.start = start
        #: public keys of members admitted by a grant in the log (beyond ``keys``)
        self.granted: dict[int, bytes] = {}
        self._changes: dict[int, list[tuple[Key, Role | None]]] = {}
        self._keys_at: dict[int, list[Key]] = {}
        self._final: dict[int, Role | None] = {}
        for entry in sorted(changes, key=lambda e: e.key):
            if self.role(entry.author) is not Role.ADMIN:
                continue
            if entry.kind == GRANT:
                role_value, key = _GRANT.unpack(entry.payload)
                target = author_id(key)
                known = {**keys, **self.granted}
                if any(
                    other != target and (other & 0xFFFFFFFF) == (target & 0xFFFFFFFF)
                    for other in known
                ):
                    continue
                if target not in keys:
                    self.granted.setdefault(target, key)
                role: Role | None = Role(role_value)
            elif entry.kind == REVOKE:
                (target,) = _REVOKE.unpack(entry.payload)
                role = None
            else:
                continue
            self._final[target] = role
            self._changes.setdefault(target, []).append((entry.key, role))
            self._keys_at.setdefault(target, []).append(entry.key)

    def role_at(self, author: int, key: Key) -> Role | None:
        """The author's role for an entry at ``key`` (None: no role, every command refused)."""
        keys = self._keys_at.get(author)
        if keys is None:
            return self.start.get(author)
        i = bisect.bisect_left(keys, key)
        return self._changes[author][i - 1][1] if i else self.start.get(author)

    def role(self, author: int) -> Role | None:
        """The author's role after every change (what a new local command is checked against)."""
        if author in self._final:
            return self._final[author]
        return self.start.get(author)

    def roles(self) -> dict[int, Role | None]:
        """Every member's role after every change."""
        return {**dict(self.start), **self._final}

    def history(self, author: int) -> list[tuple[Key, Role | None]]:
        return list(self._changes.get(author, ()))

    def changed(self) -> set[int]:
        """Authors whose role some change in the log set."""
        return set(self._changes)


class StartRoles(Mapping[int, "Role | None"]):
    """Roles before the first entry a log holds: a checkpoint's table where it has one, else
    the roster's, read live (a roster edited after the log was made still counts)."""

    def __init__(self, roster: Roster, table: Mapping[int, Role | None] | None = None) -> None:
        self.roster = roster
        self.table = dict(table or {})

    def __getitem__(self, author: int) -> Role | None:
        if author in self.table:
            return self.table[author]
        if author in self.roster:
            return self.roster.role_of(author)
        raise KeyError(author)

    def __iter__(self) -> Iterator[int]:
        yield from self.table
        yield from (m.author for m in self.roster if m.author not in self.table)

    def __len__(self) -> int:
        return len(set(self.table) | {m.author for m in self.roster})
