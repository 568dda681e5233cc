"""Command stores: where signed batches persist (``theta.command_stores`` entry points).

A store keeps opaque blobs (signed batches, and at most one signed checkpoint first) in append
order; the log re-verifies every one on restore, so a tampered store is detected by signature,
not trusted. :meth:`compact` replaces the whole content in one transaction when a checkpoint makes
older batches redundant. SQLite is the default: one file in WAL mode, one transaction per append,
``synchronous=FULL``, so an append that returned survives a crash or a power cut.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

from .errors import DurabilityError, ForeignStoreError, StoreCorruptError, StoreError

#: PRAGMA application_id of theta command stores ("THCL").
APPLICATION_ID = 0x5448434C
SCHEMA_VERSION = 1


class MemoryCommandStore:
    """Keeps batches in a list: for tests and peers that need no persistence."""

    def __init__(self) -> None:
        self._batches: list[bytes] = []
        self.closed = False

    def append(self, entries: Iterable[bytes]) -> None:
        if self.closed:
            raise StoreError("the memory store is closed")
        self._batches.extend(bytes(b) for b in entries)

    def load(self) -> list[bytes]:
        return list(self._batches)

    def compact(self, blobs: Iterable[bytes]) -> None:
        """Replace everything with ``blobs`` (a checkpoint and the batches it leaves)."""
        if self.closed:
            raise StoreError("the memory store is closed")
        self._batches = [bytes(b) for b in blobs]

    def close(self) -> None:
        self.closed = True

    def __len__(self) -> int:
        return len(self._batches)


class SqliteCommandStore:
    """Blobs in an SQLite file (WAL mode). A file that is not SQLite, or an SQLite database of
    some other application, raises StoreCorruptError or ForeignStoreError on open.

    ``durability`` says what an append that returned survives:

    - ``"full"`` (default, ``synchronous=FULL``): a process crash, an OS crash and a power cut;
    - ``"extra"`` (``synchronous=EXTRA``): the same, and the WAL's directory entry is synced too;
    - ``"relaxed"`` (``synchronous=NORMAL``): a process crash only. An OS crash or power cut may
      lose the last appends, which peers then never get from this one again. Faster; choose it
      only by naming it.

    ``sync`` is the older spelling (``"FULL"`` or ``"EXTRA"``); ``sync="NORMAL"`` alone raises
    DurabilityError, since it would weaken the no-loss guarantee silently.
    """

    _PRAGMA = {"full": "FULL", "extra": "EXTRA", "relaxed": "NORMAL"}

    def __init__(
        self,
        path: str | os.PathLike[str] = "theta_commands.db",
        *,
        durability: str = "full",
        sync: str | None = None,
    ) -> None:
        if sync is not None:
            by_sync = {"FULL": "full", "EXTRA": "extra", "NORMAL": "relaxed"}.get(sync.upper())
            if by_sync is None:
                raise DurabilityError(
                    f"unknown synchronous mode {sync!r}", expected="FULL or EXTRA",
                    actual=repr(sync),
                )
            if by_sync == "relaxed" and durability != "relaxed":
                raise DurabilityError(
                    "sync='NORMAL' may lose acknowledged commands on an OS crash or power cut; "
                    "pass durability='relaxed' to accept that",
                    expected="durability='relaxed'",
                    actual=f"durability={durability!r}",
                )
            if durability not in ("full", by_sync):
                raise DurabilityError(
                    f"sync={sync!r} contradicts durability={durability!r}",
                    expected=f"durability={by_sync!r}", actual=f"durability={durability!r}",
                )
            durability = by_sync
        mode = self._PRAGMA.get(durability)
        if mode is None:
            raise DurabilityError(
                f"unknown durability {durability!r}",
                expected="full, extra or relaxed",
                actual=repr(durability),
            )
        self.durability = durability
        self.path = os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open command store {self.path!r}: {exc}") from exc
        try:
            self._open(mode)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreCorruptError(
                f"{self.path!r} is not a readable command store: {exc}"
            ) from exc
        except StoreError:
            self._db.close()
            raise

    def _open(self, sync: str) -> None:
        db = self._db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id == 0 and not tables:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "CREATE TABLE IF NOT EXISTS batches ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)"
            )
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        elif app_id != APPLICATION_ID:
            raise ForeignStoreError(
                f"{self.path!r} is an SQLite database of another application "
                f"(application_id {app_id:#x}, tables {sorted(tables)})"
            )
        else:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise ForeignStoreError(
                    f"{self.path!r} has command-store schema {version}; this theta reads "
                    f"{SCHEMA_VERSION}"
                )
            if "batches" not in tables:
                raise StoreCorruptError(f"{self.path!r} lacks its batches table")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path!r} cannot use WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous={sync}")

    def append(self, entries: Iterable[bytes]) -> None:
        """Append batches in one transaction: all of them are durable once this returns."""
        rows = [(sqlite3.Binary(bytes(b)),) for b in entries]
        if not rows:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO batches(body) VALUES (?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot append to {self.path!r}: {exc}") from exc

    def compact(self, blobs: Iterable[bytes]) -> None:
        """Replace every stored blob with ``blobs`` in one transaction (all or nothing)."""
        rows = [(sqlite3.Binary(bytes(b)),) for b in blobs]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM batches")
            self._db.executemany("INSERT INTO batches(body) VALUES (?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot compact {self.path!r}: {exc}") from exc

    def load(self) -> list[bytes]:
        try:
            return [bytes(r[0]) for r in self._db.execute("SELECT body FROM batches ORDER BY id")]
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(f"cannot read {self.path!r}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM batches").fetchone()[0])
