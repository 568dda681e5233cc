"""Persistence: memory and SQLite stores, restart, crash safety, corrupt and foreign files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

from theta_ecs.commandlog import (
    DurabilityError,
    ForeignStoreError,
    MemoryCommandStore,
    SqliteCommandStore,
    StoreCorruptError,
    StoreError,
    Transform,
)
from theta_ecs.commandlog.errors import CommandLogError
from theta_ecs.interfaces import CommandStore

from .test_commandlog_support import exchange, make_peer, roster


def test_memory_store_round_trip() -> None:
    s = MemoryCommandStore()
    s.append([b"a", b"b"])
    s.append([])
    assert s.load() == [b"a", b"b"] and len(s) == 2
    s.close()
    with pytest.raises(StoreError):
        s.append([b"c"])


def test_sqlite_store_is_wal_and_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    s = SqliteCommandStore(path)
    s.append([b"one", b"two"])
    s.close()
    s = SqliteCommandStore(path=str(path))
    assert s.load() == [b"one", b"two"]
    mode = s._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    s.close()


def test_default_path_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = SqliteCommandStore()
    s.close()
    assert (tmp_path / "theta_commands.db").exists()


def test_restart_from_sqlite_rebuilds_the_same_world(tmp_path: Path) -> None:
    r = roster(2)
    path = tmp_path / "peer.db"
    a = make_peer(0, r, store=SqliteCommandStore(path))
    b = make_peer(1, r)
    nid = a.editor.create_entity({"px": 1.0}, mesh=True)
    v = [a.editor.mesh_add_vertex(nid, (float(i), 1.0, 0.0)) for i in range(3)]
    a.editor.mesh_add_face(nid, *v)
    exchange(a, b)
    other = b.editor.create_entity({"py": 2.0})
    b.editor.set_transform(nid, sz=3.0)
    exchange(a, b)
    before = a.fingerprint()
    assert a.log.store is not None
    a.log.store.close()

    a2 = make_peer(0, r, store=SqliteCommandStore(path))
    assert a2.log.restore() == len(before[1])
    a2.editor.apply_changes()
    assert a2.fingerprint() == before
    assert a2.world.get(a2.editor.local_entity(other), Transform)["py"] == 2.0
    # the restarted author continues its sequence and net ids: peers accept its new commands
    nid2 = a2.editor.create_entity()
    assert nid2 != nid
    b.receive(a2.flush())
    assert b.editor.entity(nid2) is not None
    assert b.world.telemetry.counters.get("replay_rejections", 0) == 0
    assert a2.fingerprint() == b.fingerprint()


_CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from tests.test_commandlog_support import make_peer, roster
    from theta_ecs.commandlog import SqliteCommandStore
    p = make_peer(0, roster(1), store=SqliteCommandStore({path!r}))
    nid = p.editor.create_entity()
    p.flush()
    for i in range(1, 40):
        p.editor.set_transform(nid, px=float(i))
        p.flush()
        print(i, flush=True)  # acknowledged: flush returned
        if i == 25:
            p.editor.set_transform(nid, py=1.0)  # issued but never flushed
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_crash_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    script = _CRASHER.format(tests=str(Path(__file__).parent.parent), path=str(path))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    acked = [int(x) for x in proc.stdout.split()]
    assert acked[-1] == 25
    p = make_peer(0, roster(1), store=SqliteCommandStore(path))
    p.log.restore()
    p.editor.apply_changes()
    (nid,) = [n for n in p.editor.index.local]
    assert p.editor.transform(nid)["px"] == 25.0
    assert p.editor.transform(nid)["py"] == 0.0
    assert len(p.log) == 26


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(StoreCorruptError, match="not a readable command store"):
        SqliteCommandStore(path)


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(ForeignStoreError, match="another application"):
        SqliteCommandStore(path)


def test_tampered_database_fails_restore(tmp_path: Path) -> None:
    r = roster(1)
    path = tmp_path / "t.db"
    p = make_peer(0, r, store=SqliteCommandStore(path))
    nid = p.editor.create_entity()
    p.editor.set_transform(nid, px=1.0)
    p.flush()
    assert p.log.store is not None
    p.log.store.close()
    db = sqlite3.connect(path)
    (body,) = db.execute("SELECT body FROM batches").fetchone()
    forged = bytearray(body)
    forged[-70] ^= 1
    db.execute("UPDATE batches SET body = ?", (bytes(forged),))
    db.commit()
    db.close()
    p2 = make_peer(0, r, store=SqliteCommandStore(path))
    with pytest.raises(StoreCorruptError, match="signature"):
        p2.log.restore()
    db = sqlite3.connect(path)
    db.execute("UPDATE batches SET body = ?", (b"TB\x01garbage",))
    db.commit()
    db.close()
    p3 = make_peer(0, r, store=SqliteCommandStore(path))
    with pytest.raises(StoreCorruptError, match="undecodable"):
        p3.log.restore()
    assert issubclass(StoreCorruptError, CommandLogError)


class FlakyStore(MemoryCommandStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def append(self, entries: Iterable[bytes]) -> None:
        if self.fail:
            raise StoreError("disk full")
        super().append(entries)


def test_stores_satisfy_the_protocol_and_a_failed_flush_is_retried(tmp_path: Path) -> None:
    store = FlakyStore()
    sq = SqliteCommandStore(tmp_path / "p.db")
    assert isinstance(store, CommandStore) and isinstance(sq, CommandStore)
    sq.close()
    r = roster(2)
    a, b = make_peer(0, r, store=store), make_peer(1, r)
    nid = a.editor.create_entity()
    store.fail = True
    with pytest.raises(StoreError):
        a.log.flush()  # nothing acknowledged, nothing sent
    store.fail = False
    b.receive(a.flush())  # the same entries, now durable and sent
    assert b.editor.entity(nid) is not None
    assert len(store.load()) == 1


def test_relaxed_durability_must_be_named(tmp_path: Path) -> None:
    """Issue 7, defect 4: synchronous=NORMAL may lose acknowledged appends on a power cut."""
    with pytest.raises(DurabilityError, match="durability='relaxed'") as err:
        SqliteCommandStore(tmp_path / "a.db", sync="NORMAL")
    assert err.value.expected == "durability='relaxed'" and isinstance(err.value, StoreError)
    assert not (tmp_path / "a.db").exists()  # refused before anything was opened
    with pytest.raises(DurabilityError):
        SqliteCommandStore(tmp_path / "a.db", durability="fast")
    with pytest.raises(DurabilityError):
        SqliteCommandStore(tmp_path / "a.db", sync="EXTRA", durability="relaxed")

    def pragma(store: SqliteCommandStore) -> int:
        return int(store._db.execute("PRAGMA synchronous").fetchone()[0])

    cases = [
        ({}, "full", 2),
        ({"sync": "FULL"}, "full", 2),
        ({"sync": "extra"}, "extra", 3),
        ({"durability": "extra"}, "extra", 3),
        ({"durability": "relaxed"}, "relaxed", 1),
        ({"durability": "relaxed", "sync": "NORMAL"}, "relaxed", 1),
    ]
    for i, (kwargs, name, level) in enumerate(cases):
        store = SqliteCommandStore(tmp_path / f"s{i}.db", **kwargs)
        assert store.durability == name and pragma(store) == level
        store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_compact_replaces_the_content_in_one_step(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store: MemoryCommandStore | SqliteCommandStore = (
        MemoryCommandStore() if kind == "memory" else SqliteCommandStore(path)
    )
    store.append([b"one", b"two", b"three"])
    store.compact([b"checkpoint", b"three"])
    store.append([b"four"])
    assert store.load() == [b"checkpoint", b"three", b"four"]
    if isinstance(store, SqliteCommandStore):
        store.close()
        store = SqliteCommandStore(path)
        assert store.load() == [b"checkpoint", b"three", b"four"]
        # a compaction that fails halfway (after the delete and one insert) changes nothing
        store._db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON batches WHEN NEW.body = x'78' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(StoreError, match="refused"):
            store.compact([b"new checkpoint", b"x"])
        assert store.load() == [b"checkpoint", b"three", b"four"]
    store.close()
