"""Authors, roles and per-command-type permissions.

The roster and the permission table are shared configuration: every peer must hold the same, so
that every peer accepts or rejects an entry alike (a permission check is part of the
deterministic fold, not a local opinion).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from .errors import PermissionDeniedError, UnknownAuthorError
from .signing import Verifier


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

    def allowed(self, role: Role, kind: str) -> bool:
        need = self._required.get(kind)
        return need is not None and role >= need

    def check(self, role: Role, kind: str) -> None:
        need = self._required.get(kind)
        if need is None:
            raise PermissionDeniedError(f"no permission is defined for command type {kind!r}")
        if role < need:
            raise PermissionDeniedError(
                f"{kind!r} needs role {need.name.lower()}, author has {role.name.lower()}"
            )
